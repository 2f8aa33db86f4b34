"""OutputCursor: increments in display order, never an output twice."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox_magic.client import (
    Execution,
    Logs,
    Output,
    OutputCursor,
    OutputRef,
    Result,
    StreamChunk,
    ordered_outputs,
)


def execution(
    stdout: list[str] | None = None,
    stderr: list[str] | None = None,
    results: list[str] | None = None,
    order: list[tuple[str, int]] | None = None,
) -> Execution:
    return Execution(
        results=tuple(Result(text=t) for t in results or []),
        logs=Logs(stdout=tuple(stdout or []), stderr=tuple(stderr or [])),
        output_order=None if order is None else tuple(OutputRef(k, i) for k, i in order),
    )


def show(outputs: list[Output]) -> list[str]:
    """A compact rendering: 'o:text', 'e:text', 'r:text'."""
    return [
        f"{o.name[3]}:{o.text}" if isinstance(o, StreamChunk) else f"r:{o.text}" for o in outputs
    ]


def test_output_order_interleaves_prints_and_results() -> None:
    snap = execution(
        stdout=["a", "b"],
        stderr=["w"],
        results=["R"],
        order=[("stdout", 0), ("result", 0), ("stderr", 0), ("stdout", 1)],
    )
    assert show(ordered_outputs(snap)) == ["o:a", "r:R", "e:w", "o:b"]


def test_without_order_streams_come_before_results() -> None:
    snap = execution(stdout=["a", "b"], stderr=["w"], results=["R"])
    assert show(ordered_outputs(snap)) == ["o:a", "o:b", "e:w", "r:R"]


def test_growing_snapshots_yield_only_new_outputs() -> None:
    cursor = OutputCursor()
    assert show(cursor.advance(execution(stdout=["a"], order=[("stdout", 0)]))) == ["o:a"]
    assert cursor.advance(execution(stdout=["a"], order=[("stdout", 0)])) == []
    grown = execution(
        stdout=["a", "b"], results=["R"], order=[("stdout", 0), ("result", 0), ("stdout", 1)]
    )
    assert show(cursor.advance(grown)) == ["r:R", "o:b"]
    assert cursor.advance(grown) == []
    assert cursor.counts == (2, 0, 1)


def test_fallback_snapshots_yield_only_new_outputs() -> None:
    cursor = OutputCursor()
    assert show(cursor.advance(execution(stdout=["a"]))) == ["o:a"]
    assert show(cursor.advance(execution(stdout=["a", "b"], stderr=["w"]))) == ["o:b", "e:w"]
    assert show(cursor.advance(execution(stdout=["a", "b"], stderr=["w"], results=["R"]))) == [
        "r:R"
    ]


def test_order_ahead_of_its_list_waits_for_the_item() -> None:
    cursor = OutputCursor()
    lagging = execution(stdout=["a"], results=[], order=[("stdout", 0), ("result", 0)])
    assert show(cursor.advance(lagging)) == ["o:a"]
    caught_up = execution(
        stdout=["a", "b"], results=["R"], order=[("stdout", 0), ("result", 0), ("stdout", 1)]
    )
    assert show(cursor.advance(caught_up)) == ["r:R", "o:b"]


def test_items_left_out_of_the_order_are_not_shown() -> None:
    cursor = OutputCursor()
    snap = execution(stdout=["a", "b"], results=["R"], order=[("stdout", 0)])
    assert show(cursor.advance(snap)) == ["o:a"]
    assert cursor.advance(snap) == []
    assert show(ordered_outputs(snap)) == ["o:a"]


def test_clear_output_is_reported_and_later_outputs_follow() -> None:
    cursor = OutputCursor()
    first = execution(stdout=["a"], results=["R"], order=[("stdout", 0), ("result", 0)])
    assert show(cursor.advance(first)) == ["o:a", "r:R"]
    assert not cursor.cleared
    after_clear = execution(stdout=["a", "b"], results=["R"], order=[("stdout", 1)])
    assert show(cursor.advance(after_clear)) == ["o:b"]
    assert cursor.cleared
    assert cursor.advance(after_clear) == []
    assert not cursor.cleared
    assert cursor.follows_order


def test_outputs_cleared_between_two_polls_are_skipped() -> None:
    cursor = OutputCursor()
    assert show(cursor.advance(execution(stdout=["a"], order=[("stdout", 0)]))) == ["o:a"]
    # "b" was printed and cleared before this poll; only "c" remains on display.
    jumped = execution(stdout=["a", "b", "c"], order=[("stdout", 2)])
    assert show(cursor.advance(jumped)) == ["o:c"]
    assert cursor.cleared
    assert cursor.advance(jumped) == []


def test_unknown_kind_in_order_falls_back_for_good() -> None:
    cursor = OutputCursor()
    snap = Execution(
        logs=Logs(stdout=("a",)),
        results=(Result(text="R"),),
        output_order=(OutputRef("result", 0), OutputRef("display", 0)),
    )
    assert show(cursor.advance(snap)) == ["o:a", "r:R"]
    assert not cursor.follows_order
    assert cursor.advance(snap) == []


def test_snapshot_without_order_in_between_does_not_repeat() -> None:
    cursor = OutputCursor()
    assert show(cursor.advance(execution(stdout=["a"], order=[("stdout", 0)]))) == ["o:a"]
    assert show(cursor.advance(execution(stdout=["a", "b"], results=["R"]))) == ["o:b", "r:R"]
    later = execution(
        stdout=["a", "b", "c"],
        results=["R"],
        order=[("stdout", 0), ("stdout", 1), ("result", 0), ("stdout", 2)],
    )
    assert show(cursor.advance(later)) == ["o:c"]
    assert cursor.follows_order


def test_shrinking_lists_never_re_emit() -> None:
    cursor = OutputCursor()
    assert show(cursor.advance(execution(stdout=["a", "b"], results=["R"]))) == [
        "o:a",
        "o:b",
        "r:R",
    ]
    assert cursor.advance(execution(stdout=["a"])) == []
    assert cursor.advance(execution()) == []
    assert show(cursor.advance(execution(stdout=["a", "b", "c"], results=["R", "S"]))) == [
        "o:c",
        "r:S",
    ]


def test_empty_and_absent_executions_are_fine() -> None:
    assert ordered_outputs(Execution()) == []
    assert ordered_outputs(Execution.from_json(None)) == []
    assert OutputCursor().advance(Execution()) == []


def test_results_keep_their_identity() -> None:
    result = Result(text="1", html="<b>1</b>", is_main_result=True)
    snap = Execution(results=(result,), output_order=(OutputRef("result", 0),))
    assert ordered_outputs(snap) == [result]


def test_order_parsed_from_server_json_is_followed() -> None:
    snap = Execution.from_json(
        {
            "logs": {"stdout": ["x\n"], "stderr": ["y\n"]},
            "results": [{"text": "3", "is_main_result": True}],
            "output_order": [
                {"type": "stderr", "index": 0},
                {"type": "result", "index": 0},
                {"type": "stdout", "index": 0},
            ],
        }
    )
    assert show(ordered_outputs(snap)) == ["e:y\n", "r:3", "o:x\n"]


# -- property: increments add up to the final rendering -----------------------------

KINDS = ("stdout", "stderr", "result")


@st.composite
def growing_run(draw: Any) -> tuple[list[Execution], Execution, bool]:
    """A run's true output sequence (with clear_output calls), and growing snapshots of it."""
    events = draw(st.lists(st.sampled_from((*KINDS, "clear")), max_size=25))
    with_order = draw(st.booleans())
    if not with_order:
        events = [e for e in events if e != "clear"]  # clearing needs the order
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=8)))
    cuts.append(len(events))

    def snapshot(n: int) -> Execution:
        lists: dict[str, list[str]] = {k: [] for k in KINDS}
        order: list[tuple[str, int]] = []
        for position, kind in enumerate(events[:n]):
            if kind == "clear":
                order.clear()
                continue
            order.append((kind, len(lists[kind])))
            lists[kind].append(f"{kind}{position}")
        return execution(
            lists["stdout"], lists["stderr"], lists["result"], order if with_order else None
        )

    snapshots = [snapshot(n) for n in cuts]
    return snapshots, snapshots[-1], with_order


@settings(max_examples=300, deadline=None)
@given(growing_run())
def test_increments_rebuild_the_final_rendering(
    case: tuple[list[Execution], Execution, bool],
) -> None:
    """Applying increments (and clears) to a display ends where ordered_outputs says."""
    snapshots, final, with_order = case
    cursor = OutputCursor()
    display: list[Output] = []
    every: list[str] = []
    for snap in snapshots:
        increment = cursor.advance(snap)
        if cursor.cleared:
            display = []
        display += increment
        every += show(increment)
    expected = show(ordered_outputs(final))
    assert len(every) == len(set(every))  # nothing twice, ever
    if with_order:
        assert show(display) == expected
    else:
        # Without an order, increments interleave by snapshot; each kind keeps its order.
        assert sorted(show(display)) == sorted(expected)
        for prefix in ("o:", "e:", "r:"):
            assert [x for x in show(display) if x.startswith(prefix)] == [
                x for x in expected if x.startswith(prefix)
            ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 6),
            st.integers(0, 6),
            st.integers(0, 6),
            st.one_of(
                st.none(),
                st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 7)), max_size=12),
            ),
        ),
        max_size=10,
    )
)
def test_arbitrary_inconsistent_snapshots_never_crash_or_repeat(
    snaps: list[tuple[int, int, int, list[tuple[str, int]] | None]],
) -> None:
    """Lists shrink and grow, orders point anywhere: still no item emitted twice."""
    cursor = OutputCursor()
    emitted: list[str] = []
    for n_out, n_err, n_res, order in snaps:
        snap = execution(
            [f"o{i}" for i in range(n_out)],
            [f"e{i}" for i in range(n_err)],
            [f"r{i}" for i in range(n_res)],
            order,
        )
        emitted += [o.text or "" for o in cursor.advance(snap)]
    assert len(emitted) == len(set(emitted))
