"""Evaluating a policy in a Gymnasium env over seeded episodes.

Works for any policy: a discrete agent on an :class:`~saq_wrappers.SAQActionWrapper`-wrapped env,
or a continuous one on the raw env. Scores can be normalized D4RL-style:
``100 * (return - random) / (expert - random)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from saq_wrappers.errors import DataError

#: A policy maps a batch of observations ``(1, *obs_shape)`` to a batch of actions.
Policy = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Per-episode returns, lengths and successes of an evaluation."""

    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def std_return(self) -> float:
        return float(self.returns.std())

    @property
    def success_rate(self) -> float:
        return float(self.successes.mean())

    def normalized_score(self, random_return: float, expert_return: float) -> float:
        """D4RL-style normalized mean return: 0 = random policy, 100 = expert."""
        return normalized_score(self.mean_return, random_return, expert_return)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "success_rate": self.success_rate,
            "returns": self.returns.tolist(),
            "lengths": self.lengths.tolist(),
        }


def normalized_score(score: float, random_return: float, expert_return: float) -> float:
    """``100 * (score - random) / (expert - random)``."""
    if expert_return == random_return:
        raise DataError("expert and random reference returns are equal: cannot normalize")
    return 100.0 * (score - random_return) / (expert_return - random_return)


def evaluate(
    policy: Policy,
    env: gym.Env[Any, Any],
    n_episodes: int = 10,
    seed: int = 0,
    max_steps: int | None = None,
    success_key: str = "is_success",
    progress: bool = True,
) -> EvaluationResult:
    """Run ``n_episodes`` episodes; episode ``i`` is reset with seed ``seed + i``.

    An episode counts as a success if any step's ``info[success_key]`` is true (robosuite,
    Gymnasium-Robotics and Minari conventions).
    """
    if n_episodes < 1:
        raise DataError(f"n_episodes must be >= 1, got {n_episodes}")
    returns, lengths, successes = [], [], []
    for episode in tqdm(range(n_episodes), desc="evaluate", unit="ep", disable=not progress):
        observation, _ = env.reset(seed=seed + episode)
        total, steps, success = 0.0, 0, False
        while True:
            action = np.asarray(policy(np.asarray(observation)[None]))[0]
            observation, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            steps += 1
            success = success or bool(info.get(success_key, False))
            if terminated or truncated or (max_steps is not None and steps >= max_steps):
                break
        returns.append(total)
        lengths.append(steps)
        successes.append(success)
    return EvaluationResult(
        returns=np.asarray(returns), lengths=np.asarray(lengths), successes=np.asarray(successes)
    )
