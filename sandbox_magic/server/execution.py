"""Turn a kernel's IOPub messages into the contract's Execution object, live.

`ExecutionRecorder.hook` is the output hook passed to `Kernel.execute`; `to_json`
may be called at any moment (a ``GET`` while the run is running) and always returns
a consistent snapshot, because everything happens on the one event loop.

Mapping, message by message:

- ``stream`` -> a chunk appended to ``logs.stdout`` / ``logs.stderr``;
- ``execute_result`` -> a Result with ``is_main_result: true``; when the kernel
  sent the value as plain JSON (`kernel_side.VALUE_MIME`), it moves out of ``data``
  into ``plain_value: {"value": ...}`` (ours), so ``data`` holds only what is shown;
- ``display_data`` -> a Result; every MIME type of the bundle goes into ``data``,
  the known ones also into their named fields (``text``, ``html``, ``png``...);
  the message's metadata (e.g. image sizes) is kept under ``metadata``; chart data
  the kernel added to a figure's bundle (`charts.CHART_MIME`) becomes ``chart``;
  ``on_display`` (if set) sees each new result, so its image can become an artifact;
- ``update_display_data`` -> replaces, in place, the bundle of every earlier result
  of this run that carries the same ``display_id``; an update for a display this run
  did not create is appended as a new result marked ``"update": true`` (so it is
  not lost, and a client that showed that display in an earlier cell updates it);
- ``clear_output`` -> outputs shown so far leave ``execution.output_order`` (the
  ``logs`` and ``results`` lists only ever grow, so a poller's indexes stay valid);
  with ``wait=True`` the clearing happens when the next output arrives, as in a
  notebook;
- ``error`` -> ``execution.error`` ``{name, value, traceback}`` (traceback as a
  list of lines, ANSI colours kept);
- ``execute_input`` / ``execute_result`` -> ``execution_count``.

``execution.output_order`` (ours) lists ``{"type": "stdout"|"stderr"|"result",
"index": i}`` in the order outputs arrived, so a client can interleave prints and
displays exactly.

Each change is also offered to listeners as a streaming event (the shape of the
``code/execute`` server-sent events).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox_magic.server.charts import CHART_MIME
from sandbox_magic.server.kernel_side import VALUE_MIME
from sandbox_magic.wire import MIME_BY_FIELD

__all__ = ["EventListener", "ExecutionRecorder", "result_from_bundle"]

#: Receives one streaming event (a JSON object with a ``type``).
EventListener = Callable[[dict[str, Any]], None]
#: Sees each new displayed result, with its index in ``results``.
DisplayListener = Callable[[dict[str, Any], int], None]


def result_from_bundle(
    data: Mapping[str, Any], metadata: Mapping[str, Any], *, main: bool
) -> dict[str, Any]:
    """A contract Result from a MIME bundle: all of ``data`` plus the named fields."""
    result: dict[str, Any] = {}
    bundle = dict(data)
    chart = bundle.pop(CHART_MIME, None)
    plain = bundle.pop(VALUE_MIME, None)
    for name, mime in MIME_BY_FIELD.items():
        if mime in bundle:
            result[name] = bundle[mime]
    if isinstance(chart, dict):
        result["chart"] = chart
    result["data"] = bundle
    result["is_main_result"] = main
    if main and isinstance(plain, dict) and "value" in plain:
        result["plain_value"] = plain
    if metadata:
        result["metadata"] = dict(metadata)
    return result


def _timestamp() -> int:
    return time.time_ns() // 1_000_000


class ExecutionRecorder:
    """Accumulates one run's outputs, in arrival order."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.order: list[dict[str, Any]] = []
        self.artifacts: list[dict[str, Any]] = []
        self.error: dict[str, Any] | None = None
        self.execution_count: int | None = None
        #: The code itself is over: its result (``Out``) or its error has come, and
        #: only the kernel's own end of the request is left.
        self.code_over = False
        self._display_ids: dict[str, list[int]] = {}
        self._clear_on_next_output = False
        self._listeners: list[EventListener] = []
        self.on_display: DisplayListener | None = None

    # -- listeners -------------------------------------------------------------------

    def listen(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(event)

    # -- the output hook -------------------------------------------------------------

    def hook(self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Record one IOPub message (see the module docstring for the mapping)."""
        if msg_type == "stream":
            self._stream(str(content.get("name", "stdout")), str(content.get("text", "")))
        elif msg_type in ("display_data", "execute_result"):
            self._display(msg_type, content)
        elif msg_type == "update_display_data":
            self._update_display(content)
        elif msg_type == "clear_output":
            self._clear(wait=bool(content.get("wait")))
        elif msg_type == "error":
            self._error(content)
        elif msg_type == "execute_input":
            self._count(content.get("execution_count"))

    def _before_output(self) -> None:
        if self._clear_on_next_output:
            self._clear_on_next_output = False
            self.order.clear()

    def _stream(self, name: str, text: str) -> None:
        if not text:
            return
        self._before_output()
        chunks = self.stderr if name == "stderr" else self.stdout
        kind = "stderr" if name == "stderr" else "stdout"
        chunks.append(text)
        self.order.append({"type": kind, "index": len(chunks) - 1})
        self._emit({"type": kind, "text": text, "timestamp": _timestamp()})

    def _display(self, msg_type: str, content: dict[str, Any], *, update: bool = False) -> None:
        data = content.get("data") or {}
        main = msg_type == "execute_result"
        if main:
            self.code_over = True
            self._count(content.get("execution_count"))
        result = result_from_bundle(data, content.get("metadata") or {}, main=main)
        display_id = (content.get("transient") or {}).get("display_id")
        self._before_output()
        self.results.append(result)
        index = len(self.results) - 1
        if isinstance(display_id, str):
            result["display_id"] = display_id
            self._display_ids.setdefault(display_id, []).append(index)
            if update:
                result["update"] = True
        self.order.append({"type": "result", "index": index})
        self._emit({"type": "result", **result})
        if self.on_display is not None:
            self.on_display(result, index)

    def _update_display(self, content: dict[str, Any]) -> None:
        display_id = (content.get("transient") or {}).get("display_id")
        indexes = self._display_ids.get(display_id, []) if isinstance(display_id, str) else []
        if not indexes:
            self._display("display_data", content, update=True)
            return
        for index in indexes:
            updated = result_from_bundle(
                content.get("data") or {}, content.get("metadata") or {}, main=False
            )
            updated["display_id"] = display_id
            updated["is_main_result"] = self.results[index].get("is_main_result", False)
            if self.results[index].get("update"):
                updated["update"] = True
            self.results[index] = updated
            self._emit({"type": "result", **updated})

    def _clear(self, *, wait: bool) -> None:
        if wait:
            self._clear_on_next_output = True
        else:
            self._clear_on_next_output = False
            self.order.clear()
        self._emit({"type": "clear_output", "wait": wait})

    def _error(self, content: dict[str, Any]) -> None:
        self.code_over = True
        traceback = content.get("traceback") or []
        self.error = {
            "name": str(content.get("ename", "Error")),
            "value": str(content.get("evalue", "")),
            "traceback": [str(line) for line in traceback],
        }
        self._emit(
            {
                "type": "error",
                "name": self.error["name"],
                "value": self.error["value"],
                "traceback": "\n".join(self.error["traceback"]),
            }
        )

    def _count(self, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            self.execution_count = value

    # -- results of the run ----------------------------------------------------------

    def add_artifact(self, artifact: dict[str, Any]) -> None:
        self.artifacts.append(artifact)
        self._emit({"type": "artifact", "artifact": artifact})

    def finish_reply(self, reply: Mapping[str, Any]) -> None:
        """Take what only the execute reply tells: the count, and an error missed on IOPub."""
        self._count(reply.get("execution_count"))
        if reply.get("status") == "error" and self.error is None:
            self._error(dict(reply))

    def close(self) -> None:
        """Tell listeners the run has ended (an internal ``end`` event), then drop them."""
        self._emit({"type": "end"})
        self._listeners.clear()

    def to_json(self) -> dict[str, Any]:
        """The Execution object as it stands now."""
        execution: dict[str, Any] = {
            "results": list(self.results),
            "artifacts": list(self.artifacts),
            "logs": {"stdout": list(self.stdout), "stderr": list(self.stderr)},
            "output_order": [dict(ref) for ref in self.order],
        }
        if self.error is not None:
            execution["error"] = self.error
        if self.execution_count is not None:
            execution["execution_count"] = self.execution_count
        return execution
