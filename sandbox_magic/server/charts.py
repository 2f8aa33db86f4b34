"""Chart data from matplotlib figures, computed inside a Python kernel.

`install` registers an IPython formatter for ``matplotlib.figure.Figure`` (by name,
so matplotlib is not imported until the code uses it). Whenever a figure is
displayed (``plt.show()``, the inline backend at the end of a cell, ``display(fig)``),
its bundle gains ``CHART_MIME``: the chart's type, title, axis labels and data, in
the shape the hosted service gives as a result's ``chart``. The server moves it out
of the bundle into the result's ``chart`` field.

Covered: bar (vertical and horizontal), line, scatter and pie, from the figure's
first axes that holds one of them. Pie values are each slice's share of the whole,
in percent, since a drawn pie keeps only its angles. A figure with no such plot gets
no chart. Extraction never fails a display: on any error the chart is left out.

This module runs in the kernel process, which may not be able to import this package
(a confined kernel sees only the Python installation): `kernel_code` gives its source
as code for the kernel to run. It imports nothing but IPython and matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

__all__ = ["CHART_MIME", "extract_chart", "install", "kernel_code"]

CHART_MIME: Final = "application/vnd.sandbox-magic.chart+json"


def _number(value: Any) -> float | int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number):
        return None
    return int(number) if number.is_integer() else number


def _axis_label(axis: Any, position: float) -> Any:
    """The category name at ``position`` on a categorical axis, else the number."""
    units = axis.get_units()
    mapping = getattr(units, "_mapping", None)
    if isinstance(mapping, dict):
        for name, index in mapping.items():
            if _number(index) == _number(round(position)):
                return str(name)
    return _number(position)


def _group(artist: Any, fallback: str) -> str:
    label = str(artist.get_label() or "")
    return fallback if not label or label.startswith("_") else label


def _bar(ax: Any) -> list[dict[str, Any]]:
    from matplotlib.container import BarContainer

    elements: list[dict[str, Any]] = []
    for container in ax.containers:
        if not isinstance(container, BarContainer):
            continue
        group = _group(container, "default")
        horizontal = getattr(container, "orientation", "vertical") == "horizontal"
        for rect in container.patches:
            if horizontal:
                where = rect.get_y() + rect.get_height() / 2
                label, value = _axis_label(ax.yaxis, where), rect.get_width()
            else:
                where = rect.get_x() + rect.get_width() / 2
                label, value = _axis_label(ax.xaxis, where), rect.get_height()
            elements.append({"label": str(label), "value": _number(value), "group": group})
    return elements


def _line(ax: Any) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    for index, line in enumerate(ax.get_lines()):
        group = _group(line, f"line {index + 1}")
        for x, y in line.get_xydata():
            elements.append({"x": _axis_label(ax.xaxis, x), "y": _number(y), "group": group})
    return elements


def _scatter(ax: Any) -> list[dict[str, Any]]:
    from matplotlib.collections import PathCollection

    elements: list[dict[str, Any]] = []
    collections = [c for c in ax.collections if isinstance(c, PathCollection)]
    for index, collection in enumerate(collections):
        group = _group(collection, f"series {index + 1}")
        offsets: Any = collection.get_offsets()
        for x, y in offsets:
            elements.append(
                {"x": _axis_label(ax.xaxis, x), "y": _number(y), "label": group, "group": group}
            )
    return elements


def _pie(ax: Any) -> list[dict[str, Any]]:
    from matplotlib.patches import Wedge

    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    total = sum(abs(w.theta2 - w.theta1) for w in wedges) or 1.0
    return [
        {
            "label": _group(wedge, f"slice {index + 1}"),
            "value": _number(round(100 * abs(wedge.theta2 - wedge.theta1) / total, 4)),
            "group": "default",
        }
        for index, wedge in enumerate(wedges)
    ]


def _chart_of(ax: Any) -> dict[str, Any] | None:
    from matplotlib.patches import Wedge

    kind: str
    if any(isinstance(p, Wedge) for p in ax.patches):
        kind, elements = "pie", _pie(ax)
    elif (bars := _bar(ax)) and not ax.get_lines():
        kind, elements = "bar", bars
    elif ax.get_lines():
        kind, elements = "line", _line(ax)
    elif points := _scatter(ax):
        kind, elements = "scatter", points
    else:
        return None
    title = ax.get_title() or ""
    if not title and ax.figure is not None and getattr(ax.figure, "_suptitle", None):
        title = ax.figure._suptitle.get_text()
    return {
        "type": kind,
        "title": title,
        "x_label": "" if kind == "pie" else ax.get_xlabel(),
        "y_label": "" if kind == "pie" else ax.get_ylabel(),
        "x_unit": None,
        "y_unit": None,
        "elements": elements,
    }


def extract_chart(figure: Any) -> dict[str, Any] | None:
    """The chart of the figure's first axes that holds a bar, line, scatter or pie plot."""
    for ax in figure.get_axes():
        chart = _chart_of(ax)
        if chart is not None:
            return chart
    return None


def _safe_extract(figure: Any) -> dict[str, Any] | None:
    try:
        return extract_chart(figure)
    except Exception:
        return None


def _is_figure(obj: Any) -> bool:
    """Whether ``obj`` is a matplotlib Figure (without importing matplotlib)."""
    return any(
        getattr(cls, "__module__", "") == "matplotlib.figure" and cls.__name__ == "Figure"
        for cls in type(obj).__mro__
    )


def install(shell: Any = None) -> None:
    """Register the chart formatter with the running IPython (idempotent).

    The formatter recognises figures itself rather than registering a printer for the
    Figure type: activating the inline backend removes every printer registered for
    Figure, in every formatter.
    """
    from IPython import get_ipython
    from IPython.core.formatters import JSONFormatter

    shell = shell or get_ipython()
    if shell is None:
        return
    display = shell.display_formatter
    if CHART_MIME not in display.formatters:

        class ChartFormatter(JSONFormatter):
            format_type = CHART_MIME

            def __call__(self, obj: Any) -> dict[str, Any] | None:
                if self.enabled and _is_figure(obj):
                    return _safe_extract(obj)
                return None

        display.formatters[CHART_MIME] = ChartFormatter(parent=display)
    if CHART_MIME not in display.active_types:
        display.active_types = [*display.active_types, CHART_MIME]


def kernel_code() -> str:
    """One statement that installs the chart formatter in a kernel, from this source.

    It runs in a namespace of its own, so it leaves no names in the user's.
    """
    source = Path(__file__).read_text(encoding="utf-8") + "\ninstall()\n"
    return (
        f"exec(compile({source!r}, 'sandbox-magic-charts', 'exec'), "
        "{'__name__': 'sandbox_magic_charts'})"
    )
