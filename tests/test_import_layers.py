"""The package's layers, checked from the source: who may import whom.

Every import counts, also those inside functions and ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sandbox_magic"

#: The one cycle allowed: the type-checking-only import of `Run` in the errors module.
ALLOWED_CYCLES = {frozenset({"sandbox_magic.client._errors", "sandbox_magic.client._models"})}

#: Where IPython (and ipywidgets, which imports it) may be imported.
IPYTHON_HOMES = ("sandbox_magic.notebook", "sandbox_magic.render.publish")

#: Source the server sends to run inside the sandbox's kernel (never imported by this
#: process), so it may use the kernel's IPython.
KERNEL_SIDE = ("sandbox_magic.server.charts", "sandbox_magic.server.kernel_side")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imported_names(path: Path) -> set[str]:
    """Every module name an import statement in ``path`` mentions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in MODULES else node.module)
    return names


def _internal_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in _imported_names(path):
            while imported and imported not in MODULES:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "sandbox_magic":
                targets.add(imported)
        edges[name] = targets
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_module_list_is_complete() -> None:
    assert {"sandbox_magic.wire", "sandbox_magic.client", "sandbox_magic.notebook.magics"} <= set(
        MODULES
    )


def test_no_import_cycle_but_the_type_checking_one() -> None:
    cycles = [c for c in _cycles(_internal_edges()) if frozenset(c) not in ALLOWED_CYCLES]
    assert cycles == []


@pytest.mark.parametrize("third_party", ["IPython", "ipywidgets"])
def test_ipython_is_imported_only_at_the_notebook_edge(third_party: str) -> None:
    offenders = sorted(
        name
        for name, path in MODULES.items()
        if not name.startswith(IPYTHON_HOMES + KERNEL_SIDE)
        and any(i == third_party or i.startswith(f"{third_party}.") for i in _imported_names(path))
    )
    assert offenders == []


def _importers(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    edges = _internal_edges()
    return sorted(
        f"{name} -> {target}"
        for name, targets in edges.items()
        if name == layer or name.startswith(f"{layer}.")
        for target in targets
        if target.startswith(forbidden)
    )


def test_the_server_uses_only_itself_and_the_wire_module() -> None:
    own = ("sandbox_magic.server", "sandbox_magic.wire")
    outside = [
        edge
        for edge in _importers("sandbox_magic.server", ("sandbox_magic.",))
        if not edge.split(" -> ")[1].startswith(own)
    ]
    assert outside == []


def test_the_client_knows_nothing_above_it() -> None:
    above = (
        "sandbox_magic.session",
        "sandbox_magic.render",
        "sandbox_magic.notebook",
        "sandbox_magic.server",
        "sandbox_magic.transfer",
        "sandbox_magic.demo",
    )
    assert _importers("sandbox_magic.client", above) == []


def test_session_and_render_do_not_import_the_notebook_package() -> None:
    notebook = ("sandbox_magic.notebook",)
    assert _importers("sandbox_magic.session", notebook) == []
    assert _importers("sandbox_magic.render", notebook) == []
    assert _importers("sandbox_magic.transfer", notebook) == []


def test_the_checks_see_a_cycle_when_there_is_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
