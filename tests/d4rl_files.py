"""A small D4RL-style hdf5 file for the dataset resolver's tests."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def d4rl_file(path: Path, n: int = 20) -> Path:
    """``n`` random Pendulum-shaped transitions (3-D observations, 1-D actions) with a timeout every
    10 steps, written as a D4RL-style hdf5 file at ``path``."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        handle["observations"] = rng.normal(size=(n, 3)).astype(np.float32)
        handle["actions"] = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
        handle["rewards"] = rng.normal(size=n).astype(np.float32)
        handle["terminals"] = np.zeros(n, bool)
        handle["timeouts"] = np.arange(n) % 10 == 9
    return path
