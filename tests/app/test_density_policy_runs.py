"""SAQ-BC with the action-density policy as a run of the pipeline and the harness (issue 37)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness.backends import run_grid
from benchmarks.harness.spec import (
    build_suite,
    density_variant_references,
    with_density_policy_variants,
    with_mode_averaged_twins,
)
from saq_wrappers.app.experiment import ExperimentSpec
from saq_wrappers.app.pipeline import ArtifactStore, run_experiment
from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy import DensityBC, DiscreteIQL, observes_candidates


def tiny_saq_bc() -> ExperimentSpec:
    (spec,) = build_suite("tiny", Path("."), algos=["SAQ-BC"], steps=150)
    return spec


def test_the_density_policy_is_a_saq_bc_variant_with_its_own_name() -> None:
    plain = tiny_saq_bc()
    density = dataclasses.replace(plain, code_policy="density")
    assert density.run_id == plain.run_id.replace("-q200__", "-q200-density__")
    assert density.label == "SAQ-BC (K=8, 200 quantizer updates, density policy)"
    assert density.fingerprint() != plain.fingerprint()
    # runs written before the setting existed keep their fingerprint
    old_record = plain.to_dict()
    old_record.pop("code_policy")
    assert ExperimentSpec.from_dict(old_record).fingerprint() == plain.fingerprint()
    assert ExperimentSpec.from_dict(density.to_dict()) == density
    with pytest.raises(DataError, match="SAQ-BC, SAQ-IQL, SAQ-BRAC, not SAQ-CQL"):
        dataclasses.replace(plain, algo="SAQ-CQL", code_policy="density")
    with pytest.raises(DataError, match="code_policy"):
        dataclasses.replace(plain, code_policy="mixture")


def test_a_density_run_trains_on_candidate_observations_and_acts_through_them(builtin_data: Path, tmp_path: Path) -> None:
    density = dataclasses.replace(tiny_saq_bc(), code_policy="density")
    twin = dataclasses.replace(density, evaluation=dataclasses.replace(density.evaluation, mode_averaging=True))
    outcome = run_experiment(density, ArtifactStore(tmp_path), twins=[twin])
    quantizer = outcome.action_set
    assert isinstance(outcome.algo, DensityBC)
    assert tuple(outcome.algo.observation_shape) == (3 + quantizer.n * 1,)  # Pendulum: 3-D state, 1-D action
    for record in (outcome.record, *outcome.twin_records):
        assert np.isfinite(record["score"]) and len(record["evaluation"]["returns"]) == density.evaluation.episodes


def test_the_harness_runs_the_variant_beside_saq_bc_and_reports_it_against_it(builtin_data: Path, tmp_path: Path) -> None:
    runs = with_mode_averaged_twins(with_density_policy_variants(
        build_suite("tiny", Path("."), algos=["BC", "SAQ-BC"], steps=150)))
    assert [(r.algo, r.code_policy, r.evaluation.mode_averaging) for r in runs] == [
        ("BC", "index", False), ("SAQ-BC", "index", False), ("SAQ-BC", "index", True),
        ("SAQ-BC", "density", False), ("SAQ-BC", "density", True)]
    assert density_variant_references(runs) == {runs[1].label}
    summary = run_grid(runs, tmp_path / "bench", backend="serial", workers=1, log=lambda _: None)
    assert sorted(summary.executed) == sorted(r.run_id for r in runs) and not summary.failed


def test_saq_iql_runs_with_the_density_policy_and_the_harness_adds_its_variant(builtin_data: Path, tmp_path: Path) -> None:
    (plain,) = build_suite("tiny", Path("."), algos=["SAQ-IQL"], steps=100)
    runs = with_density_policy_variants(build_suite("tiny", Path("."), algos=["SAQ-CQL", "SAQ-IQL"], steps=100))
    assert [(r.algo, r.code_policy) for r in runs] == [("SAQ-CQL", "index"), ("SAQ-IQL", "index"),
                                                       ("SAQ-IQL", "density")]
    assert density_variant_references(runs) == {plain.label}
    outcome = run_experiment(runs[-1], ArtifactStore(tmp_path))
    assert isinstance(outcome.algo, DiscreteIQL) and observes_candidates(outcome.algo)
    assert tuple(outcome.algo.observation_shape) == (3 + outcome.action_set.n,)  # Pendulum: 3-D state, 1-D action
    assert np.isfinite(outcome.record["score"])
    assert outcome.record["spec"]["code_policy"] == "density"


def test_saq_bc_fitted_to_decoded_actions_is_a_variant_of_its_own_that_trains_and_acts(builtin_data: Path,
                                                                                         tmp_path: Path) -> None:
    """``density-actions``: SAQ-BC only, named apart from ``density``, added by the harness beside
    SAQ-BC (not beside SAQ-IQL), and run by the pipeline with ``likelihood="actions"``."""
    plain = tiny_saq_bc()
    fitted = dataclasses.replace(plain, code_policy="density-actions")
    assert fitted.run_id == plain.run_id.replace("-q200__", "-q200-density-actions__")
    assert fitted.label == "SAQ-BC (K=8, 200 quantizer updates, density-actions policy)"
    assert fitted.fingerprint() != dataclasses.replace(plain, code_policy="density").fingerprint()
    with pytest.raises(DataError, match="built for SAQ-BC, not SAQ-IQL"):
        dataclasses.replace(plain, algo="SAQ-IQL", code_policy="density-actions")
    runs = with_density_policy_variants(build_suite("tiny", Path("."), algos=["SAQ-BC", "SAQ-IQL"], steps=150),
                                        ("density", "density-actions"))
    assert [(r.algo, r.code_policy) for r in runs] == [
        ("SAQ-BC", "index"), ("SAQ-BC", "density"), ("SAQ-BC", "density-actions"),
        ("SAQ-IQL", "index"), ("SAQ-IQL", "density")]
    assert density_variant_references(runs[2:3] + runs[:1]) == {plain.label}
    outcome = run_experiment(fitted, ArtifactStore(tmp_path))
    assert isinstance(outcome.algo, DensityBC) and outcome.algo.config.likelihood == "actions"
    assert np.isfinite(outcome.record["score"]) and outcome.record["spec"]["code_policy"] == "density-actions"
