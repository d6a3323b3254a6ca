"""The presets' observation scaler (saq_wrappers.integrations.d3rlpy.scalers).

It fits d3rlpy's statistics with the library's one rule for near-constant dimensions
(:func:`~saq_wrappers.vqvae.normalization.robust_std`, the quantizer's too), so a preset policy
trained on data where a dimension never moved keeps its action when that dimension moves at run
time; it round-trips through ``save_learnable``/``load_learnable``, and the SB3 bridge copies it
exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import d3rlpy
import gymnasium as gym
import numpy as np
import pytest
import torch
from d3rlpy.dataset import BasicTrajectorySlicer, BasicTransitionPicker
from d3rlpy.logging import NoopAdapterFactory
from d3rlpy.preprocessing import StandardObservationScaler

from saq_wrappers.action_set import FixedActionSet
from saq_wrappers.integrations.d3rlpy import (
    RobustStandardObservationScaler,
    saq_bc_config,
    saq_brac_config,
    saq_cql_config,
    saq_iql_config,
)
from saq_wrappers.integrations.d3rlpy.presets import continuous_config
from saq_wrappers.integrations.d3rlpy.registry import make_config
from saq_wrappers.integrations.sb3 import make_saq_vec_env, warm_started_dqn
from saq_wrappers.vqvae.normalization import Normalizer, robust_std

#: How far the near-constant dimensions move at run time.
MOVE = 0.05
N_CODES = 4
TINY = (32, 32)


def code_dataset(n: int = 600, seed: int = 0) -> tuple[d3rlpy.dataset.MDPDataset, np.ndarray]:
    """Pendulum-shaped 3-D observations (cos, sin, velocity) in 6 episodes whose dim 1 is
    constant and dim 2 jitters at 1e-5; the code is the quadrant of dim 0 and a random bit."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-np.pi, np.pi, n)
    obs = np.stack([np.cos(angle), np.full(n, 0.2), 0.5 + 1e-5 * rng.standard_normal(n)], axis=1)
    obs = obs.astype(np.float32)
    codes = (2 * (obs[:, 0] > 0) + (angle > 0)).astype(np.int64)
    terminals = np.zeros(n, np.float32)
    terminals[np.arange(1, 7) * (n // 6) - 1] = 1.0
    dataset = d3rlpy.dataset.MDPDataset(obs, codes, rng.standard_normal(n).astype(np.float32), terminals,
                                        action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=N_CODES)
    return dataset, obs


def train(config: Any, dataset: d3rlpy.dataset.MDPDataset, steps: int = 40) -> Any:
    d3rlpy.seed(0)
    algo = config.create(device="cpu")
    algo.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False,
             logger_adapter=NoopAdapterFactory())
    return algo


def bc_log_probs(algo: Any, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = algo.config.observation_scaler.transform(torch.as_tensor(obs))
        return algo.impl.modules.imitator(x).logits.numpy()


@pytest.mark.parametrize("make", [
    saq_bc_config, saq_cql_config, saq_iql_config, saq_brac_config,
    lambda: continuous_config("BC", gym.spaces.Box(-1, 1, (2,))),
    lambda: make_config("ARQ", None, options={"candidate_table": "t", "sampler_path": "s"}),
])
def test_every_preset_uses_the_robust_scaler(make: Any) -> None:
    assert type(make().observation_scaler) is RobustStandardObservationScaler


def test_fit_applies_the_one_rule_on_both_of_d3rlpys_paths() -> None:
    dataset, obs = code_dataset()
    fits = {
        "fit_with_transition_picker": BasicTransitionPicker(),
        "fit_with_trajectory_slicer": BasicTrajectorySlicer(),
    }
    for method, helper in fits.items():
        plain, robust = StandardObservationScaler(), RobustStandardObservationScaler()
        getattr(plain, method)(dataset.episodes, helper)
        getattr(robust, method)(dataset.episodes, helper)
        np.testing.assert_array_equal(robust.mean, plain.mean)
        np.testing.assert_array_equal(robust.std, robust_std(plain.std))
        # the dim that varies keeps d3rlpy's std; the constant and the jittering ones get its
        assert robust.std[0] == plain.std[0]
        np.testing.assert_array_equal(robust.std[1:], plain.std[0])
        # the same inputs' scales as the quantizer's normalizer (one rule; its floor is inactive)
        normalizer = Normalizer.fit(obs, np.zeros((len(obs), 1), np.float32))
        np.testing.assert_allclose(robust.std, normalizer.obs_std, rtol=1e-5)


def test_preset_policy_keeps_its_action_when_a_constant_dimension_moves() -> None:
    dataset, obs = code_dataset()
    states = obs[:200]
    moved = states.copy()
    moved[:, 1:] += MOVE

    def swing(scaler: Any) -> tuple[float, float]:
        algo = train(saq_bc_config(hidden_units=TINY, batch_size=64, observation_scaler=scaler), dataset)
        change = np.abs(bc_log_probs(algo, moved) - bc_log_probs(algo, states)).max()
        flipped = float(np.mean(algo.predict(moved) != algo.predict(states)))
        return float(change), flipped

    change, flipped = swing(RobustStandardObservationScaler())
    assert change < 0.05 and flipped == 0.0
    # d3rlpy's own scaler divides the moved dims by ~1e-3: the same move is ~50 std of input
    old_change, old_flipped = swing(StandardObservationScaler())
    assert old_change > 1.0 and old_flipped > 0.1


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    dataset, obs = code_dataset()
    algo = train(saq_bc_config(hidden_units=TINY, batch_size=64), dataset, steps=5)
    algo.save(str(tmp_path / "bc.d3"))
    loaded = d3rlpy.load_learnable(str(tmp_path / "bc.d3"), device="cpu")
    scaler, original = loaded.config.observation_scaler, algo.config.observation_scaler
    assert type(scaler) is RobustStandardObservationScaler
    np.testing.assert_array_equal(scaler.mean, original.mean)
    np.testing.assert_array_equal(scaler.std, original.std)
    assert scaler.eps == original.eps
    np.testing.assert_array_equal(bc_log_probs(loaded, obs), bc_log_probs(algo, obs))
    # a model saved with d3rlpy's own scaler (before the presets changed) still loads as it was
    old = train(saq_bc_config(hidden_units=TINY, batch_size=64, observation_scaler=StandardObservationScaler()),
                dataset, steps=5)
    old.save(str(tmp_path / "old.d3"))
    reloaded = d3rlpy.load_learnable(str(tmp_path / "old.d3"), device="cpu")
    assert type(reloaded.config.observation_scaler) is StandardObservationScaler
    np.testing.assert_array_equal(bc_log_probs(reloaded, obs), bc_log_probs(old, obs))


def test_sb3_bridge_copies_the_robust_scaler_exactly() -> None:
    dataset, obs = code_dataset()
    cql = train(saq_cql_config(hidden_units=TINY, batch_size=64), dataset, steps=10)
    space = gym.spaces.Box(-8.0, 8.0, (3,), np.float32)
    grid = FixedActionSet.grid(space, gym.spaces.Box(-2.0, 2.0, (1,), np.float32), bins=N_CODES)
    dqn = warm_started_dqn(make_saq_vec_env("Pendulum-v1", grid, seed=0), cql, seed=0)
    probe = np.concatenate([obs, obs + np.array([0.0, MOVE, -MOVE], np.float32)])
    expected = np.stack([cql.predict_value(probe, np.full(len(probe), k)) for k in range(N_CODES)], axis=1)
    with torch.no_grad():
        copied = dqn.q_net(torch.as_tensor(probe)).numpy()
    np.testing.assert_allclose(copied, expected, atol=1e-5, rtol=0)
