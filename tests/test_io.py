"""Atomic output and safetensors checkpoints: nothing half-written, foreign files refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from saq_wrappers import __version__
from saq_wrappers.errors import CheckpointError, OutputPathError
from saq_wrappers.io import atomic_output, load_checkpoint, save_checkpoint


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    tensors = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    save_checkpoint(tmp_path / "c.safetensors", tensors, {"kind": "thing", "x": [1, 2]})
    loaded, meta = load_checkpoint(tmp_path / "c.safetensors", "thing")
    assert meta == {"kind": "thing", "x": [1, 2], "library_version": __version__}
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_output_gets_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_failure_inside_atomic_output_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_missing_and_read_only_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutputPathError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "c.safetensors", {"w": torch.zeros(1)}, {"kind": "k"})
    # root ignores permission bits, so a read-only folder is simulated at the os.access level
    import saq_wrappers.io as io_module

    monkeypatch.setattr(io_module.os, "access", lambda path, mode: False)
    with pytest.raises(OutputPathError, match="read-only"):
        save_checkpoint(tmp_path / "c.safetensors", {"w": torch.zeros(1)}, {"kind": "k"})
    assert list(tmp_path.iterdir()) == []


def test_corrupted_foreign_and_wrong_kind_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(garbage, "thing")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a saq-wrappers checkpoint"):
        load_checkpoint(foreign, "thing")
    ours = tmp_path / "ours.safetensors"
    save_checkpoint(ours, {"w": torch.zeros(2)}, {"kind": "other"})
    with pytest.raises(CheckpointError, match="holds a 'other' checkpoint"):
        load_checkpoint(ours, "thing")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(ours.read_bytes()[:-3])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated, "other")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors", "thing")
