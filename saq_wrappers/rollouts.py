"""Rollouts of single-observation policies in Gymnasium envs, as Minari-style episodes.

The policies here act on one observation at a time and return one continuous action (the
form of an SB3 agent's ``predict`` or of a scripted controller); :func:`rollout` records what
they do as episodes with ``T + 1`` observations and terminations and truncations kept apart,
the layout Minari stores. Dataset recipes (D4RL's expert / medium / medium-expert / random) are
built from these pieces in the application layer (``saq data generate``), and the quickstart's
built-in dataset in :mod:`saq_wrappers.experts`. :func:`rollout` is the library's one rollout
loop, and :func:`noisy_policy` its one exploration-noise convention (half action ranges).

Episode ``i`` is reset with seed ``seed + i``; a rollout stopped by its step budget ends with a
truncated (timeout) episode, whose next observation is real. Seeds here are any integers >= 0
(:func:`check_rollout_seed`): they reach only numpy's ``default_rng`` and Gymnasium's ``reset``,
which take any, so seeds derived from a valid one (``seed + 2_000_000`` for reference episodes)
are accepted too.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from saq_wrappers.errors import DataError
from saq_wrappers.validation import check_int, check_number

__all__ = ["StepPolicy", "check_rollout_seed", "mean_return", "noisy_policy", "random_policy", "rollout"]

#: One observation -> one action (unlike :data:`saq_wrappers.evaluation.Policy`, which maps a
#: batch of observations to a batch of actions).
StepPolicy = Callable[[np.ndarray], np.ndarray]


def check_rollout_seed(seed: object) -> int:
    """Return ``seed`` as an ``int`` if it is an integer >= 0 (a float such as 2.9 is refused, not
    truncated); see the module docstring for why there is no upper bound.

    Raises:
        DataError: naming the value given.
    """
    return check_int("seed", seed, 0)


def random_policy(action_space: gym.spaces.Box, seed: int = 0) -> StepPolicy:
    """Uniform random actions in ``action_space`` (seeded).

    D4RL's ``random`` datasets, and the policy whose mean return is D4RL's ``ref_min_score``
    (the 0 of the normalized score). ``seed``: :func:`check_rollout_seed`.
    """
    rng = np.random.default_rng(check_rollout_seed(seed))
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise DataError(f"action space {action_space} is unbounded: a random policy needs finite bounds")

    def act(observation: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high).astype(action_space.dtype)

    return act


def noisy_policy(policy: StepPolicy, action_space: gym.spaces.Box, noise_std: float, seed: int = 0) -> StepPolicy:
    """``policy`` plus Gaussian noise of std ``noise_std * (high - low) / 2``, clipped to bounds.

    A weaker, wider-spread version of ``policy``: the ``medium`` data when no weaker agent is at
    hand, and the quickstart's narrow expert data. ``noise_std`` is in units of half the action
    range, so it means the same in any task: the convention of Gaussian exploration noise in
    TD3 (0.1 of ``max_action``) and of SB3's ``NormalActionNoise`` on ``[-1, 1]`` actions, where
    half the range is 1. ``noise_std = 1`` is a std of ``max_action`` on a symmetric box. The
    noise is drawn from one generator seeded with ``seed``, one draw per action dimension and
    step. ``noise_std`` must be a finite number >= 0 (:class:`~saq_wrappers.errors.DataError`
    otherwise); ``seed``: :func:`check_rollout_seed`.
    """
    noise_std = check_number("noise_std", noise_std, 0)
    rng = np.random.default_rng(check_rollout_seed(seed))
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    scale = noise_std * (high - low) / 2.0

    def act(observation: np.ndarray) -> np.ndarray:
        action = np.asarray(policy(observation), dtype=np.float64)
        return np.clip(action + rng.standard_normal(action.shape) * scale, low, high)

    return act


def rollout(
    env: gym.Env[Any, Any],
    policy: StepPolicy,
    *,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "rollout",
) -> list[dict[str, Any]]:
    """Collect Minari-style episodes (``T + 1`` observations) until a step or episode budget.

    Episode ``i`` is reset with ``seed + i``. When the step budget ends an episode early, its
    last step is marked truncated (a timeout: the episode was cut, its next observation is real).
    Actions are clipped into the env's action space and stored as float32.

    Raises:
        DataError: before the env is reset, not exactly one budget is given, it is not an integer
            >= 1, or ``seed`` is not an integer >= 0 (:func:`check_rollout_seed`).
    """
    if (n_steps is None) == (n_episodes is None):
        raise DataError("give exactly one of n_steps and n_episodes")
    by_steps = n_steps is not None
    budget = check_int("n_steps" if by_steps else "n_episodes", n_steps if by_steps else n_episodes, 1)
    seed = check_rollout_seed(seed)
    space = env.action_space
    low = np.asarray(space.low, dtype=np.float64)
    high = np.asarray(space.high, dtype=np.float64)
    episodes: list[dict[str, Any]] = []
    total = 0
    bar = tqdm(total=budget, desc=desc, unit="step" if n_steps else "ep", disable=not progress)
    while True:
        episode_seed = seed + len(episodes)
        observation, _ = env.reset(seed=episode_seed)
        observations = [np.asarray(observation)]
        actions, rewards, terminations, truncations = [], [], [], []
        while True:
            action = np.clip(np.asarray(policy(observation), dtype=np.float64), low, high)
            observation, reward, terminated, truncated, _ = env.step(action.astype(space.dtype))
            observations.append(np.asarray(observation))
            actions.append(action.astype(np.float32))
            rewards.append(float(reward))
            total += 1
            out_of_steps = n_steps is not None and total >= n_steps
            terminations.append(bool(terminated))
            truncations.append(bool(truncated) or (out_of_steps and not terminated))
            if n_steps is not None:
                bar.update(1)
            if terminated or truncated or out_of_steps:
                break
        episodes.append(
            {
                "observations": np.stack(observations),
                "actions": np.stack(actions),
                "rewards": np.asarray(rewards),
                "terminations": np.asarray(terminations),
                "truncations": np.asarray(truncations),
                "seed": episode_seed,
            }
        )
        if n_episodes is not None:
            bar.update(1)
        if (n_steps is not None and total >= n_steps) or (n_episodes is not None and len(episodes) >= n_episodes):
            break
    bar.close()
    return episodes


def mean_return(
    env: gym.Env[Any, Any], policy: StepPolicy, n_episodes: int, seed: int, progress: bool = False
) -> float:
    """Mean undiscounted return of ``policy`` over ``n_episodes`` seeded episodes."""
    episodes = rollout(env, policy, n_episodes=n_episodes, seed=seed, progress=progress, desc="reference")
    return float(np.mean([e["rewards"].sum() for e in episodes]))
