"""Loading Stable-Baselines3 model files (``.zip``) of continuous-control agents.

Any SB3 model file (SAC, TD3, DDPG, PPO, A2C; TQC, TRPO, CrossQ from sb3-contrib), also files
saved by older SB3 / gym versions (such as the RL Zoo's), is loaded for a given Gymnasium env
and turned into a single-observation policy (:func:`rollout_policy`) that the rollouts of
:mod:`saq_wrappers.rollouts` accept. ``saq data generate`` builds its datasets from these.

SB3 model files hold pickled Python objects (SB3's own format): load only files you trust.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from sb3_contrib import TQC, TRPO, CrossQ
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from saq_wrappers.errors import DataError, SAQError
from saq_wrappers.rollouts import StepPolicy

__all__ = ["detect_algorithm", "load_sb3_model", "rollout_policy"]

#: SB3 / sb3-contrib algorithm module (package, module) -> algorithm class.
_ALGORITHMS: dict[tuple[str, str], type[BaseAlgorithm]] = {
    ("stable_baselines3", "sac"): SAC,
    ("stable_baselines3", "td3"): TD3,
    ("stable_baselines3", "ddpg"): DDPG,
    ("stable_baselines3", "ppo"): PPO,
    ("stable_baselines3", "a2c"): A2C,
    ("sb3_contrib", "tqc"): TQC,
    ("sb3_contrib", "trpo"): TRPO,
    ("sb3_contrib", "crossq"): CrossQ,
}
_NAMES = sorted(algorithm.__name__ for algorithm in _ALGORITHMS.values())


def _model_json(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            return dict(json.loads(archive.read("data")))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as error:
        raise DataError(
            f"{path}: not a Stable-Baselines3 model file (expected a zip with a 'data' JSON "
            f"entry; {error})"
        ) from error


def detect_algorithm(path: str | os.PathLike[str]) -> str:
    """The SB3 algorithm of a model file (``"SAC"``, ``"TQC"``, ...).

    Read from the file's JSON entry only, so nothing is unpickled before the algorithm is known.
    """
    file = Path(path)
    data = _model_json(file)
    module = str((data.get("policy_class") or {}).get("__module__", ""))
    parts = module.split(".")
    algorithm = _ALGORITHMS.get((parts[0], parts[1])) if len(parts) > 1 else None
    name: str | None = algorithm.__name__ if algorithm is not None else None
    if name is None and module == "stable_baselines3.common.policies":
        # On-policy algorithms share ActorCriticPolicy; their saved hyperparameters differ.
        if "clip_range" in data:
            name = "PPO"
        elif "cg_max_steps" in data:
            name = "TRPO"
        elif "gae_lambda" in data:
            name = "A2C"
    if name is None:
        raise DataError(
            f"{file}: cannot tell the algorithm from policy_class module {module!r}: pass algo= "
            f"(one of {_NAMES})"
        )
    return name


def _algorithm_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 / sb3-contrib class named ``name`` (case-insensitive)."""
    for algorithm in _ALGORITHMS.values():
        if algorithm.__name__.lower() == name.lower():
            return algorithm
    raise DataError(f"unknown algorithm {name!r}: expected one of {_NAMES}")


def load_sb3_model(
    path: str | os.PathLike[str], env: gym.Env[Any, Any], algo: str | None = None
) -> BaseAlgorithm:
    """Load an SB3 model file for ``env``, also files saved by older SB3 versions.

    The spaces and schedules stored in old files are replaced by ``env``'s spaces and constant
    stubs (they are pickles of old gym classes); the stored shapes are checked against ``env``.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such SB3 model file")
    data = _model_json(file)
    name = algo or detect_algorithm(file)
    for role, space in (("observation_space", env.observation_space), ("action_space", env.action_space)):
        entry = data.get(role) or {}
        stored = entry.get("shape", entry.get("_shape"))  # old gym / gymnasium spelling
        if stored is not None and tuple(stored) != tuple(space.shape):
            raise DataError(
                f"{file}: the model's {role} has shape {tuple(stored)}, the env's is "
                f"{tuple(space.shape)} (expected the env the model was trained on)"
            )
    if not isinstance(env.action_space, gym.spaces.Box):
        raise DataError(f"env action space {env.action_space} is not a Box: expected continuous actions")
    custom_objects = {
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "lr_schedule": lambda _: 0.0,
        "learning_rate": 0.0,
        "clip_range": lambda _: 0.2,
        "exploration_schedule": lambda _: 0.0,
    }
    try:
        return _algorithm_class(name).load(str(file), device="cpu", custom_objects=custom_objects)
    except SAQError:
        raise
    except Exception as error:  # noqa: BLE001 - SB3 raises many kinds
        raise DataError(f"{file}: Stable-Baselines3 could not load it as {name} ({error})") from error


def rollout_policy(model: BaseAlgorithm, deterministic: bool = False) -> StepPolicy:
    """The SB3 model's policy as ``obs -> action``, one observation at a time, for
    :func:`saq_wrappers.rollouts.rollout`.

    Stochastic by default: D4RL sampled its expert datasets from the SAC agents' own stochastic
    policies, and its ``ref_max_score`` from their deterministic ones (``deterministic=True``).
    """

    def act(observation: np.ndarray) -> np.ndarray:
        action, _ = model.predict(observation, deterministic=deterministic)
        return np.asarray(action)

    return act
