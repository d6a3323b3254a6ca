"""A robosuite env rebuilt from a robomimic dataset's ``env_args``, as a Gymnasium env.

robosuite is the optional ``[robosuite]`` extra, so it is imported when an env is made, not
when this package is: reading and relabeling robomimic files must work without it.
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from saq_wrappers.errors import DataError
from saq_wrappers.integrations import requires_extra

from .env_args import ROBOSUITE_ENV_TYPE, convert_env_args, read_env_args
from .hdf5_io import DEFAULT_OBS_KEYS

__all__ = ["DEFAULT_HORIZONS", "RobosuiteEnv", "make_robomimic_env"]

#: Evaluation horizons robomimic uses (episodes also end on success).
DEFAULT_HORIZONS: dict[str, int] = {
    "Lift": 400,
    "PickPlaceCan": 400,
    "NutAssemblySquare": 400,
    "ToolHang": 700,
    "TwoArmTransport": 700,
}


class RobosuiteEnv(gym.Env[np.ndarray, np.ndarray]):
    """A robosuite env as a Gymnasium env with flat observations in a fixed key order.

    Observations concatenate ``obs_keys`` (robomimic names; ``"object"`` is robosuite's
    ``"object-state"``). Episodes terminate on task success (``info["is_success"]``, robomimic's
    convention) and are truncated after ``horizon`` steps. ``reset(seed=s)`` seeds robosuite's
    global-numpy initial-state sampling and restores the global state afterwards.
    :meth:`get_state` / :meth:`reset_to` save and restore the MuJoCo state for replay.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        env: Any,
        obs_keys: Sequence[str] = DEFAULT_OBS_KEYS,
        horizon: int = 400,
        terminate_on_success: bool = True,
        env_args: dict[str, Any] | None = None,
    ) -> None:
        self.env = env
        self.obs_keys = tuple(obs_keys)
        self.horizon = int(horizon)
        self.terminate_on_success = bool(terminate_on_success)
        self.env_args = env_args
        low, high = env.action_spec
        self.action_space = gym.spaces.Box(
            np.asarray(low, dtype=np.float32), np.asarray(high, dtype=np.float32), dtype=np.float32
        )
        first = self._flatten(env.reset())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, first.shape, np.float32)
        self._steps = 0

    def _flatten(self, observation: dict[str, Any]) -> np.ndarray:
        parts = []
        for key in self.obs_keys:
            name = "object-state" if key == "object" and key not in observation else key
            if name not in observation:
                raise DataError(
                    f"robosuite env {type(self.env).__name__}: observation key {key!r} not "
                    f"produced (available: {sorted(observation)})"
                )
            parts.append(np.asarray(observation[name], dtype=np.float32).reshape(-1))
        return np.concatenate(parts)

    def observation_dict(self) -> dict[str, np.ndarray]:
        """The current observation by robomimic key (``object`` for ``object-state``)."""
        raw = self.env._get_observations(force_update=True)
        out = {}
        for key in self.obs_keys:
            name = "object-state" if key == "object" and key not in raw else key
            out[key] = np.asarray(raw[name]).copy()
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            observation = self.env.reset()
        else:
            saved = np.random.get_state()
            np.random.seed(seed)
            try:
                observation = self.env.reset()
            finally:
                np.random.set_state(saved)
        self._steps = 0
        return self._flatten(observation), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step robosuite: terminated on success (when ``terminate_on_success``), truncated
        after ``horizon`` steps; robosuite's own ``done`` is ignored, so the episode length is
        this env's ``horizon``. ``info["is_success"]`` is the task's success check after the step.
        """
        observation, reward, _, info = self.env.step(np.asarray(action, dtype=np.float64))
        self._steps += 1
        success = bool(self.env._check_success())
        info = dict(info)
        info["is_success"] = success
        terminated = success and self.terminate_on_success
        truncated = self._steps >= self.horizon and not terminated
        return self._flatten(observation), float(reward), terminated, truncated, info

    def get_state(self) -> dict[str, Any]:
        """``{"states": flat MuJoCo state, "model": MJCF xml}`` (robomimic's ``states`` and
        ``model_file``)."""
        return {
            "states": np.asarray(self.env.sim.get_state().flatten()),
            "model": self.env.sim.model.get_xml(),
        }

    def reset_to(self, state: dict[str, Any]) -> np.ndarray:
        """Restore a saved state (``model`` xml optional, ``states`` flat) and return the
        observation, as robomimic's replay does."""
        if "model" in state:
            self.env.reset()
            self.env.reset_from_xml_string(state["model"])
            self.env.sim.reset()
        self.env.sim.set_state_from_flattened(np.asarray(state["states"]))
        self.env.sim.forward()
        self._steps = 0
        return self._flatten(self.env._get_observations(force_update=True))

    def close(self) -> None:
        self.env.close()


def make_robomimic_env(
    env_args: str | os.PathLike[str] | dict[str, Any],
    obs_keys: Sequence[str] = DEFAULT_OBS_KEYS,
    *,
    horizon: int | None = None,
    terminate_on_success: bool = True,
    **overrides: Any,
) -> RobosuiteEnv:
    """Rebuild a robomimic dataset's env with robosuite 1.5.1, as a Gymnasium env.

    Args:
        env_args: the dataset's ``env_args`` (dict, JSON string, or a robomimic file to read
            them from). v1.4-style controller configs are converted (:func:`convert_env_args`).
        obs_keys: observation keys, concatenated in this order (the dataset's order).
        horizon: episode length limit (default :data:`DEFAULT_HORIZONS` for the task, else 500).
        terminate_on_success: end episodes on success (robomimic's convention).
        **overrides: env kwargs that replace the stored ones (e.g. ``has_offscreen_renderer``).

    Raises:
        DataError: not a robosuite env (``type`` other than 1), an env name robosuite does not
            know, or kwargs robosuite rejects.
    """
    args = convert_env_args(read_env_args(env_args))
    env_type = args.get("type", ROBOSUITE_ENV_TYPE)
    if env_type != ROBOSUITE_ENV_TYPE:
        raise DataError(
            f"env_args: 'type' is {env_type!r}, expected {ROBOSUITE_ENV_TYPE} (robosuite); other "
            "robomimic env types (gym, iGibson) are not supported here"
        )
    with requires_extra("robosuite", needed_by=__name__):
        import robosuite

    name = args.get("env_name")
    known = sorted(robosuite.ALL_ENVIRONMENTS)
    if name not in robosuite.ALL_ENVIRONMENTS:
        raise DataError(
            f"env_args: 'env_name' is {name!r}, which robosuite {robosuite.__version__} does not "
            f"know (expected one of: {', '.join(known)})"
        )
    kwargs = dict(args["env_kwargs"])
    kwargs.update(
        has_renderer=False,
        has_offscreen_renderer=bool(kwargs.get("use_camera_obs", False)),
        ignore_done=True,
        use_object_obs=True,
    )
    kwargs.setdefault("use_camera_obs", False)
    kwargs.update(overrides)
    from robosuite.environments.base import REGISTERED_ENVS

    accepted = set(inspect.signature(REGISTERED_ENVS[name].__init__).parameters)
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        warnings.warn(
            f"env_args: dropping env_kwargs robosuite {robosuite.__version__}'s {name} does not "
            f"accept: {unknown}",
            stacklevel=2,
        )
        for key in unknown:
            kwargs.pop(key)
    try:
        env = robosuite.make(name, **kwargs)
    except Exception as error:  # noqa: BLE001 - robosuite raises many kinds
        raise DataError(f"env_args: robosuite.make({name!r}, ...) failed: {error}") from error
    return RobosuiteEnv(
        env,
        obs_keys=obs_keys,
        horizon=horizon or DEFAULT_HORIZONS.get(name, 500),
        terminate_on_success=terminate_on_success,
        env_args=args,
    )
