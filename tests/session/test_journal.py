"""The journal of runs: one object, and so one lock, per path for all of a kernel's users."""

from __future__ import annotations

import threading
from pathlib import Path

from sandbox_magic.notebook.controller import SandboxController
from sandbox_magic.notebook.settings import NotebookSettings
from sandbox_magic.session.journal import Journal, JournalEntry


def _entry(i: int) -> JournalEntry:
    return JournalEntry(f"run_{i}", "sb_1", "default", "http://x", f"cell {i}", "2026-01-01")


def test_the_controller_hands_out_one_journal_per_path(tmp_path: Path) -> None:
    controller = SandboxController(shell=None)
    try:
        settings = NotebookSettings(journal_path=str(tmp_path / "a.jsonl"))
        journal = controller.journal(settings)
        assert controller.journal(settings) is journal  # the same lock every time
        assert controller.session(settings).journal is journal  # the session records there
        moved = NotebookSettings(journal_path=str(tmp_path / "b.jsonl"))
        assert controller.journal(moved).path == tmp_path / "b.jsonl"
    finally:
        controller.close()


def test_records_from_many_threads_while_trimming_keep_the_file_whole(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "runs.jsonl", max_entries=20)
    start = threading.Barrier(8)

    def record(first: int) -> None:
        start.wait()
        for i in range(first, first + 50):
            journal.record(_entry(i))

    threads = [threading.Thread(target=record, args=(n * 50,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    journal.record(_entry(9999))
    lines = (tmp_path / "runs.jsonl").read_text(encoding="utf-8").splitlines()
    entries = journal.entries()
    assert len(entries) == 20
    # Trimmed back once it passed twice the limit, looked at every few entries.
    assert len(lines) <= 50
    assert entries[-1].run_id == "run_9999"
    assert len({e.run_id for e in entries}) == 20  # no line lost or torn by a trim
