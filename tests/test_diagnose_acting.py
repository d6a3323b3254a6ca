"""The acting diagnosis draws SAQ-BC's codes from the classifier's softmax, on scaled inputs.

A d3rlpy ``DiscreteBC`` learns 1-D states around 100 (so the observation scaler matters): below
the middle the data always takes code 0, above it code 1, and in the middle codes 2 and 3 half the
time each. Draws must follow ``predict`` where the data is certain and split where it is not.
"""

from __future__ import annotations

import d3rlpy
import numpy as np
import torch

from benchmarks.diagnostics.acting import behavior_greedy_codes, sampled_bc_codes
from quiet_training import quiet_fit
from small_iql import small_iql_config


def _three_region_dataset(rng: np.random.Generator) -> d3rlpy.dataset.MDPDataset:
    n = 600
    offsets = np.concatenate([rng.uniform(-3, -1, n), rng.uniform(1, 3, n), rng.uniform(-0.3, 0.3, n)])
    codes = np.concatenate([np.zeros(n), np.ones(n), rng.integers(2, 4, n)]).astype(np.int64)
    order = rng.permutation(len(codes))
    observations = (100.0 + offsets[order])[:, None].astype(np.float32)
    terminals = np.zeros(len(codes))
    terminals[-1] = 1.0
    return d3rlpy.dataset.MDPDataset(observations, codes[order][:, None], np.zeros(len(codes)), terminals,
                                     action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=4)


def test_sampled_codes_follow_the_classifier_softmax_after_the_observation_scaler() -> None:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    config = d3rlpy.algos.DiscreteBCConfig(
        beta=0.0, learning_rate=3e-3, batch_size=128,
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=[32, 32]))
    bc = config.create(device="cpu:0")
    quiet_fit(bc, _three_region_dataset(rng), n_steps=600)
    draw = sampled_bc_codes(bc)

    certain = np.full((400, 1), 98.0, np.float32)  # code 0 in every sample of the data
    assert bc.predict(certain[:1])[0] == 0
    assert np.mean(draw(certain) == 0) > 0.9

    uncertain = np.full((400, 1), 100.0, np.float32)  # codes 2 and 3, half the time each
    shares = np.bincount(draw(uncertain), minlength=4) / 400
    assert 0.25 < shares[2] < 0.75 and 0.25 < shares[3] < 0.75, shares
    assert shares[0] + shares[1] < 0.1, shares


def test_behavior_greedy_codes_read_saq_iql_behavior_policy_not_its_tilted_policy() -> None:
    """One-step episodes in the middle region: code 2 in 70% of the data with reward 0, code 3 in
    30% with reward 1. A sharp eq. 10 tilt (lambda 0.05) moves SAQ-IQL's arg-max to code 3; the
    behavior policy's arg-max stays at the data's mode, code 2."""
    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    n = 1500
    codes = (rng.random(n) < 0.3).astype(np.int64) + 2
    observations = (100.0 + rng.uniform(-0.3, 0.3, n))[:, None].astype(np.float32)
    dataset = d3rlpy.dataset.MDPDataset(
        observations, codes[:, None], (codes == 3).astype(np.float32), np.ones(n),
        action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=4)
    iql = small_iql_config(kl_budget=None, temperature=0.05, fit_behavior_policy=True,
                           observation_scaler=d3rlpy.preprocessing.StandardObservationScaler()).create(device="cpu:0")
    quiet_fit(iql, dataset, n_steps=800)

    states = np.full((50, 1), 100.0, np.float32)
    assert np.all(iql.predict(states) == 3)
    assert np.all(behavior_greedy_codes(iql)(states) == 2)
