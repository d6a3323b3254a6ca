"""The wrappers' mode-averaging option: the chosen index picks a mode, the env gets its mean."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from saq_wrappers.action_set import FixedActionSet
from saq_wrappers.errors import DataError
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.wrappers import SAQActionWrapper, SAQVectorActionWrapper

#: two groups of candidate torques: a noisy cluster around -1.5 and one around +1.0
CLUSTER_LOW = np.array([-1.8, -1.6, -1.5, -1.4, -1.2])
CLUSTER_HIGH = np.array([0.7, 0.9, 1.0, 1.1, 1.3])


def _action_set(env: Any) -> FixedActionSet:
    space = env.single_action_space if hasattr(env, "single_action_space") else env.action_space
    obs_space = env.single_observation_space if hasattr(env, "single_observation_space") else env.observation_space
    return FixedActionSet(obs_space, space, np.concatenate([CLUSTER_LOW, CLUSTER_HIGH])[:, None])


def _pendulum() -> gym.Env[Any, Any]:
    return gym.make("Pendulum-v1", max_episode_steps=20)


def test_the_chosen_index_picks_its_cluster_and_the_env_gets_the_clusters_mean() -> None:
    env = SAQActionWrapper(_pendulum(), _action_set(_pendulum()), acting=ModeAveraging())
    env.reset(seed=0)
    for index, cluster in ((0, CLUSTER_LOW), (4, CLUSTER_LOW), (6, CLUSTER_HIGH), (9, CLUSTER_HIGH)):
        *_, info = env.step(index)
        # uniform weights over the candidates: the mean of the chosen cluster, not the chosen one
        assert info["continuous_action"][0] == pytest.approx(cluster.mean(), abs=0.02)
        assert info["action_index"] == index
    plain = SAQActionWrapper(_pendulum(), _action_set(_pendulum()))
    plain.reset(seed=0)
    assert plain.step(0)[-1]["continuous_action"][0] == pytest.approx(-1.8)


def test_code_weights_are_the_agents_and_are_asked_at_the_current_observation() -> None:
    seen: list[np.ndarray] = []

    def weights(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.copy())
        w = np.zeros((len(obs), 10))
        w[:, [2, 3]] = 1.0  # the agent trusts -1.5 and -1.4 only
        w[:, 6] = 1.0
        return w

    env = SAQActionWrapper(_pendulum(), _action_set(_pendulum()), acting=ModeAveraging(), code_weights=weights)
    obs, _ = env.reset(seed=0)
    *_, info = env.step(0)
    assert seen[0].shape == (1, 3) and np.array_equal(seen[0][0], obs)
    assert info["continuous_action"][0] == pytest.approx(-1.45, abs=0.01)
    *_, info = env.step(8)  # a code it gives no weight: climbs to the weighted candidate nearby
    assert info["continuous_action"][0] == pytest.approx(0.9, abs=0.01)


def test_bad_code_weights_and_options_are_refused_clearly() -> None:
    set_ = _action_set(_pendulum())
    env = SAQActionWrapper(_pendulum(), set_, acting=ModeAveraging(), code_weights=lambda obs: np.ones((1, 3)))
    env.reset(seed=0)
    with pytest.raises(DataError, match=r"code_weights returned shape \(1, 3\), expected \(1, 10\)"):
        env.step(0)
    env = SAQActionWrapper(_pendulum(), set_, acting=ModeAveraging(), code_weights=lambda obs: -np.ones((1, 10)))
    env.reset(seed=0)
    with pytest.raises(DataError, match="negative"):
        env.step(0)
    with pytest.raises(ValueError, match="acting=ModeAveraging"):
        SAQActionWrapper(_pendulum(), set_, code_weights=lambda obs: obs)
    with pytest.raises(TypeError, match="ModeAveraging"):
        SAQActionWrapper(_pendulum(), set_, acting="mode")  # type: ignore[arg-type]


def test_env_checker_is_clean_with_mode_averaging() -> None:
    env = SAQActionWrapper(gym.make("Pendulum-v1"), _action_set(_pendulum()), acting=ModeAveraging())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)  # Pendulum's render needs pygame
    # the one warning check_env gives any wrapper
    assert [str(w.message) for w in caught if "different from the unwrapped version" not in str(w.message)] == []


def test_vector_wrapper_climbs_every_sub_env_as_the_single_wrapper_does() -> None:
    envs = gym.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync")
    vector = SAQVectorActionWrapper(envs, _action_set(envs), acting=ModeAveraging())
    vector.reset(seed=0)
    *_, info = vector.step(np.array([0, 7, 4]))
    single = SAQActionWrapper(_pendulum(), _action_set(_pendulum()), acting=ModeAveraging())
    single.reset(seed=0)
    expected = [single.action(i)[0] for i in (0, 7, 4)]
    np.testing.assert_allclose(info["continuous_action"][:, 0], expected, atol=1e-6)
    vector.close()


def test_the_env_spec_records_the_option_and_rebuilds_a_mode_averaging_wrapper() -> None:
    env = gym.make("Pendulum-v1")
    wrapped = SAQActionWrapper(env, _action_set(env), acting=ModeAveraging(bandwidth_scale=3.0))
    assert wrapped.spec.additional_wrappers[-1].kwargs["acting"] == ModeAveraging(bandwidth_scale=3.0)
    rebuilt = gym.make(wrapped.spec)
    assert isinstance(rebuilt, SAQActionWrapper) and rebuilt.acting == ModeAveraging(bandwidth_scale=3.0)
