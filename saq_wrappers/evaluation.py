"""Evaluating a policy in a Gymnasium env over seeded episodes.

Works for any policy: a discrete agent on an :class:`~saq_wrappers.SAQActionWrapper`-wrapped env,
or a continuous one on the raw env. Scores can be normalized D4RL-style:
``100 * (return - random) / (expert - random)``.

No episode runs forever: each is cut after :func:`episode_step_limit` steps (the env's own
``TimeLimit`` if it has one, else :data:`DEFAULT_MAX_STEPS`), so an env rebuilt from a dataset
that dropped its time limit, or a policy that never reaches a terminal state, still ends. Every
argument is checked before the first step, and a NaN reward or reference return is refused
instead of becoming a NaN score (see ``docs/guide/safety.md``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, overload

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from saq_wrappers.errors import DataError
from saq_wrappers.validation import check_int, check_number, check_seed, check_seed_range

#: A policy maps a batch of observations ``(1, *obs_shape)`` to a batch of actions.
Policy = Callable[[np.ndarray], np.ndarray]

#: Steps after which an episode of an env without a ``TimeLimit`` is cut. The envs SAQ and ARQ
#: evaluate on end within 1,000 steps (D4RL locomotion; Adroit 200-400, robomimic 400-700).
DEFAULT_MAX_STEPS = 100_000
#: Largest step limit per episode: a longer limit (even the env's own) is cut to this one.
MAX_STEPS = 10_000_000
#: Most episodes of one evaluation (papers use 10 to 100).
MAX_EPISODES = 1_000_000


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


def check_reference_returns(
    random_return: Any,
    expert_return: Any,
    names: tuple[str, str] = ("random reference return", "expert reference return"),
) -> tuple[float, float]:
    """``(random_return, expert_return)`` as floats if both are finite numbers and differ: the
    one rule for reference returns wherever they enter (a dataset spec, Minari metadata, a
    generated dataset), since a normalized score divides by their difference.

    Args:
        random_return, expert_return: the two reference returns.
        names: how the messages name them (e.g. the metadata fields they came from).

    Raises:
        DataError: a missing, non-numeric, NaN or infinite reference return (it would make every
            normalized score NaN or 0), or equal ones (a division by zero).
    """
    random = check_number(names[0], random_return)
    expert = check_number(names[1], expert_return)
    if random == expert:
        raise DataError(f"{names[0]} and {names[1]} are equal ({random:g}): expected two different reference "
                        "returns (a normalized score divides by their difference)")
    return random, expert


@overload
def normalized_score(score: float, random_return: float, expert_return: float) -> float: ...


@overload
def normalized_score(score: np.ndarray, random_return: float, expert_return: float) -> np.ndarray: ...


def normalized_score(score: Any, random_return: float, expert_return: float) -> Any:
    """``100 * (score - random) / (expert - random)``, of one score (a float) or an array.

    Raises:
        DataError: bad reference returns (see :func:`check_reference_returns`) or a score that is
            not a finite number.
    """
    random, expert = check_reference_returns(random_return, expert_return)
    if np.ndim(score) == 0:
        return 100.0 * (check_number("score", score) - random) / (expert - random)
    return 100.0 * (np.asarray(score, dtype=np.float64) - random) / (expert - random)


def episode_step_limit(env: gym.Env[Any, Any], max_steps: int | None = None) -> int:
    """The steps after which :func:`evaluate` cuts an episode of ``env``.

    ``max_steps`` if given (checked: an integer from 1 to :data:`MAX_STEPS`); else the
    ``max_episode_steps`` of the first ``TimeLimit`` among ``env``'s wrappers (capped at
    :data:`MAX_STEPS`); else :data:`DEFAULT_MAX_STEPS`.
    """
    if max_steps is not None:
        return check_int("max_steps", max_steps, 1, MAX_STEPS)
    own = time_limit(env)
    return DEFAULT_MAX_STEPS if own is None else min(own, MAX_STEPS)


def time_limit(env: gym.Env[Any, Any]) -> int | None:
    """``max_episode_steps`` of the outermost ``TimeLimit`` among ``env``'s wrappers, or ``None``."""
    layer: Any = env
    while isinstance(layer, gym.Wrapper):
        if isinstance(layer, gym.wrappers.TimeLimit):
            return int(layer._max_episode_steps)
        layer = layer.env
    return None


def check_episodes(n_episodes: Any, seed: Any, name: str = "n_episodes") -> tuple[int, int]:
    """``(n_episodes, seed)`` as ints if ``n_episodes`` is 1 to :data:`MAX_EPISODES` and the episode
    seeds ``seed .. seed + n_episodes - 1`` are all valid seeds (0 to :data:`~saq_wrappers.validation.MAX_SEED`)."""
    n = check_int(name, n_episodes, 1, MAX_EPISODES)
    first = check_seed("seed", seed)
    check_seed_range(first, n, f"seed + {name} - 1: the {n:,} episodes from seed {first:,} (episode i is "
                               "reset with seed + i)")
    return n, first


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

    An episode ends when the env terminates or truncates it, or after ``max_steps`` steps (by
    default the env's own ``TimeLimit``, else :data:`DEFAULT_MAX_STEPS`: see
    :func:`episode_step_limit`), so none runs forever. It counts as a success if any step's
    ``info[success_key]`` is true (robosuite, Gymnasium-Robotics and Minari conventions).

    Raises:
        DataError: before the first step, ``n_episodes`` not an integer from 1 to
            :data:`MAX_EPISODES`, a seed outside ``0 .. 2**32 - 1`` or not an integer,
            ``max_steps`` not an integer from 1 to :data:`MAX_STEPS`; during the run, a reward
            that is NaN or infinite (the message names the episode and the step).
    """
    n_episodes, seed = check_episodes(n_episodes, seed)
    limit = episode_step_limit(env, max_steps)
    returns, lengths, successes = [], [], []
    for episode in tqdm(range(n_episodes), desc="evaluate", unit="ep", disable=not progress):
        observation, _ = env.reset(seed=seed + episode)
        total, steps, success = 0.0, 0, False
        while True:
            action = np.asarray(policy(np.asarray(observation)[None]))[0]
            observation, reward, terminated, truncated, info = env.step(action)
            steps += 1
            if not math.isfinite(float(reward)):
                raise DataError(f"episode {episode} (seed {seed + episode}), step {steps}: the env returned "
                                f"reward {reward}, expected a finite number")
            total += float(reward)
            success = success or bool(info.get(success_key, False))
            if terminated or truncated or steps >= limit:
                break
        returns.append(total)
        lengths.append(steps)
        successes.append(success)
    return EvaluationResult(
        returns=np.asarray(returns), lengths=np.asarray(lengths), successes=np.asarray(successes)
    )
