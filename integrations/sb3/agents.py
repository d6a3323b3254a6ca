"""SB3 agents on the SAQ wrapper: building them by name, and acting with them in evaluation.

:class:`SAQDQN` (SB3's DQN, plus the optional SAQ-CQL term), sb3-contrib's ``QRDQN`` and
``MaskablePPO`` train on ``SAQActionWrapper``'s ``Discrete(n)`` actions; ``MaskablePPO`` also
reads the wrapper's ``action_masks()``, so ARQ's dropped candidates (likelihood below ``eps``,
ARQ's support constraint) are never chosen.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from sb3_contrib import QRDQN, MaskablePPO
from sb3_contrib.common.maskable.utils import is_masking_supported
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from saq_wrappers.errors import DataError, SpaceMismatchError
from saq_wrappers.evaluation import Policy

from .dqn import SAQDQN

__all__ = ["AGENTS", "evaluation_policy", "make_agent"]


#: Agent names accepted by :func:`make_agent`.
AGENTS: dict[str, type[BaseAlgorithm]] = {"dqn": SAQDQN, "qrdqn": QRDQN, "maskable_ppo": MaskablePPO}


def make_agent(name: str, env: VecEnv | gym.Env[Any, Any], **kwargs: Any) -> BaseAlgorithm:
    """``SAQDQN`` (``"dqn"``), sb3-contrib ``QRDQN`` or ``MaskablePPO`` with ``"MlpPolicy"`` on ``env``.

    ``MaskablePPO`` needs ``env`` to expose ``action_masks()`` (every ``SAQActionWrapper`` does),
    and then never samples an index the action set marks invalid (ARQ's dropped candidates).
    DQN and QRDQN do not read masks: with an ARQ sampler they may pick dropped candidates, which
    the wrapper executes as decoded (see :mod:`saq_wrappers.wrappers`). ``kwargs`` go to the
    algorithm (``device`` defaults to ``"cpu"``).
    """
    key = name.lower().replace("-", "_")
    if key not in AGENTS:
        raise DataError(f"unknown agent {name!r}: expected one of {', '.join(AGENTS)}")
    if key == "maskable_ppo" and not is_masking_supported(env):
        raise DataError("MaskablePPO needs an env with action_masks(): wrap it with SAQActionWrapper")
    kwargs.setdefault("device", "cpu")
    return AGENTS[key]("MlpPolicy", env, **kwargs)


def evaluation_policy(
    model: BaseAlgorithm, env: gym.Env[Any, Any] | None = None, deterministic: bool = True
) -> Policy:
    """An SB3 agent acting on the SAQ wrapper as the batch policy :func:`saq_wrappers.evaluation.evaluate`
    takes (observations ``(B, *obs_shape)`` -> indices ``(B,)``).

    For ``MaskablePPO`` pass the (wrapped) ``env`` being evaluated: its ``action_masks()`` at
    the current observation is given to ``predict``. With ``env``, the agent is checked against it
    first: a DQN trained on ``K = 8`` codes would otherwise act through a ``K = 16`` action set
    without a word.

    Raises:
        SpaceMismatchError: ``env``'s action space or observation shape is not the agent's.
    """
    maskable = isinstance(model, MaskablePPO)
    if maskable and env is None:
        raise DataError("a MaskablePPO policy needs env= (the wrapped env it acts in) to read action masks")
    if env is not None:
        _check_agent_fits(model, env)

    def act(observations: np.ndarray) -> np.ndarray:
        if maskable:
            masks = np.asarray(env.get_wrapper_attr("action_masks")())[None]  # type: ignore[union-attr]
            actions, _ = model.predict(observations, deterministic=deterministic, action_masks=masks)
        else:
            actions, _ = model.predict(observations, deterministic=deterministic)
        return np.asarray(actions).reshape(len(observations))

    return act


def _check_agent_fits(model: BaseAlgorithm, env: gym.Env[Any, Any]) -> None:
    name = type(model).__name__
    trained_actions, given_actions = model.action_space, env.action_space
    if (type(trained_actions) is not type(given_actions) or trained_actions.shape != given_actions.shape
            or getattr(trained_actions, "n", None) != getattr(given_actions, "n", None)):
        raise SpaceMismatchError(
            f"the {name} agent has {model.action_space} actions, the env it is evaluated in {env.action_space}: "
            "evaluate it on the env wrapped with the action set (quantizer) it was trained with"
        )
    trained, given = model.observation_space.shape, env.observation_space.shape
    if trained != given:
        raise SpaceMismatchError(f"the {name} agent was trained on observation shape {trained}, the env's "
                                 f"observations have shape {given}")
