"""Runs that differ only in how they act share one training (``run_experiment(..., twins=...)``
and the harness's :func:`~benchmarks.harness.backends.shared_trainings`).

What sharing must not change: a twin's record is the record it gets alone, the main run's
record is the one it gets alone, and that stays true when a twin's evaluation draws from the
global random generators the training samples its minibatches from.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks.harness.backends import run_grid, shared_trainings
from benchmarks.harness.runner import result_path
from benchmarks.harness.spec import build_suite, with_mode_averaged_twins
from saq_wrappers.app import pipeline
from saq_wrappers.app.experiment import EvaluationSettings, ExperimentSpec
from saq_wrappers.app.pipeline import ArtifactStore, run_experiment
from saq_wrappers.errors import DataError


def tiny(algo: str, steps: int = 150) -> ExperimentSpec:
    (spec,) = build_suite("tiny", Path("."), algos=[algo], steps=steps)
    return spec


def acting(spec: ExperimentSpec, **changes: Any) -> ExperimentSpec:
    return dataclasses.replace(spec, evaluation=dataclasses.replace(spec.evaluation, **changes))


def outcome_of(record: dict[str, Any]) -> tuple[Any, ...]:
    """What a run measured: final returns and the curve's scores (timings differ run to run)."""
    return (record["score"], tuple(record["evaluation"]["returns"]),
            tuple(point["score"] for point in record["training"]["curve"]))


def test_twins_records_are_the_records_they_get_alone(builtin_data: Path, tmp_path: Path) -> None:
    plain = tiny("SAQ-BC")
    twin = acting(plain, mode_averaging=True)
    store = ArtifactStore(tmp_path / "artifacts")
    shared = run_experiment(plain, store, twins=[twin])
    (twin_record,) = shared.twin_records
    alone_plain = run_experiment(plain, store).record
    alone_twin = run_experiment(twin, store).record

    assert outcome_of(shared.record) == outcome_of(alone_plain)
    assert outcome_of(twin_record) == outcome_of(alone_twin)
    assert outcome_of(twin_record) != outcome_of(shared.record), "the twin acts otherwise: some return differs"
    assert (twin_record["run_id"], twin_record["fingerprint"]) == (twin.run_id, twin.fingerprint())
    assert twin_record["shared_training"] == plain.run_id and "shared_training" not in shared.record
    assert [p["step"] for p in twin_record["training"]["curve"]] == [p["step"] for p in shared.record["training"]["curve"]]


def test_a_twins_draws_do_not_move_the_training(builtin_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampled twin draws from torch's global generator, and so does CQL's training (its
    policy's actions for the penalty). Make every sampled evaluation draw from all three global
    generators: the greedy main run must still train and score exactly as it does alone."""
    real = pipeline.evaluate_algo

    def drawing(*args: Any, **kwargs: Any) -> Any:
        if not kwargs["greedy"]:
            np.random.random(7), torch.rand(7), random.random()
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "evaluate_algo", drawing)
    plain = tiny("CQL")
    sampled = acting(plain, greedy=False)
    store = ArtifactStore(tmp_path / "artifacts")
    shared = run_experiment(plain, store, twins=[sampled])
    alone = run_experiment(plain, store).record
    assert outcome_of(shared.record) == outcome_of(alone)


@pytest.mark.parametrize("change", [dict(seed=1), dict(steps=100), dict(algo="SAQ-CQL"),
                                    dict(evaluation=EvaluationSettings(3, 2, 1))])
def test_a_twin_that_trains_otherwise_is_refused(builtin_data: Path, tmp_path: Path, change: dict[str, Any]) -> None:
    plain = tiny("SAQ-BC")
    with pytest.raises(DataError, match="trains differently"):
        run_experiment(plain, ArtifactStore(tmp_path), twins=[dataclasses.replace(plain, **change)])
    with pytest.raises(DataError, match="act differently"):
        run_experiment(plain, ArtifactStore(tmp_path), twins=[plain])


def test_the_harness_trains_a_run_and_its_twin_once(builtin_data: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    trainings: list[int] = []
    real = pipeline.train_with_budget

    def counting(*args: Any, **kwargs: Any) -> Any:
        trainings.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_with_budget", counting)
    runs = with_mode_averaged_twins(build_suite("tiny", Path("."), algos=["BC", "SAQ-BC"], steps=150))
    assert [(r.algo, r.evaluation.mode_averaging) for r in runs] == [("BC", False), ("SAQ-BC", False), ("SAQ-BC", True)]
    grouped = shared_trainings(runs)
    assert [(r.run_id, [t.run_id for t in twins]) for r, twins in grouped] == [
        (runs[0].run_id, []), (runs[1].run_id, [runs[2].run_id])]

    out = tmp_path / "bench"
    summary = run_grid(runs, out, backend="serial", workers=1, log=lambda _: None)
    assert sorted(summary.executed) == sorted(r.run_id for r in runs) and not summary.failed
    assert len(trainings) == 2, "BC once, SAQ-BC once for the plain run and its twin"
    assert all(result_path(out, r).exists() for r in runs)
