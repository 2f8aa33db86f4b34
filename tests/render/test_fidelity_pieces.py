"""Pure pieces of output fidelity: cell numbers, media, removed scripts, carried values."""

from __future__ import annotations

import pytest

from sandbox_magic.client import Result
from sandbox_magic.render.bundle import result_bundle
from sandbox_magic.render.carried import NOT_CARRIED, VALUE_MIME, carried_value
from sandbox_magic.render.cell_numbers import CellNumbers, relabel_cells
from sandbox_magic.render.display_ids import DisplayChanges, DisplayIds
from sandbox_magic.render.markup_sanitiser import clean_html
from sandbox_magic.render.redact import Redactor
from sandbox_magic.render.script_report import removed_scripts
from sandbox_magic.server import kernel_side

WAV = "data:audio/wav;base64,UklGRiQAAABXQVZF"


def test_value_mime_is_the_same_on_both_sides() -> None:
    assert VALUE_MIME == kernel_side.VALUE_MIME


@pytest.mark.parametrize(
    ("value", "carried"),
    [(41, True), ("s", True), ([1, {"a": None}], True), (True, True), (float("nan"), False),
     ((1, 2), False), ({1: 2}, False), (object(), False), ("x" * 300_000, False)],
)  # fmt: skip
def test_kernel_side_carries_only_plain_data(value: object, carried: bool) -> None:
    assert (kernel_side.plain_value(value) is not None) is carried


def test_carried_value_is_decoded_and_redacted() -> None:
    result = Result(text="'k'", is_main_result=True, extra={"plain_value": {"value": ["SECRET"]}})
    value = carried_value(result, Redactor(["SECRET"]))
    assert isinstance(value, list)
    assert len(value) == 1
    assert "SECRET" not in value[0]
    assert (
        carried_value(Result(text="41", is_main_result=True, extra={"plain_value": {"value": 41}}))
        == 41
    )
    assert carried_value(Result(text="1", is_main_result=True)) is NOT_CARRIED
    odd = Result(text="1", extra={"plain_value": {"value": 1, "more": 2}})
    assert carried_value(odd) is NOT_CARRIED


def test_value_mime_is_never_shown() -> None:
    data, _ = result_bundle(Result(text="41", data={VALUE_MIME: {"value": 41}}))
    assert data == {"text/plain": "41"}


def test_cell_references_follow_the_local_numbers() -> None:
    lines = ["\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[11]\x1b[39m, line 4", "In[11] stays"]
    assert relabel_cells(lines, {11: 15}) == [
        "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[15]\x1b[39m, line 4",
        "In[11] stays",
    ]
    assert relabel_cells(["Cell In[2], line 1"], {3: 9}) == ["Cell In[2], line 1"]
    numbers = CellNumbers()
    numbers.record("ctx", 2, 5)
    numbers.record("ctx", None, 6)
    assert numbers.of("ctx") == {2: 5}
    assert numbers.of("other") == {}


def test_audio_and_video_keep_their_data_sources() -> None:
    audio = f'<audio controls><source src="{WAV}" type="audio/wav"></audio>'
    assert WAV in clean_html(audio).markup
    data, _ = result_bundle(Result(html=audio, text="<Audio>"))
    assert WAV in data["text/html"]
    assert "removed" not in data["text/plain"]


def test_removed_scripts_are_reported() -> None:
    before = '<div onclick="x()">a</div><script>1</script><script>2</script><iframe></iframe>'
    after = clean_html(before).markup
    assert "<script" not in after
    assert "onclick" not in after
    assert removed_scripts(before, after) == [
        "2 <script> elements",
        "1 <iframe> element",
        "1 event handler (on...)",
    ]
    assert removed_scripts("<b>plain</b>", "<b>plain</b>") == []
    data, _ = result_bundle(Result(html="<div>c</div><script>s()</script>", text="HTML"))
    assert "1 <script> element removed" in data["text/plain"]
    assert "allow_javascript" in data["text/html"]


def test_display_changes_report_results_updated_in_place() -> None:
    changes = DisplayChanges()
    first = [Result(text="0%", extra={"display_id": "d"}), Result(text="other")]
    assert changes.changed(first, 2) == []
    later = [Result(text="50%", extra={"display_id": "d"}), Result(text="changed, no id")]
    assert changes.changed(later, 2) == [later[0]]
    assert changes.changed(later, 2) == []
    ids = DisplayIds(max_ids=2)
    local = ids.local("a")
    assert ids.local("a") == local
    assert ids.known("a") == local
    ids.local("b")
    ids.local("c")
    assert ids.known("a") is None  # the oldest is forgotten
