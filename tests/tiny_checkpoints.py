"""Tiny fitted models and forged copies of their checkpoints, shared by the hardening tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from saq_wrappers.io import load_checkpoint, save_checkpoint
from saq_wrappers.score import ScoreSupportSampler
from saq_wrappers.vqvae import VQVAEQuantizer

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def fitted_quantizer(data: tuple[np.ndarray, np.ndarray], n_steps: int, **settings: Any) -> VQVAEQuantizer:
    """A quantizer of the 2-D test spaces fitted for ``n_steps`` on ``data`` (observations, actions)."""
    quantizer = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **settings)
    quantizer.fit(*data, n_steps=n_steps, progress=False)
    return quantizer


def fitted_sampler(data: tuple[np.ndarray, np.ndarray], n_steps: int, **settings: Any) -> ScoreSupportSampler:
    """An ARQ sampler of the 2-D test spaces fitted for ``n_steps`` on ``data``."""
    sampler = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, **settings)
    sampler.fit(*data, n_steps=n_steps, progress=False)
    return sampler


def forge(src: Path, dst: Path, kind: str, **changes: Any) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with metadata entries replaced (tensors unchanged)."""
    tensors, meta = load_checkpoint(src, kind)
    save_checkpoint(dst, tensors, {**meta, **changes})
    return dst
