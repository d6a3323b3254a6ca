"""ExperimentSpec identity: fingerprints, run ids and labels of the acting variants."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from saq_wrappers.app.datasets import DatasetSpec
from saq_wrappers.app.experiment import ARQSettings, EvaluationSettings, ExperimentSpec, QuantizerSettings
from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy.evaluation import evaluate_algo
from d4rl_files import d4rl_file


def _spec(**evaluation: object) -> ExperimentSpec:
    data = DatasetSpec(name="pendulum-expert", kind="builtin", source="pendulum-expert", episodes=3)
    return ExperimentSpec(data, "SAQ-IQL", seed=1, steps=100, evaluation=EvaluationSettings(**evaluation))


def _old_rule(spec: ExperimentSpec) -> dict:
    """The settings a fingerprint hashes, written out: everything but the tag and the data-fetching
    permissions, minus the settings this algorithm does not read and the late defaults."""
    data = spec.to_dict()
    data.pop("tag")
    for permission in ("download", "trust_env_spec"):
        data["dataset"].pop(permission, None)
    del data["evaluation"]["greedy"]
    del data["evaluation"]["mode_averaging"]  # a later field, left out at its default
    data.pop("reward_scaling")  # a later field, left out at its default
    data.pop("code_policy")  # likewise
    for late in ("env_kwargs", "first_episodes"):  # later dataset fields, left out at their defaults
        data["dataset"].pop(late)
    return data


def _sha(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def test_greedy_default_is_left_out_and_sampling_is_a_new_run() -> None:
    spec = _spec()
    expected = _old_rule(spec)
    del expected["arq"]  # SAQ-IQL reads no ARQ setting
    assert spec.fingerprint() == _sha(expected)
    sampled = _spec(greedy=False)
    assert sampled.fingerprint() != spec.fingerprint()
    assert sampled.run_id == spec.run_id.replace("-K64", "-K64-sampled") != spec.run_id
    assert "sampled" in sampled.label and "sampled" not in spec.label
    assert ExperimentSpec.from_dict(json.loads(json.dumps(sampled.to_dict()))) == sampled
    with pytest.raises(DataError, match="greedy"):
        EvaluationSettings(greedy="no")  # type: ignore[arg-type]


def test_mode_averaging_default_is_left_out_and_switching_it_on_is_a_new_run() -> None:
    spec = _spec()
    assert "mode_averaging" not in json.dumps(_old_rule(spec)["evaluation"])
    averaged = _spec(mode_averaging=True)
    assert averaged.fingerprint() != spec.fingerprint()
    assert averaged.run_id == spec.run_id.replace("-K64", "-K64-mode")
    assert "mode-averaged" in averaged.label and "mode" not in spec.label
    assert ExperimentSpec.from_dict(json.loads(json.dumps(averaged.to_dict()))) == averaged
    data = DatasetSpec(name="pendulum-expert", kind="builtin", source="pendulum-expert", episodes=3)
    with pytest.raises(DataError, match="mode averaging acts on SAQ codes; BC has none"):
        ExperimentSpec(data, "BC", seed=1, steps=100, evaluation=EvaluationSettings(mode_averaging=True))
    with pytest.raises(DataError, match="mode_averaging"):
        EvaluationSettings(mode_averaging=1)  # type: ignore[arg-type]


def test_fingerprint_hashes_only_the_settings_the_algorithm_reads() -> None:
    data = DatasetSpec(name="pendulum-expert", kind="builtin", source="pendulum-expert", episodes=3)
    other_arq = ARQSettings(ode_steps=6, policy="awr")
    other_quantizer = QuantizerSettings(n_codes=16)
    for algo, reads_arq, reads_quantizer in (("CQL", False, False), ("SAQ-CQL", False, True), ("ARQ", True, False)):
        spec = ExperimentSpec(data, algo, steps=100)
        assert (dataclasses.replace(spec, arq=other_arq).fingerprint() != spec.fingerprint()) == reads_arq, algo
        assert (dataclasses.replace(spec, quantizer=other_quantizer).fingerprint()
                != spec.fingerprint()) == reads_quantizer, algo
    # ARQ's acting policy: the default (implicit) is left out, as results before it existed had it
    arq = ExperimentSpec(data, "ARQ", steps=100)
    expected = _old_rule(arq)
    del expected["quantizer"], expected["arq"]["policy"]
    assert arq.fingerprint() == _sha(expected)
    awr = dataclasses.replace(arq, arq=ARQSettings(policy="awr"))
    assert ExperimentSpec.from_dict(json.loads(json.dumps(awr.to_dict()))) == awr
    with pytest.raises(DataError, match="arq policy"):
        ARQSettings(policy="greedy")


def test_reward_scaling_default_is_left_out_and_scaling_is_a_new_run() -> None:
    spec = _spec()
    scaled = dataclasses.replace(spec, reward_scaling="returns")
    expected = _old_rule(spec)
    del expected["arq"]
    assert spec.fingerprint() == _sha(expected)  # results written before the field existed stay valid
    assert scaled.fingerprint() != spec.fingerprint()
    assert ExperimentSpec.from_dict(json.loads(json.dumps(scaled.to_dict()))) == scaled
    with pytest.raises(DataError, match="reward_scaling"):
        dataclasses.replace(spec, reward_scaling="minmax")


def test_env_kwargs_and_first_episodes_are_new_runs_and_round_trip(tmp_path: Path) -> None:
    """A D4RL file's env keyword arguments (the kitchen's noise) and a first-episodes cut change
    results: each is a new fingerprint, stored as plain JSON and read back equal; at their
    defaults they are left out, so results written before they existed stay valid."""
    path = d4rl_file(tmp_path / "pend.hdf5")
    plain = ExperimentSpec(DatasetSpec(name="pend", kind="d4rl", source=str(path), env_id="Pendulum-v1"), "BC",
                           steps=100)
    expected = _old_rule(plain)
    del expected["arq"], expected["quantizer"]
    assert plain.fingerprint() == _sha(expected)
    variants = [dataclasses.replace(plain.dataset, env_kwargs={"g": 9.81}),
                dataclasses.replace(plain.dataset, env_kwargs=[("g", 9.81), ("max_speed", 8)]),
                dataclasses.replace(plain.dataset, first_episodes=1)]
    prints = {plain.fingerprint()}
    for dataset in variants:
        spec = dataclasses.replace(plain, dataset=dataset)
        stored = json.loads(json.dumps(spec.to_dict()))
        assert ExperimentSpec.from_dict(stored) == spec and stored["dataset"]["env_kwargs"] == dict(dataset.env_kwargs)
        prints.add(spec.fingerprint())
    assert len(prints) == 4
    assert variants[1].env_kwargs == (("g", 9.81), ("max_speed", 8))  # sorted pairs, whatever order was given
    bad = [({"env_kwargs": {"g": [1.0]}}, "expected text, a number"), ({"env_kwargs": {"not a name": 1}}, "identifier"),
           ({"env_kwargs": {"g": float("nan")}}, "env_kwargs 'g'"), ({"env_kwargs": [("g", 1), ("g", 2)]}, "twice"),
           ({"first_episodes": 0}, "first_episodes"), ({"first_episodes": True}, "first_episodes")]
    for change, message in bad:
        with pytest.raises(DataError, match=message):
            dataclasses.replace(plain.dataset, **change)
    with pytest.raises(DataError, match="env_kwargs are for D4RL-style files"):
        DatasetSpec(name="m", kind="minari", source="mujoco/hopper/expert-v0", env_kwargs={"g": 1})
    with pytest.raises(DataError, match="built-in dataset's size"):
        DatasetSpec(name="b", kind="builtin", source="pendulum-expert", first_episodes=2)


def test_return_range_reward_scaler_is_the_authors_preprocessing() -> None:
    from saq_wrappers.integrations.d3rlpy.presets import return_range_reward_scaler

    scaler = return_range_reward_scaler([1725.0, 3668.0, 3000.0])
    # r * 1000 / (max - min return): the IQL / SAQ authors' locomotion scaling, fixed, not refitted
    np.testing.assert_allclose(scaler.transform_numpy(np.array([3.66])), [3.66 * 1000 / (3668.0 - 1725.0)])
    for bad in ([100.0], [5.0, 5.0], [1.0, float("nan")]):
        with pytest.raises(DataError, match="return-range reward scaling"):
            return_range_reward_scaler(bad)


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
