"""Run output folders appear only when a run has finished; refused or failed runs leave nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from saq_wrappers.app.outputs import run_folder
from saq_wrappers.errors import OutputPathError


def test_a_finished_run_is_renamed_into_place_with_its_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "run"
    with run_folder(target) as staging:
        assert staging.parent == target.parent and staging.name.startswith(".run.incomplete-")
        assert not target.exists()  # nothing named like a finished run while it runs
        (staging / "results.json").write_text("{}")
    assert [p.name for p in target.iterdir()] == ["results.json"]
    assert [p.name for p in target.parent.iterdir()] == ["run"]


def test_a_failed_run_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path / "run") as staging:
            (staging / "quantizer.safetensors").write_bytes(b"x")
            raise RuntimeError("boom")
    assert not list(tmp_path.iterdir())


def test_an_empty_existing_folder_is_used_and_an_occupied_one_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with run_folder(tmp_path / "empty") as staging:
        (staging / "x").write_text("")
    assert (tmp_path / "empty" / "x").is_file()
    with pytest.raises(OutputPathError, match="already holds files"):
        with run_folder(tmp_path / "empty"):
            pass
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputPathError, match="is a file"):
        with run_folder(tmp_path / "file" / "run"):
            pass
