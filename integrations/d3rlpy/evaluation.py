"""Evaluating d3rlpy algorithms in an env, discrete ones through an ActionSet wrapper."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from d3rlpy.metrics import EnvironmentEvaluator

from saq_wrappers.action_set import ActionSet
from saq_wrappers.evaluation import EvaluationResult, evaluate
from saq_wrappers.wrappers import SAQActionWrapper


def saq_environment_evaluator(
    env: gym.Env[Any, Any], action_set: ActionSet, n_trials: int = 10, seed: int = 0
) -> EnvironmentEvaluator:
    """d3rlpy's own ``EnvironmentEvaluator`` on ``SAQActionWrapper(env, action_set)``.

    Pass it to ``algo.fit(..., evaluators={"environment": ...})`` exactly like d3rlpy's
    evaluator for a discrete env. The wrapped env is seeded once with ``seed``; d3rlpy resets it
    without a seed afterwards, so consecutive evaluations see fresh but reproducible episodes.
    """
    wrapped = SAQActionWrapper(env, action_set)
    wrapped.reset(seed=seed)
    wrapped.action_space.seed(seed)
    return EnvironmentEvaluator(wrapped, n_trials=n_trials)


def evaluate_algo(
    algo: Any,
    env: gym.Env[Any, Any],
    action_set: ActionSet | None = None,
    n_episodes: int = 10,
    seed: int = 0,
    progress: bool = True,
    greedy: bool = True,
) -> EvaluationResult:
    """Returns over ``n_episodes`` seeded episodes, acting greedily (``algo.predict``) or, with
    ``greedy=False``, by sampling the algorithm's policy (``algo.sample_action``; the authors
    sample SAQ-IQL's codes from eq. 10). d3rlpy 2.8.1's ``BC`` and ``DiscreteBC`` return their
    greedy action from ``sample_action``, so for them (and SAQ-BC) both rules are the same.

    With ``action_set``, the algorithm is a discrete one on codes and acts through
    ``SAQActionWrapper(env, action_set)``; without, it acts on ``env`` directly.
    """
    target = SAQActionWrapper(env, action_set) if action_set is not None else env
    act = algo.predict if greedy else algo.sample_action

    def policy(observations: np.ndarray) -> np.ndarray:
        return np.asarray(act(observations.astype(np.float32)))

    return evaluate(policy, target, n_episodes=n_episodes, seed=seed, progress=progress)
