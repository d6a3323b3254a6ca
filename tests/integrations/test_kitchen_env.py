"""``saq_wrappers/KitchenComplete-v0`` on the real FrankaKitchen-v1: where gymnasium-robotics is
installed (the second virtualenv, ``.venv-robotics``); skipped elsewhere."""

from __future__ import annotations

import inspect
import warnings

import gymnasium as gym
import numpy as np
import pytest

gymnasium_robotics = pytest.importorskip(
    "gymnasium_robotics",
    reason="FrankaKitchen-v1 comes from gymnasium-robotics, installed only in the second virtualenv "
           "(python -m venv .venv-robotics && .venv-robotics/bin/pip install -e '.[robotics]' "
           "-c constraints-robotics.txt)",
)

from gymnasium.utils.env_checker import check_env  # noqa: E402
from gymnasium_robotics.envs.franka_kitchen import FrankaRobot, KitchenEnv  # noqa: E402
from gymnasium_robotics.envs.franka_kitchen.kitchen_env import OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES  # noqa: E402

from saq_wrappers.integrations.gymnasium_robotics import (  # noqa: E402
    KITCHEN_ENV_ID,
    KITCHEN_GOAL,
    KITCHEN_NOISE,
    KITCHEN_TASKS,
    kitchen_normalized_score,
)

#: Gymnasium's notes on any unbounded Box observation space (Hopper-v5 gets them too).
UNBOUNDED_BOX_NOTES = ("A Box observation space minimum value is -infinity", "A Box observation space maximum value "
                       "is infinity")


def _make(noise: str = "dataset") -> gym.Env:
    return gym.make(KITCHEN_ENV_ID, noise=noise)


def test_the_registered_env_is_frankakitchen_v1_with_the_four_tasks_and_280_steps() -> None:
    env = _make()
    kitchen = env.unwrapped.kitchen
    assert isinstance(kitchen, KitchenEnv) and set(kitchen.goal) == set(KITCHEN_TASKS)
    assert env.spec.max_episode_steps == 280 and env.observation_space.shape == (60,)
    assert env.action_space == kitchen.action_space  # v1's joint velocities, as D4RL's
    assert env.action_space.shape == (9,) and (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(np.zeros(9, np.float32))
        steps, done = steps + 1, terminated or truncated
    assert (steps, terminated, truncated) == (280, False, True)
    env.close()


def test_check_env_is_clean() -> None:
    """Gymnasium's checker on the raw env (no render check: no display here); its only notes are
    the two every unbounded Box gets, as D4RL's observation had no bounds."""
    env = _make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    notes = [str(w.message) for w in caught]
    assert all(any(note in text for note in UNBOUNDED_BOX_NOTES) for text in notes), notes
    env.close()


def test_the_goal_is_frankakitchen_v1s_and_the_observation_is_the_simulators_state() -> None:
    goal = np.zeros(30)
    for task in KITCHEN_TASKS:
        goal[OBS_ELEMENT_INDICES[task]] = OBS_ELEMENT_GOALS[task]
    assert np.array_equal(KITCHEN_GOAL, goal.astype(np.float32))
    env = _make("none")  # without noise the observation is the joint positions, exactly
    obs, _ = env.reset(seed=0)
    qpos = env.unwrapped.kitchen.data.qpos
    assert obs.dtype == np.float32 and np.array_equal(obs[:30], qpos[:30].astype(np.float32))
    assert np.array_equal(obs[30:], KITCHEN_GOAL)
    obs, *_ = env.step(env.action_space.sample())
    assert np.array_equal(obs[:30], env.unwrapped.kitchen.data.qpos[:30].astype(np.float32))
    env.close()


def test_noise_settings_reach_the_env_and_v1_is_its_own_default() -> None:
    defaults = (inspect.signature(FrankaRobot.__init__).parameters["robot_noise_ratio"].default,
                inspect.signature(KitchenEnv.__init__).parameters["object_noise_ratio"].default)
    assert KITCHEN_NOISE["v1"] == defaults
    spread = {}
    for noise, (robot, obj) in KITCHEN_NOISE.items():
        env = _make(noise)
        kitchen = env.unwrapped.kitchen
        assert (kitchen.robot_env.robot_noise_ratio, kitchen.object_noise_ratio) == (robot, obj)
        obs, _ = env.reset(seed=0)
        spread[noise] = float(np.abs(obs[:9] - kitchen.data.qpos[:9].astype(np.float32)).max())
        again, _ = env.reset(seed=0)
        assert np.array_equal(obs, again)  # seeded noise
        env.close()
    assert spread["none"] == 0.0 < spread["v1"] < spread["dataset"]


def test_a_completed_task_scores_25() -> None:
    """Put the microwave door at its goal: the next step completes one task, reward 1, once."""
    env = _make("none")
    env.reset(seed=0)
    kitchen = env.unwrapped.kitchen
    kitchen.data.qpos[OBS_ELEMENT_INDICES["microwave"]] = OBS_ELEMENT_GOALS["microwave"]
    _, reward, terminated, _, info = env.step(np.zeros(9, np.float32))
    assert (reward, terminated, info["step_task_completions"]) == (1.0, False, ["microwave"])
    assert env.step(np.zeros(9, np.float32))[1] == 0.0  # a task counts once per episode
    assert kitchen_normalized_score(reward) == 25.0
    env.close()
