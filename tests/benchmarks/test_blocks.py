"""Owned blocks of BENCHMARKS.md survive a rewrite and are replaced in place."""

from __future__ import annotations

from pathlib import Path

from benchmarks.blocks import blocks_of, put_block


def test_a_block_is_added_then_replaced_in_place(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    path.write_text("# Benchmarks\n\nintro\n")
    put_block(path, "speed", "first figures")
    put_block(path, "other", "kept")
    put_block(path, "speed", "second figures\n")
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n<!-- speed:begin -->\nsecond figures\n")
    assert "first figures" not in text
    assert text.count("<!-- speed:begin -->") == 1
    assert blocks_of(text) == (
        "<!-- speed:begin -->\nsecond figures\n<!-- speed:end -->\n"
        "<!-- other:begin -->\nkept\n<!-- other:end -->\n"
    )
    assert blocks_of("no blocks here") == ""
