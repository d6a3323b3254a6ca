"""A small file in the layout of D4RL's ``kitchen-complete-v0`` (made here: the tests need no data).

Like the real file: ``observations`` (N, 60) float32 whose last 30 columns are the constant goal,
``actions`` (N, 9) float32 in [-1, 1], ``rewards`` counting the tasks done so far (0..4),
``terminals`` true on the last row of every episode, ``timeouts`` all false, no
``next_observations``, and an ``infos`` group the reader must ignore. Every observation encodes
where it is (``observations[i, 0] = 100 * episode + step``) so a test can tell which row a next
observation came from.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from saq_wrappers.integrations.gymnasium_robotics import KITCHEN_GOAL

#: Episode lengths of the small file (the real one has 19 of 182-207 steps).
LENGTHS = (5, 7, 4, 6)


def kitchen_file(path: Path, lengths: tuple[int, ...] = LENGTHS, seed: int = 0) -> Path:
    """Write the small kitchen-layout file at ``path`` and return it."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    observations = rng.normal(size=(n, 60)).astype(np.float32)
    observations[:, 30:] = KITCHEN_GOAL
    rewards, terminals, row = np.zeros(n, np.float32), np.zeros(n, bool), 0
    for episode, length in enumerate(lengths):
        observations[row:row + length, 0] = 100 * episode + np.arange(length)
        rewards[row:row + length] = np.minimum(4, np.arange(length) * 4 // max(1, length - 1))
        terminals[row + length - 1] = True
        row += length
    with h5py.File(path, "w") as handle:
        handle["observations"] = observations
        handle["actions"] = rng.uniform(-0.999, 0.999, size=(n, 9)).astype(np.float32)
        handle["rewards"] = rewards
        handle["terminals"] = terminals
        handle["timeouts"] = np.zeros(n, bool)
        infos = handle.create_group("infos")
        infos["qpos"] = rng.normal(size=(n, 30))
        infos["qvel"] = rng.normal(size=(n, 29))
    return path
