"""The rule for near-constant observation dimensions (saq_wrappers.vqvae.normalization).

A dimension that did not vary in the data (exactly constant, or jittering at 1e-5) and moves at
run time must stay a small input, for the normalizer and for a quantizer fitted on such data;
dimensions that vary keep their own spread, so data without near-constant dimensions are
standardized exactly as before the rule.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers.vqvae import VQVAEQuantizer
from saq_wrappers.vqvae.normalization import (
    NEGLIGIBLE_SPREAD,
    STD_FLOOR,
    Normalizer,
    near_constant_dimensions,
    robust_std,
)

#: How far the near-constant dimension moves at run time (a sensor's noise or drift).
MOVE = 0.05


def sensor_data(n: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Observations whose dims 0-3 vary (stds 0.05 to 2), dim 4 is constant, dim 5 jitters at
    1e-5; actions depend on dims 0-1 only."""
    rng = np.random.default_rng(seed)
    moving = rng.standard_normal((n, 4)) * np.array([1.0, 0.5, 2.0, 0.05])
    constant = np.full((n, 1), 0.3)
    jitter = -0.7 + 1e-5 * rng.standard_normal((n, 1))
    obs = np.concatenate([moving, constant, jitter], axis=1).astype(np.float32)
    actions = np.tanh(obs[:, :2] + 0.05 * rng.standard_normal((n, 2))).astype(np.float32)
    return obs, actions


def test_near_constant_dimensions_are_found_and_do_not_drag_the_reference_down() -> None:
    std = np.array([1.0, 0.5, 2.0, 0.05, 0.0, 1e-5, 3e-4])
    mask, reference = near_constant_dimensions(std)
    np.testing.assert_array_equal(mask, [False, False, False, False, True, True, True])
    # the median of the dims that vary, not of all (which would be 0.05 and keep 3e-4)
    assert reference == pytest.approx(np.median([1.0, 0.5, 2.0, 0.05]))
    np.testing.assert_array_equal(robust_std(std), np.where(mask, reference, std))
    # scale-free: the same dims at any unit
    mask_km, reference_km = near_constant_dimensions(std * 1e-3)
    np.testing.assert_array_equal(mask_km, mask)
    assert reference_km == pytest.approx(reference * 1e-3)
    # the threshold is relative to the reference: a dim just above it is kept, just below dropped
    base = np.array([1.0, 1.0, 1.0])
    assert not near_constant_dimensions(np.append(base, 1.01 * NEGLIGIBLE_SPREAD))[0][-1]
    assert near_constant_dimensions(np.append(base, 0.99 * NEGLIGIBLE_SPREAD))[0][-1]


def test_no_varying_dimension_and_bad_values() -> None:
    mask, reference = near_constant_dimensions(np.zeros(3))
    assert mask.all() and reference == 1.0
    mask, _ = near_constant_dimensions(np.array([1.0, np.nan, 0.0]))
    np.testing.assert_array_equal(mask, [False, False, True])  # NaN is left to the range check
    assert np.isnan(robust_std(np.array([1.0, np.nan]))[1])


def test_a_constant_dimension_that_moves_stays_a_small_input() -> None:
    obs, actions = sensor_data()
    normalizer = Normalizer.fit(obs, actions)
    moved = obs[:8].copy()
    moved[:, 4:] += MOVE
    shift = normalizer.normalize_observations(moved) - normalizer.normalize_observations(obs[:8])
    # the old rule divided by max(std, 1e-3): 0.05 / 1e-3 = 50 standard deviations
    old = MOVE / np.maximum(obs[:, 4:].astype(np.float64).std(axis=0), STD_FLOOR)
    assert (old > 45).all()
    reference = np.median(obs[:, :4].astype(np.float64).std(axis=0))  # of the dims that vary
    np.testing.assert_allclose(shift[:, 4:], MOVE / reference, rtol=1e-3)
    assert np.abs(shift[:, 4:]).max() < 0.1
    np.testing.assert_array_equal(shift[:, :4], 0)


def test_dimensions_that_vary_are_standardized_as_before() -> None:
    obs, actions = sensor_data()
    normalizer = Normalizer.fit(obs, actions)
    std = obs.astype(np.float64).std(axis=0)
    np.testing.assert_array_equal(normalizer.obs_std[:4], np.maximum(std[:4], STD_FLOOR).astype(np.float32))
    # data with no near-constant dimension: bit for bit the old statistics
    plain = Normalizer.fit(obs[:, :4], actions)
    np.testing.assert_array_equal(plain.obs_std, np.maximum(std[:4], STD_FLOOR).astype(np.float32))


def test_actions_keep_the_plain_floor() -> None:
    """A constant action dimension is an output the decoder reproduces: floored, not rescaled."""
    obs, actions = sensor_data()
    actions = np.concatenate([actions, np.zeros((len(actions), 1), np.float32)], axis=1)
    normalizer = Normalizer.fit(obs, actions, std_floor=0.05)
    assert normalizer.act_std[2] == np.float32(0.05)
    # the floor still bounds the observation stds from below (ARQ's sampler floors at 0.05)
    assert normalizer.obs_std.min() >= np.float32(0.05)


def test_statistics_saved_before_the_rule_still_load() -> None:
    """Checkpoints written with the old floor (a constant dimension's std at 1e-3) load unchanged."""
    old = {"obs_mean": [0.0, 0.3], "obs_std": [1.0, STD_FLOOR], "act_mean": [0.0], "act_std": [0.5]}
    loaded = Normalizer.from_json(old, obs_dim=2, act_dim=1)
    np.testing.assert_array_equal(loaded.obs_std, np.array([1.0, STD_FLOOR], np.float32))


def test_quantizer_decoding_does_not_swing_when_a_constant_dimension_moves() -> None:
    obs, actions = sensor_data()
    q = VQVAEQuantizer(gym.spaces.Box(-10, 10, (6,), np.float32), gym.spaces.Box(-1, 1, (2,), np.float32),
                       n_codes=4, hidden_sizes=(64, 64), embedding_dim=16, learning_rate=1e-3, seed=0)
    q.fit(obs, actions, n_steps=200, progress=False)
    states = obs[:256]
    moved = states.copy()
    moved[:, 4:] += MOVE
    codes = np.arange(len(states)) % 4
    change = np.abs(q.decode(moved, codes) - q.decode(states, codes)).max()
    assert change < 0.05


def test_diagnostic_reports_what_the_rule_changes(tmp_path, capsys) -> None:
    """``python -m benchmarks.diagnostics.standardization`` on a D4RL-style file with a constant
    and a jittering dimension: exactly those change, in every consumer, and nothing else."""
    import h5py

    from benchmarks.diagnostics.standardization import main

    obs, actions = sensor_data(n=200)
    path = tmp_path / "sensors.hdf5"
    moving = tmp_path / "moving.hdf5"
    for file, columns in ((path, obs), (moving, obs[:, :3])):
        with h5py.File(file, "w") as handle:
            handle["observations"], handle["actions"] = columns, actions
            handle["rewards"] = np.zeros(len(obs), np.float32)
            handle["terminals"] = np.arange(len(obs)) % 50 == 49
            handle["timeouts"] = np.zeros(len(obs), bool)
    changed, unchanged = main(["--suite", "none", f"d4rl:{path}", f"moving-only=d4rl:{moving}"])
    assert changed["near_constant"] == [4, 5]
    assert changed["changed"] == {"d3rlpy": [4, 5], "quantizer": [4, 5], "arq": [4, 5]}
    assert unchanged["name"] == "moving-only" and unchanged["near_constant"] == []
    assert unchanged["changed"] == {"d3rlpy": [], "quantizer": [], "arq": []}
    out = capsys.readouterr().out
    assert "2 near-constant dims" in out and "the rule changes nothing" in out
