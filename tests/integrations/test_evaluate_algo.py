"""A trained d3rlpy model meets an env and an action set only when they fit: the number of codes,
discrete against continuous, and the observation shape are checked before the first step, and
d3rlpy's own evaluator gets a step limit."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
from d3rlpy.algos import BCConfig, DiscreteBCConfig

from saq_wrappers import evaluation
from saq_wrappers.action_set import FixedActionSet
from saq_wrappers.errors import DataError, NotFittedError, SpaceMismatchError
from saq_wrappers.integrations.d3rlpy import evaluate_algo, saq_environment_evaluator


class StepCounter(gym.Wrapper[Any, Any, Any, Any]):
    """Counts the env steps taken through it."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        return super().step(action)


def _pendulum() -> StepCounter:
    return StepCounter(gym.make("Pendulum-v1", max_episode_steps=3))


def _grid(env: gym.Env[Any, Any], n: int) -> FixedActionSet:
    grid = FixedActionSet.grid(env.observation_space, env.action_space, bins=n)
    assert grid.n == n
    return grid


def _discrete(observation_dim: int, n_codes: int) -> Any:
    algo = DiscreteBCConfig().create(device="cpu")
    algo.create_impl((observation_dim,), n_codes)
    return algo


def _continuous(observation_dim: int, action_dim: int) -> Any:
    algo = BCConfig().create(device="cpu")
    algo.create_impl((observation_dim,), action_dim)
    return algo


def test_a_model_of_k_codes_is_refused_on_an_action_set_of_another_k() -> None:
    env = _pendulum()
    with pytest.raises(SpaceMismatchError, match=r"DiscreteBC.* 8 codes.*action set has 16"):
        evaluate_algo(_discrete(3, 8), env, _grid(env, 16), n_episodes=1, progress=False)
    assert env.steps == 0
    result = evaluate_algo(_discrete(3, 16), env, _grid(env, 16), n_episodes=1, progress=False)
    assert result.lengths.tolist() == [3]


@pytest.mark.parametrize(
    ("make_algo", "with_action_set", "message"),
    [(lambda: _continuous(3, 1), True, r"BC acts on continuous actions.*action set"),
     (lambda: _discrete(3, 5), False, r"DiscreteBC acts on 5 discrete codes.*Box"),
     (lambda: _continuous(3, 2), False, r"BC outputs 2-dimensional actions.*env's action space .*\(1,\)"),
     (lambda: _discrete(4, 5), True, r"observation shape \(4,\).*env's .*\(3,\)"),
     (lambda: DiscreteBCConfig().create(device="cpu"), True, None)],
)
def test_a_model_that_does_not_fit_the_env_is_refused_before_any_step(
    make_algo: Any, with_action_set: bool, message: str | None
) -> None:
    env = _pendulum()
    action_set = _grid(env, 5) if with_action_set else None
    if message is None:
        with pytest.raises(NotFittedError, match=r"DiscreteBC is not built"):
            evaluate_algo(make_algo(), env, action_set, n_episodes=1, progress=False)
    else:
        with pytest.raises(SpaceMismatchError, match=message):
            evaluate_algo(make_algo(), env, action_set, n_episodes=1, progress=False)
    assert env.steps == 0


def test_a_continuous_model_on_the_raw_env_is_evaluated() -> None:
    env = _pendulum()
    assert evaluate_algo(_continuous(3, 1), env, n_episodes=2, progress=False).lengths.tolist() == [3, 3]


def test_the_d3rlpy_evaluator_checks_the_model_and_bounds_every_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _pendulum()
    evaluator = saq_environment_evaluator(env, _grid(env, 16), n_trials=1)
    steps_at_start = env.steps  # none: it is only reset
    with pytest.raises(SpaceMismatchError, match=r"8 codes.*action set has 16"):
        evaluator(_discrete(3, 8), None)
    assert env.steps == steps_at_start == 0
    assert isinstance(evaluator(_discrete(3, 16), None), float) and env.steps == 3

    monkeypatch.setattr(evaluation, "DEFAULT_MAX_STEPS", 4)
    endless = StepCounter(gym.make("Pendulum-v1", max_episode_steps=-1))  # no TimeLimit at all
    bounded = saq_environment_evaluator(endless, _grid(endless, 16), n_trials=2)
    bounded(_discrete(3, 16), None)
    assert endless.steps == 8


@pytest.mark.parametrize(("argument", "value"), [("n_trials", 0), ("n_trials", 1.5), ("seed", -1), ("seed", 2.9)])
def test_the_d3rlpy_evaluator_refuses_bad_arguments(argument: str, value: Any) -> None:
    env = _pendulum()
    with pytest.raises(DataError, match=rf"^{argument} must be an integer"):
        saq_environment_evaluator(env, _grid(env, 4), **{argument: value})



def test_an_sb3_agent_is_checked_against_the_env_it_is_evaluated_in() -> None:
    from stable_baselines3 import DQN

    from saq_wrappers.integrations.sb3 import EvaluationCurveCallback, evaluation_policy
    from saq_wrappers.wrappers import SAQActionWrapper

    env = _pendulum()
    agent = DQN("MlpPolicy", SAQActionWrapper(env, _grid(env, 8)), device="cpu")
    with pytest.raises(SpaceMismatchError, match=r"DQN agent has Discrete\(8\) actions.*Discrete\(16\)"):
        evaluation_policy(agent, SAQActionWrapper(env, _grid(env, 16)))
    other = StepCounter(gym.make("MountainCarContinuous-v0"))  # observations (2,), not (3,)
    with pytest.raises(SpaceMismatchError, match=r"observation shape \(3,\).*\(2,\)"):
        evaluation_policy(agent, SAQActionWrapper(other, _grid(other, 8)))
    wrapped = SAQActionWrapper(env, _grid(env, 8))
    for argument, value in (("eval_freq", 2.5), ("n_episodes", 0), ("n_episodes", 1.5), ("seed", 2.9), ("seed", -1)):
        with pytest.raises(DataError, match=rf"{argument} must be an integer"):
            EvaluationCurveCallback(wrapped, **{"eval_freq": 10, argument: value})
