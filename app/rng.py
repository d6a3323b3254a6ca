"""Keeping the caller's global random generators as they were around work that draws from them."""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch

__all__ = ["global_rng_kept"]


@contextlib.contextmanager
def global_rng_kept(device: str = "cpu") -> Iterator[None]:
    """Restore torch's (CPU, and ``device``'s when it is a CUDA device), numpy's and ``random``'s
    global generators on exit, so whatever runs inside draws without moving what runs after.

    Why: SB3's model loading re-seeds the global generators, and an evaluation that samples
    actions draws from torch's; either would otherwise change the training or rollouts that
    follow it.
    """
    cuda = [torch.device(device)] if torch.device(device).type == "cuda" else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
