"""``code_weights(algo)``: each SAQ algorithm's own policy over codes, through its scaler.

The property checked is the one mode averaging relies on: the weights are a distribution over the
K codes whose arg-max is the code the algorithm itself picks (``predict``), at observations far
from zero mean and unit scale, so a forward pass that skipped the observation scaler would
disagree.
"""

from __future__ import annotations

from typing import Any, Callable

import d3rlpy
import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers.errors import NotFittedError
from saq_wrappers.integrations.d3rlpy import (
    code_weights,
    evaluate_algo,
    saq_bc_config,
    saq_brac_config,
    saq_cql_config,
    saq_iql_config,
)
from saq_wrappers.integrations.d3rlpy.presets import saq_encoder
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.action_set import FixedActionSet

K = 6
OBS_SHIFT = np.array([40.0, -25.0, 300.0], dtype=np.float32)  # far from 0: the scaler matters


def _observations(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (OBS_SHIFT + rng.normal(size=(600, 3)) * [1.0, 5.0, 0.1]).astype(np.float32)


def _dataset(seed: int = 0) -> d3rlpy.dataset.MDPDataset:
    rng = np.random.default_rng(seed + 100)
    obs = _observations(seed)
    codes = (np.digitize(obs[:, 0] - OBS_SHIFT[0], [-1.0, -0.3, 0.3, 1.0]) + rng.integers(0, 2, 600)) % K
    rewards = (codes == 2).astype(np.float32)
    terminals = np.zeros(600, np.float32)
    terminals[9::10] = 1.0
    return d3rlpy.dataset.MDPDataset(obs, codes, rewards, terminals,
                                     action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=K)


SMALL = {"encoder_factory": saq_encoder((32, 32))}
CONFIGS: dict[str, Callable[[], Any]] = {
    "SAQ-BC": lambda: saq_bc_config(**SMALL),
    "SAQ-CQL": lambda: saq_cql_config(**SMALL),
    "SAQ-IQL": lambda: saq_iql_config(hidden_units=(32, 32)),
    "SAQ-BRAC": lambda: saq_brac_config(hidden_units=(32, 32)),
}


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    dataset = _dataset()
    algos = {}
    for name, make in CONFIGS.items():
        algo = make().create(device="cpu")
        algo.fit(dataset, n_steps=150, n_steps_per_epoch=150, show_progress=False, save_interval=10**9,
                 experiment_name=f"code_weights_{name}", with_timestamp=False, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
        algos[name] = algo
    return algos


@pytest.mark.parametrize("name", list(CONFIGS))
def test_weights_are_a_distribution_whose_argmax_is_the_algorithms_choice(trained: dict[str, Any], name: str) -> None:
    algo = trained[name]
    obs = _observations(seed=1)[:200]
    weights = code_weights(algo)(obs)
    assert weights.shape == (200, K) and np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert np.mean(weights.argmax(axis=1) == algo.predict(obs)) > 0.99
    assert weights.std(axis=0).max() > 1e-3  # depends on the state, not a constant


def test_unbuilt_and_unknown_algorithms_are_refused() -> None:
    with pytest.raises(NotFittedError, match="not built"):
        code_weights(saq_bc_config().create(device="cpu"))
    continuous = d3rlpy.algos.BCConfig().create(device="cpu")
    continuous.create_impl((3,), 2)
    with pytest.raises(TypeError, match="no policy over codes is known for BC"):
        code_weights(continuous)


def test_evaluate_algo_acts_at_the_mode_mean_of_the_policy(trained: dict[str, Any]) -> None:
    algo = trained["SAQ-BC"]
    env = gym.make("Pendulum-v1", max_episode_steps=4)
    space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    env = gym.wrappers.TransformObservation(env, lambda o: (o + OBS_SHIFT).astype(np.float32), space)
    actions = FixedActionSet(space, env.action_space, np.linspace(-2, 2, K)[:, None])
    plain = evaluate_algo(algo, env, actions, n_episodes=1, progress=False)
    averaged = evaluate_algo(algo, env, actions, n_episodes=1, progress=False, acting=ModeAveraging())
    assert plain.returns[0] != averaged.returns[0]  # another action was sent
    with pytest.raises(ValueError, match="needs the action set"):
        evaluate_algo(algo, env, None, n_episodes=1, progress=False, acting=ModeAveraging())
