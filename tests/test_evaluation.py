"""Evaluation never runs forever and never turns a bad number into a silent result: every episode
has a step limit, every argument is checked before the first step, and a NaN reward or reference
return is refused instead of becoming a NaN score."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers import evaluation
from saq_wrappers.action_set import FixedActionSet
from saq_wrappers.errors import DataError
from saq_wrappers.evaluation import episode_step_limit, evaluate, normalized_score
from saq_wrappers.wrappers import SAQActionWrapper


class EndlessEnv(gym.Env[np.ndarray, np.ndarray]):
    """Never terminates nor truncates (and has no TimeLimit); counts its steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, reward: float = 1.0) -> None:
        self.reward = reward
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        return np.zeros(2, np.float32), self.reward, False, False, {}


def _zero_policy(observations: np.ndarray) -> np.ndarray:
    return np.zeros((len(observations), 1), np.float32)


def test_an_env_without_time_limit_is_cut_at_the_default_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    assert evaluation.DEFAULT_MAX_STEPS == 100_000
    assert episode_step_limit(EndlessEnv()) == evaluation.DEFAULT_MAX_STEPS
    monkeypatch.setattr(evaluation, "DEFAULT_MAX_STEPS", 7)  # the real bound, made quick to reach
    env = EndlessEnv()
    result = evaluate(_zero_policy, env, n_episodes=2, progress=False)
    assert result.lengths.tolist() == [7, 7] and env.steps == 14
    assert result.returns.tolist() == [7.0, 7.0]


def test_the_env_time_limit_is_the_default_and_max_steps_overrides_it() -> None:
    env = gym.make("Pendulum-v1")
    grid = FixedActionSet.grid(env.observation_space, env.action_space, bins=3)
    assert episode_step_limit(env) == 200
    assert episode_step_limit(SAQActionWrapper(env, grid)) == 200  # found through wrappers
    assert episode_step_limit(gym.wrappers.TimeLimit(EndlessEnv(), 10**9)) == evaluation.MAX_STEPS
    assert episode_step_limit(env, max_steps=5) == 5
    result = evaluate(_zero_policy, env, n_episodes=1, max_steps=5, progress=False)
    assert result.lengths.tolist() == [5]


@pytest.mark.parametrize(
    ("argument", "value"),
    [("n_episodes", 0), ("n_episodes", -3), ("n_episodes", 2.5), ("n_episodes", True), ("n_episodes", 10**9),
     ("n_episodes", "3"), ("seed", -1), ("seed", 2.9), ("seed", 2**40), ("seed", None), ("max_steps", 0),
     ("max_steps", 1.5), ("max_steps", 10**12), ("max_steps", float("inf"))],
)
def test_bad_arguments_are_refused_before_any_step(argument: str, value: Any) -> None:
    env = EndlessEnv()
    with pytest.raises(DataError, match=rf"^{argument} must be an integer"):
        evaluate(_zero_policy, env, progress=False, **{argument: value})
    assert env.steps == 0


def test_episode_seeds_stay_within_the_seed_range() -> None:
    env = EndlessEnv()
    with pytest.raises(DataError, match=r"seed \+ n_episodes - 1"):
        evaluate(_zero_policy, env, n_episodes=10, seed=2**32 - 5, max_steps=1, progress=False)
    assert env.steps == 0


@pytest.mark.parametrize("reward", [float("nan"), float("inf")])
def test_a_non_finite_reward_is_refused_naming_the_episode_and_step(reward: float) -> None:
    with pytest.raises(DataError, match=r"episode 0 .*step 1.*reward"):
        evaluate(_zero_policy, EndlessEnv(reward), n_episodes=1, max_steps=3, progress=False)


@pytest.mark.parametrize(
    ("random_return", "expert_return", "message"),
    [(float("nan"), 1.0, "random reference return must be a finite number"),
     (0.0, float("inf"), "expert reference return must be a finite number"),
     ("abc", 1.0, "random reference return must be a finite number.*'abc'"),
     (0.0, None, "expert reference return must be a finite number"),
     (True, 2.0, "random reference return must be a finite number"),
     (3.0, 3.0, "are equal")],
)
def test_bad_reference_returns_never_give_a_nan_score(random_return: Any, expert_return: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        normalized_score(1.0, random_return, expert_return)


def test_normalized_score_of_a_scalar_and_of_an_array() -> None:
    assert normalized_score(5.0, 0.0, 10.0) == 50.0 and isinstance(normalized_score(5.0, 0.0, 10.0), float)
    np.testing.assert_allclose(normalized_score(np.array([0.0, 10.0]), 0.0, 10.0), [0.0, 100.0])
    with pytest.raises(DataError, match="score must be a finite number"):
        normalized_score(float("nan"), 0.0, 10.0)
