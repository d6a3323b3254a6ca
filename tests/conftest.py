"""Shared test settings: small thread pools (CI has 2 cores) and offline Minari storage."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

#: The checkout's root: ``benchmarks`` is a top-level folder of it, not an installed package.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


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


@pytest.fixture(scope="session")
def builtin_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in Pendulum expert data (10 episodes), generated once per session into the saq
    cache folder every test points ``SAQ_CACHE_DIR`` at (process-pool workers inherit it)."""
    from saq_wrappers.experts import quickstart_dataset

    cache = tmp_path_factory.getbasetemp() / "saq_cache"
    cache.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAQ_CACHE_DIR", str(cache))
        quickstart_dataset(n_episodes=10, progress=False)
    return cache
