"""The code snippets that a transfer submits to the sandbox.

Every snippet has the same shape: the portable codec (the parts of `_portable`
joined, with annotations, docstrings and imports of sandbox_magic stripped) defined
inside one function, which
calls one entry point with the user's namespace and is deleted right after. So a
transfer leaves no helper names behind, and works with only the standard library on
the remote side (numpy, pandas, pyarrow are used when present).

The function is re-created with fresh globals (``types.FunctionType`` over its code
object) before it is called, so user variables that shadow builtins (``type = ...``,
``len = ...``) cannot break it.

Only validated values reach the generated text, and only as Python literals made by
`repr` (identifiers, fixed format names, hex ids, integers, base64 text): no user
string is ever spliced into code.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap

from sandbox_magic.transfer import _portable

__all__ = [
    "discard_code",
    "library_source",
    "probe_code",
    "pull_begin_code",
    "pull_chunk_code",
    "pull_file_code",
    "push_chunk_code",
    "push_file_code",
    "push_last_chunk_code",
    "remove_file_code",
]

_Literal = str | int | bool | list[str]


class _StripTyping(ast.NodeTransformer):
    """Remove annotations, docstrings, ``from __future__`` imports and the parts'
    imports of each other (joined, they share one namespace)."""

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        module = node.module or ""
        return None if module == "__future__" or module.startswith("sandbox_magic") else node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.returns = None
        arguments = node.args
        for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
            arg.annotation = None
        if arguments.vararg is not None:
            arguments.vararg.annotation = None
        if arguments.kwarg is not None:
            arguments.kwarg.annotation = None
        self.generic_visit(node)
        node.body = _without_docstring(node.body)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.generic_visit(node)
        node.body = _without_docstring(node.body)
        return node


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]
    return body or [ast.Pass()]


@functools.cache
def library_source() -> str:
    """The portable codec's parts joined as compact source, ready for any Python 3.8+."""
    body: list[ast.stmt] = []
    for part in _portable.PARTS:
        body += _without_docstring(ast.parse(inspect.getsource(part)).body)
    tree = ast.fix_missing_locations(_StripTyping().visit(ast.Module(body=body, type_ignores=[])))
    return ast.unparse(tree)


def _literal(value: _Literal) -> str:
    if not isinstance(value, str | int | list):
        raise TypeError(f"not a safe literal: {type(value).__name__}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise TypeError("only lists of str are embedded")
    return repr(value)


def _call(entry: str, *args: _Literal) -> str:
    return f"    {entry}({', '.join(['ns', *(_literal(a) for a in args)])})\n"


def _snippet(*calls: str) -> str:
    entry_name = _portable.ENTRY_NAME
    return (
        f"def {entry_name}(ns):\n"
        f"{textwrap.indent(library_source(), '    ')}\n"
        f"{''.join(calls)}"
        "try:\n"
        f"    __import__('types').FunctionType({entry_name}.__code__, "
        "{'__builtins__': __import__('builtins')})(globals())\n"
        "finally:\n"
        f"    del {entry_name}\n"
    )


def probe_code(transfer_id: str) -> str:
    """Code that reports the sandbox's Python and optional libraries."""
    return _snippet(_call("probe", transfer_id))


def pull_begin_code(
    transfer_id: str,
    name: str,
    accept: list[str],
    chunk_bytes: int,
    max_bytes: int,
    compress: bool,
) -> str:
    """Code that encodes the remote variable `name` and emits its first chunk."""
    return _snippet(
        _call("pull_begin", transfer_id, name, accept, chunk_bytes, max_bytes, compress)
    )


def pull_chunk_code(transfer_id: str, index: int) -> str:
    """Code that emits chunk `index` of a pull already begun."""
    return _snippet(_call("pull_chunk", transfer_id, index))


def push_chunk_code(
    transfer_id: str, index: int, text: str, compression: str, raw_size: int
) -> str:
    """Code that appends one chunk (base64 `text`) to the remote buffer of a push."""
    return _snippet(_call("push_chunk", transfer_id, index, text, compression, raw_size))


def push_last_chunk_code(
    transfer_id: str,
    index: int,
    text: str,
    compression: str,
    raw_size: int,
    *,
    name: str,
    fmt: str,
    kind: str,
    size: int,
    sha256: str,
) -> str:
    """Code that appends the last chunk, verifies the payload, decodes it and binds `name`."""
    return _snippet(
        _call("push_chunk", transfer_id, index, text, compression, raw_size),
        _call("push_finish", transfer_id, name, fmt, kind, size, sha256, index + 1),
    )


def discard_code(transfer_id: str) -> str:
    """Code that drops the remote buffer of an abandoned transfer."""
    return _snippet(_call("discard", transfer_id))


def push_file_code(
    transfer_id: str, path: str, *, name: str, fmt: str, kind: str, size: int, sha256: str
) -> str:
    """Code that reads a pushed file at `path`, deletes it, verifies, decodes and binds `name`."""
    return _snippet(_call("push_file", transfer_id, path, name, fmt, kind, size, sha256))


def pull_file_code(
    transfer_id: str, name: str, accept: list[str], max_bytes: int, path: str
) -> str:
    """Code that encodes the remote variable `name` into a new file at `path`."""
    return _snippet(_call("pull_file", transfer_id, name, accept, max_bytes, path))


def remove_file_code(transfer_id: str, path: str) -> str:
    """Code that deletes a transfer's file."""
    return _snippet(_call("remove_file", transfer_id, path))
