"""Built-in scripted experts and the cached dataset the quickstart trains on.

The quickstart must run without network and without pre-trained agents, so the package carries
its own expert: an energy-shaping swing-up controller with a PD stabiliser for Gymnasium's
``Pendulum-v1``. With action noise it gives a narrow, expert-style dataset, the regime where SAQ
is claimed to help most (SAQ section 5).
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np

from saq_wrappers.io import atomic_output, read_json_file
from saq_wrappers.rollouts import StepPolicy, noisy_policy, random_policy, rollout
from saq_wrappers.transitions import Transitions

#: Version of the quickstart dataset recipe; bump it when the recipe changes so caches rebuild.
#: Version 2 states the noise in half action ranges (version 1: 0.1 of the full range); the
#: arrays are the same.
QUICKSTART_DATASET_VERSION = 2


class PendulumSwingUpExpert:
    """Scripted expert for ``Pendulum-v1`` (observation ``[cos th, sin th, th_dot]``, th=0 up).

    Pendulum-v1's dynamics are ``th_ddot = 15 sin th + 3 u`` (g=10, m=l=1), so the mechanical
    energy ``E = th_dot^2 / 6 + 5 cos th`` changes as ``dE/dt = th_dot * u``: pushing along the
    velocity pumps energy until ``E`` reaches the upright value 5 (swing-up); near the top a PD
    law ``u = -(kp th + kd th_dot)`` stabilises the linearised system. Torque is clipped to
    ``[-2, 2]``.
    """

    def __init__(self, kp: float = 10.0, kd: float = 2.0, pump_gain: float = 1.5,
                 catch_angle: float = 0.5) -> None:
        self.kp, self.kd, self.pump_gain, self.catch_angle = kp, kd, pump_gain, catch_angle

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations, dtype=np.float64).reshape(-1, 3)
        cos_th, sin_th, th_dot = obs[:, 0], obs[:, 1], obs[:, 2]
        th = np.arctan2(sin_th, cos_th)
        energy = th_dot**2 / 6.0 + 5.0 * cos_th
        direction = np.where(np.abs(th_dot) > 1e-3, np.sign(th_dot), 1.0)
        pump = self.pump_gain * (5.0 - energy) * direction
        hold = -(self.kp * th + self.kd * th_dot)
        torque = np.where(np.abs(th) < self.catch_angle, hold, pump)
        return np.clip(torque, -2.0, 2.0)[:, None].astype(np.float32)

    def step_policy(self) -> StepPolicy:
        """The expert as a :data:`~saq_wrappers.rollouts.StepPolicy` (one observation in, one
        action out), the form :func:`~saq_wrappers.rollouts.rollout` drives."""
        return lambda observation: self(observation[None])[0]


def default_cache_dir() -> Path:
    """``$SAQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/saq_wrappers``, else ``~/.cache/saq_wrappers``."""
    if os.environ.get("SAQ_CACHE_DIR"):
        return Path(os.environ["SAQ_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "saq_wrappers"


def quickstart_dataset(
    cache_dir: str | os.PathLike[str] | None = None,
    n_episodes: int = 50,
    noise_std: float = 0.2,
    seed: int = 0,
    refresh: bool = False,
    progress: bool = True,
) -> tuple[Transitions, dict[str, Any]]:
    """The quickstart's narrow expert dataset on ``Pendulum-v1``, cached after the first call.

    The scripted expert with Gaussian action noise of std ``noise_std`` in half action ranges
    (:func:`~saq_wrappers.rollouts.noisy_policy`: 0.2 is a std of 0.4 N m on Pendulum's
    ``[-2, 2]``), ``n_episodes`` episodes reset with seeds ``seed, seed + 1, ...``. Returns the
    transitions and a metadata dict with the env id and the reference returns
    (``random_return``: uniform random actions; ``expert_return``: the noise-free scripted
    expert; both means over 20 episodes seeded from ``seed + 10000``) used for normalized scores.

    A cache entry that cannot be read back (a truncated or corrupt file, say from a full disk) is
    rebuilt with a warning, and a cache folder that cannot be written only costs the caching (a
    warning): the data are returned either way.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = f"pendulum-scripted-expert-v{QUICKSTART_DATASET_VERSION}-n{n_episodes}-noise{noise_std}-seed{seed}"
    arrays_path, meta_path = folder / f"{name}.npz", folder / f"{name}.json"
    if not refresh and arrays_path.is_file() and meta_path.is_file():
        cached = _read_cached(arrays_path, meta_path)
        if cached is not None:
            return cached

    env = gym.make("Pendulum-v1")
    expert = PendulumSwingUpExpert().step_policy()

    def episodes(policy: StepPolicy, count: int, first_seed: int, desc: str) -> Transitions:
        return Transitions.from_episodes(rollout(env, policy, n_episodes=count, seed=first_seed,
                                                 progress=progress, desc=desc))

    transitions = episodes(noisy_policy(expert, env.action_space, noise_std, seed), n_episodes, seed, "expert data")
    reference_seed = seed + 10_000
    expert_returns = episodes(expert, 20, reference_seed, "expert ref").episode_returns()
    random_returns = episodes(random_policy(env.action_space, reference_seed), 20, reference_seed,
                              "random ref").episode_returns()
    metadata = {
        "env_id": "Pendulum-v1",
        "recipe": "scripted energy-shaping swing-up expert + PD, Gaussian action noise (std in half action ranges)",
        "version": QUICKSTART_DATASET_VERSION,
        "n_episodes": n_episodes,
        "noise_std": noise_std,
        "seed": seed,
        "dataset_mean_return": float(transitions.episode_returns().mean()),
        "expert_return": float(expert_returns.mean()),
        "random_return": float(random_returns.mean()),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(arrays_path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **transitions.to_dict())
        with atomic_output(meta_path) as tmp:
            tmp.write_text(json.dumps(metadata, indent=2))
    except OSError as error:
        warnings.warn(f"cannot cache the quickstart dataset in {str(folder)!r} ({error}): it will be generated "
                      "again next time", stacklevel=2)
    return transitions, metadata


#: The largest cache metadata file read back (it holds a few numbers).
_MAX_METADATA_BYTES = 1 << 20
#: The metadata every cache entry holds (:func:`quickstart_dataset` writes them).
_CACHED_METADATA = ("env_id", "random_return", "expert_return")


def _read_cached(arrays_path: Path, meta_path: Path) -> Optional[tuple[Transitions, dict[str, Any]]]:
    """The cached transitions and metadata, or ``None`` (with a warning) when the entry cannot be
    read back whole: a truncated archive, corrupt or incomplete JSON, arrays that do not make
    valid transitions. Never unpickles."""
    try:
        with np.load(arrays_path, allow_pickle=False) as stored:
            transitions = Transitions(**{k: stored[k] for k in stored.files})
        metadata = read_json_file(meta_path, "metadata", max_bytes=_MAX_METADATA_BYTES)
        if not isinstance(metadata, dict) or any(key not in metadata for key in _CACHED_METADATA):
            raise ValueError(f"the metadata lacks one of {', '.join(_CACHED_METADATA)}")
    # ValueError covers the library's DataError and CheckpointError (read_json_file's)
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"the quickstart dataset cache entry {str(arrays_path)!r} cannot be read ({error}): "
                      "rebuilding it", stacklevel=3)
        return None
    return transitions, metadata
