"""ExperimentSpec identity: fingerprints, run ids and labels of the acting variants."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from saq_wrappers.app.datasets import DatasetSpec
from saq_wrappers.app.experiment import EvaluationSettings, ExperimentSpec
from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy.evaluation import evaluate_algo


def _spec(**evaluation: object) -> ExperimentSpec:
    data = DatasetSpec(name="pendulum-expert", kind="builtin", source="pendulum-expert", episodes=3)
    return ExperimentSpec(data, "SAQ-IQL", seed=1, steps=100, evaluation=EvaluationSettings(**evaluation))


def test_greedy_default_keeps_the_fingerprints_of_results_written_before_it_existed() -> None:
    spec = _spec()
    # the fingerprint as it was computed before ``evaluation.greedy`` was added
    old = spec.to_dict()
    old.pop("tag")
    del old["evaluation"]["greedy"]
    for permission in ("download", "trust_env_spec"):
        old["dataset"].pop(permission, None)
    assert spec.fingerprint() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    sampled = _spec(greedy=False)
    assert sampled.fingerprint() != spec.fingerprint()
    assert sampled.run_id == spec.run_id.replace("-K64", "-K64-sampled") != spec.run_id
    assert "sampled" in sampled.label and "sampled" not in spec.label
    assert ExperimentSpec.from_dict(json.loads(json.dumps(sampled.to_dict()))) == sampled
    with pytest.raises(DataError, match="greedy"):
        EvaluationSettings(greedy="no")  # type: ignore[arg-type]


class _Recorder:
    """A stand-in algorithm that says which acting method the evaluation called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls.append("predict")
        return np.zeros((len(x), 1), dtype=np.float32)

    def sample_action(self, x: np.ndarray) -> np.ndarray:
        self.calls.append("sample")
        return np.zeros((len(x), 1), dtype=np.float32)


def test_evaluate_algo_samples_only_when_asked() -> None:
    import gymnasium as gym

    for greedy, expected in ((True, {"predict"}), (False, {"sample"})):
        algo = _Recorder()
        env = gym.wrappers.TimeLimit(gym.make("Pendulum-v1").unwrapped, 5)
        evaluate_algo(algo, env, n_episodes=1, progress=False, greedy=greedy)
        assert set(algo.calls) == expected
    assert dataclasses.replace(EvaluationSettings(), greedy=False).greedy is False
