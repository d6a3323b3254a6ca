"""SAQ-CQL end to end on a tiny task: quantize, relabel, d3rlpy DiscreteCQL, evaluate wrapped."""

from __future__ import annotations

from pathlib import Path

import d3rlpy
import gymnasium as gym

from saq_wrappers import VQVAEQuantizer
from saq_wrappers.experts import quickstart_dataset
from saq_wrappers.integrations.d3rlpy import (
    evaluate_algo,
    saq_cql_config,
    saq_environment_evaluator,
    to_discrete_dataset,
)
from saq_wrappers.integrations.d3rlpy.presets import saq_encoder


def test_short_saq_cql_run_beats_random_by_far(tmp_path: Path) -> None:
    transitions, meta = quickstart_dataset(cache_dir=tmp_path, n_episodes=20, progress=False)
    env = gym.make("Pendulum-v1")
    quantizer = VQVAEQuantizer(env.observation_space, env.action_space, n_codes=8,
                               hidden_sizes=(64, 64), embedding_dim=16, n_steps=600, seed=0)
    quantizer.fit(transitions, progress=False)
    dataset = to_discrete_dataset(transitions, quantizer, progress=False)
    d3rlpy.seed(0)
    algo = saq_cql_config(encoder_factory=saq_encoder((64, 64))).create(device="cpu")
    evaluator = saq_environment_evaluator(env, quantizer, n_trials=1, seed=0)
    algo.fit(dataset, n_steps=2000, n_steps_per_epoch=2000, show_progress=False,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory(), evaluators={"environment": evaluator})
    result = evaluate_algo(algo, env, quantizer, n_episodes=10, seed=100, progress=False)
    gap = meta["expert_return"] - meta["random_return"]
    # random actions score about -1100 and the expert about -130: SAQ-CQL must close over half
    # the gap (normalized score > 50; at 2,000 updates seeds 0-2 measured -212, -213, -225 against a
    # bar of -623, and at 1,000 updates all three were still below it)
    assert result.mean_return > meta["random_return"] + 0.5 * gap
