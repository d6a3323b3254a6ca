"""Shared test settings: small thread pools (CI has 2 cores) and offline Minari storage."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_minari_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point Minari and the saq cache at per-session temp folders: tests never touch user data."""
    root = tmp_path_factory.getbasetemp() / "minari"
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    cache = tmp_path_factory.getbasetemp() / "saq_cache"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("SAQ_CACHE_DIR", str(cache))
    os.environ.setdefault("MUJOCO_GL", "egl")
