"""D4RL's kitchen without gymnasium-robotics or the data file: the v0 observation rebuild, the
constant goal, D4RL's score, the noise settings, the env class around a stand-in FrankaKitchen-v1,
the registered id's install message, and a file in the kitchen layout through the D4RL reader.

The env itself is tested where gymnasium-robotics is installed: ``test_kitchen_env.py``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from saq_wrappers.app.datasets import DatasetSpec, load_dataset
from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d4rl import load_d4rl_hdf5
from saq_wrappers.integrations.gymnasium_robotics import (
    KITCHEN_ENV_ID,
    KITCHEN_GOAL,
    KITCHEN_MAX_STEPS,
    KITCHEN_NOISE,
    ROBOTICS_INSTALL,
    KitchenV0Env,
    kitchen_noise_ratios,
    kitchen_normalized_score,
    kitchen_v0_observation,
)
from kitchen_files import LENGTHS, kitchen_file

#: D4RL's recipe for the goal (``d4rl/kitchen/kitchen_envs.py``: ``OBS_ELEMENT_INDICES``,
#: ``OBS_ELEMENT_GOALS`` and ``_get_task_goal``): zeros, then each task's joints set to its goal.
D4RL_INDICES = {"microwave": [22], "kettle": [23, 24, 25, 26, 27, 28, 29], "light switch": [17, 18],
                "slide cabinet": [19]}
D4RL_GOALS = {"microwave": [-0.75], "kettle": [-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06],
              "light switch": [-0.69, -0.05], "slide cabinet": [0.37]}
#: Gymnasium's two notes on any unbounded Box (Hopper-v5's too): D4RL's observation has no bounds.
UNBOUNDED_BOX_NOTES = ("A Box observation space minimum value is -infinity", "A Box observation space maximum value "
                       "is infinity")


# ---------------------------------------------------------------------------------- the pure parts
def test_the_goal_is_d4rls_recipe_for_the_four_tasks() -> None:
    goal = np.zeros(30, np.float32)
    for task, indices in D4RL_INDICES.items():
        goal[indices] = D4RL_GOALS[task]
    assert KITCHEN_GOAL.dtype == np.float32 and np.array_equal(KITCHEN_GOAL, goal)
    with pytest.raises(ValueError):
        KITCHEN_GOAL[0] = 1.0  # read-only: a shared constant


def test_the_v0_observation_is_robot_qpos_object_qpos_and_the_goal() -> None:
    """A hand-built v1 state whose every number says where it is: the rebuild keeps robot qpos
    (0:9) and object qpos (18:39) in order, drops both velocities, and appends the goal."""
    state = np.arange(59, dtype=np.float64) + 0.5  # robot qpos 0:9 | qvel 9:18 | object qpos 18:39 | qvel 39:59
    v0 = kitchen_v0_observation(state)
    assert v0.shape == (60,) and v0.dtype == np.float32
    assert np.array_equal(v0[:9], np.arange(9) + 0.5)
    assert np.array_equal(v0[9:30], np.arange(18, 39) + 0.5)
    assert np.array_equal(v0[30:], KITCHEN_GOAL)
    batch = np.stack([state, state + 1000.0]).reshape(2, 1, 59)
    rebuilt = kitchen_v0_observation(batch)
    assert rebuilt.shape == (2, 1, 60) and np.array_equal(rebuilt[0, 0], v0)
    assert np.array_equal(rebuilt[1, 0, :30], v0[:30] + 1000.0) and np.array_equal(rebuilt[1, 0, 30:], KITCHEN_GOAL)
    for bad in (np.zeros(60), np.zeros((3, 58)), np.float64(1.0)):
        with pytest.raises(DataError, match="59 numbers"):
            kitchen_v0_observation(bad)


def test_the_score_is_d4rls_100_return_over_4() -> None:
    assert kitchen_normalized_score(0.0) == 0.0 and kitchen_normalized_score(4.0) == 100.0
    assert kitchen_normalized_score(1.0) == 25.0  # 25 per task done
    assert np.array_equal(kitchen_normalized_score(np.array([0.0, 2.0, 3.0])), [0.0, 50.0, 75.0])
    with pytest.raises(DataError):
        kitchen_normalized_score(float("nan"))


def test_noise_settings() -> None:
    assert kitchen_noise_ratios("dataset") == (0.1, 0.1)  # what D4RL's env added, and the data saw
    assert kitchen_noise_ratios("v1") == (0.01, 0.0005) and kitchen_noise_ratios("none") == (0.0, 0.0)
    assert list(KITCHEN_NOISE) == ["dataset", "v1", "none"]
    for bad in ("d4rl", None, 0.1):
        with pytest.raises(DataError, match="dataset, v1, none"):
            kitchen_noise_ratios(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- the env class
class FakeKitchen(gym.Env[dict[str, Any], np.ndarray]):
    """FrankaKitchen-v1's spaces and dict observations: the 59-D state counts up each step."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        box = gym.spaces.Box(-np.inf, np.inf, (59,), np.float64)
        self.observation_space = gym.spaces.Dict({"observation": box, "achieved_goal": gym.spaces.Dict(),
                                                  "desired_goal": gym.spaces.Dict()})
        self.action_space = gym.spaces.Box(-1.0, 1.0, (9,), np.float32)
        self.t = 0

    def _obs(self) -> dict[str, Any]:
        return {"observation": np.full(59, float(self.t)) + self.np_random.uniform(0, 1e-3, 59),
                "achieved_goal": {}, "desired_goal": {}}

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"tasks_to_complete": ["microwave"]}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        self.t += 1
        return self._obs(), float(self.t == 2), False, False, {"step_task_completions": []}


def test_the_env_observes_v0_and_passes_gymnasiums_checks() -> None:
    env = KitchenV0Env(FakeKitchen())
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (60,), np.float32)
    obs, info = env.reset(seed=3)
    assert obs.shape == (60,) and np.allclose(obs[:30], 0.0, atol=1e-3) and np.array_equal(obs[30:], KITCHEN_GOAL)
    assert info == {"tasks_to_complete": ["microwave"]}
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert np.allclose(obs[:30], 1.0, atol=1e-3) and (reward, terminated, truncated) == (0.0, False, False)
    assert env.step(env.action_space.sample())[1] == 1.0  # v1's reward, untouched
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    notes = [str(w.message) for w in caught]
    assert all(any(note in text for note in UNBOUNDED_BOX_NOTES) for text in notes), notes
    with pytest.raises(DataError, match="FrankaKitchen-v1"):
        KitchenV0Env(gym.make("Pendulum-v1"))


def test_the_id_is_registered_and_names_the_install_line_without_gymnasium_robotics(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = gym.spec(KITCHEN_ENV_ID)
    assert spec.max_episode_steps == KITCHEN_MAX_STEPS == 280 and spec.kwargs == {"noise": "dataset"}
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # not importable, even where installed
    with pytest.raises(DataError) as raised:
        gym.make(KITCHEN_ENV_ID)
    message = str(raised.value)
    assert ROBOTICS_INSTALL in message and "second virtualenv" in message and "gymnasium-robotics" in message
    with pytest.raises(DataError, match="noise 'loud' unknown"):
        gym.make(KITCHEN_ENV_ID, noise="loud")  # refused before anything is imported


# ---------------------------------------------------------------------------------- the file
def test_a_kitchen_layout_file_through_the_d4rl_reader(tmp_path: Path) -> None:
    """Episode ends from ``terminals``, next observations paired within episodes, nothing shifted
    across episodes; every row kept (terminal last rows need no successor)."""
    path = kitchen_file(tmp_path / "kitchen.hdf5")
    data = load_d4rl_hdf5(path)
    n = sum(LENGTHS)
    assert len(data) == n and data.n_episodes == len(LENGTHS) and data.observations.shape == (n, 60)
    ends = np.cumsum(LENGTHS) - 1
    assert np.array_equal(np.flatnonzero(data.terminals), ends) and not data.timeouts.any()
    assert np.array_equal(np.flatnonzero(data.episode_starts), np.r_[0, ends[:-1] + 1])
    where = data.observations[:, 0]  # 100 * episode + step
    episode, step = where // 100, where % 100
    inside = ~data.terminals
    assert np.array_equal(data.next_observations[inside], data.observations[1:][inside[:-1]])
    assert np.array_equal(data.next_observations[inside, 0], where[inside] + 1)  # the next step...
    assert np.array_equal(data.next_observations[:, 0] // 100, episode)  # ...of the same episode, always
    assert np.array_equal(data.next_observations[ends], data.observations[ends])  # placeholder, never bootstrapped
    assert np.array_equal(step[data.episode_starts], np.zeros(len(LENGTHS)))
    assert np.array_equal(data.episode_returns(), [sum(np.minimum(4, np.arange(k) * 4 // (k - 1))) for k in LENGTHS])
    assert np.array_equal(data.observations[:, 30:], np.broadcast_to(KITCHEN_GOAL, (n, 30)))

    # the resolver names the env by its id and cuts to the first episodes, before any env is made
    spec = DatasetSpec(name="kitchen", kind="d4rl", source=str(path), env_id=KITCHEN_ENV_ID,
                       env_kwargs={"noise": "v1"}, ref_min=0.0, ref_max=4.0, first_episodes=2)
    assert spec.env_kwargs == (("noise", "v1"),)
    loaded = load_dataset(spec)
    assert loaded.transitions.n_episodes == 2 and len(loaded.transitions) == LENGTHS[0] + LENGTHS[1]
    assert np.array_equal(loaded.transitions.observations, data.observations[:LENGTHS[0] + LENGTHS[1]])
    assert loaded.metadata == {"env_kwargs": {"noise": "v1"}}
    with pytest.raises(DataError, match="first_episodes is 9, but the data hold 4 episodes"):
        load_dataset(DatasetSpec(name="kitchen", kind="d4rl", source=str(path), env_id=KITCHEN_ENV_ID,
                                 first_episodes=9))
    parsed = DatasetSpec.parse(f"d4rl:{path}@{KITCHEN_ENV_ID}")
    assert (parsed.kind, parsed.env_id, parsed.env_kwargs) == ("d4rl", KITCHEN_ENV_ID, ())
