"""SB3 vector envs of :class:`~saq_wrappers.wrappers.SAQActionWrapper`-wrapped tasks.

``SAQActionWrapper(env, action_set)`` turns a continuous-control env into ``Discrete(n)`` (SAQ
section 4: the agent picks one of the ``K`` codes, the action set decodes it into the
continuous action), so SB3's discrete algorithms train on it unchanged. This module builds the
``VecEnv`` they train on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from saq_wrappers.action_set import ActionSet
from saq_wrappers.errors import DataError
from saq_wrappers.wrappers import SAQActionWrapper

__all__ = ["EnvSource", "make_saq_vec_env"]

#: A Gymnasium env id, or a function that makes the (unwrapped, continuous) env.
EnvSource = str | Callable[[], gym.Env[Any, Any]]


def _make_base_env(env: EnvSource) -> gym.Env[Any, Any]:
    if isinstance(env, str):
        return gym.make(env)
    if callable(env):
        made = env()
        if not isinstance(made, gym.Env):
            raise TypeError(f"the env factory returned {type(made).__name__}, expected a gymnasium.Env")
        return made
    raise TypeError(f"env must be a Gymnasium env id or a function returning an env, got {type(env).__name__}")


def make_saq_vec_env(
    env: EnvSource,
    action_set: ActionSet,
    n_envs: int = 1,
    seed: int | None = None,
    vec_env_cls: type[VecEnv] = DummyVecEnv,
    outer_wrapper: Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]] | None = None,
) -> VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` copies of ``SAQActionWrapper(env, action_set)``.

    Built with SB3's ``make_vec_env``: each sub-env is ``gym.make(env)`` (or ``env()``), then
    SB3's ``Monitor`` (episode returns for SB3's logger, on the *continuous* env), then the SAQ
    wrapper, then ``outer_wrapper`` if given. All sub-envs share ``action_set`` (one frozen
    quantizer; with ``SubprocVecEnv`` each process gets a copy). ``env_method("action_masks")``
    reaches the wrapper, which is what sb3-contrib's maskable algorithms call.
    """
    if n_envs < 1:
        raise DataError(f"n_envs must be >= 1, got {n_envs}")

    def wrap(base: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        wrapped: gym.Env[Any, Any] = SAQActionWrapper(base, action_set)
        return outer_wrapper(wrapped) if outer_wrapper is not None else wrapped

    # Fail here, with the wrapper's own message, rather than inside SB3's env construction.
    probe = _make_base_env(env)
    try:
        SAQActionWrapper(probe, action_set)
    finally:
        probe.close()
    env_id: Any = env if isinstance(env, str) else (lambda: _make_base_env(env))
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, vec_env_cls=vec_env_cls, wrapper_class=wrap)
