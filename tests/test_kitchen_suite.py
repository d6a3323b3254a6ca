"""The ``kitchen`` suite on a small file in the kitchen layout: its grid, names, budgets, reference
scores and refusals, offline, without gymnasium-robotics or the real file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.harness import real_suites
from benchmarks.harness.paper import paper_number
from benchmarks.harness.real_suites import (
    ROBOTICS_INSTALL,
    build_real_suite,
    fetch_and_check,
    kitchen_dataset,
    results_name,
)
from benchmarks.run import main
from saq_wrappers.app.datasets import load_dataset
from saq_wrappers.app.experiment import EvaluationSettings, ExperimentSpec
from saq_wrappers.errors import DataError
from saq_wrappers.integrations.gymnasium_robotics import KITCHEN_ENV_ID
from saq_wrappers.io import file_sha256
from d4rl_files import d4rl_file
from kitchen_files import LENGTHS, kitchen_file

#: The paper's kitchen-complete-v0 pairs (SAQ Table 5).
PAPER = {"BC": 39.13, "SAQ-BC": 90.33, "CQL": 14.0, "SAQ-CQL": 47.67, "IQL": 66.0, "SAQ-IQL": 76.76,
         "BRAC": 31.67, "SAQ-BRAC": 10.0}


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    return kitchen_file(tmp_path / "kitchen-complete-v0.hdf5")


@pytest.fixture()
def official(copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small file, taken for the official one (its hash in place of D4RL's)."""
    monkeypatch.setattr(real_suites, "KITCHEN_COMPLETE_SHA256", file_sha256(copy))
    return copy


def test_the_grid_budgets_and_reference_scores(official: Path) -> None:
    runs = build_real_suite("kitchen", data=[official])
    assert len(runs) == 9 * 3 and {r.seed for r in runs} == {0, 1, 2}
    assert {r.algo for r in runs} == {"BC", "CQL", "IQL", "TD3+BC", "SAQ-BC", "SAQ-CQL", "SAQ-IQL", "SAQ-BRAC", "ARQ"}
    for run in runs:
        ds = run.dataset
        assert (ds.name, ds.kind, ds.env_id) == ("kitchen-complete-v0", "d4rl", KITCHEN_ENV_ID)
        assert ds.source == str(official)
        assert (ds.ref_min, ds.ref_max, ds.paper_key, ds.first_episodes) == (0.0, 4.0, "kitchen-complete-v0", None)
        assert ds.env_kwargs == (("noise", "dataset"),)  # every result says which noise it used
        assert run.to_dict()["dataset"]["env_kwargs"] == {"noise": "dataset"}
        assert run.steps == 1_000_000 and run.reward_scaling == "none"  # kitchen rewards are the authors' as is
        assert run.evaluation == EvaluationSettings(episodes=10, curve_points=20, curve_episodes=10,
                                                    greedy=run.algo != "SAQ-IQL")
        assert "the official D4RL kitchen-complete-v0 file" in run.tag
        assert ExperimentSpec.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    arq = next(r.arq for r in runs if r.algo == "ARQ")
    assert (arq.fit_steps, arq.learning_rate, arq.alpha, arq.kth, arq.n_samples, arq.policy) == (
        300_000, 1e-4, 1.0, 9, 30, "awr")  # ARQ's kitchen column (Tables A.1-A.3)
    for algo, value in PAPER.items():
        assert paper_number("kitchen-complete-v0", algo) == (value, "SAQ Tab. 5")
    assert paper_number("kitchen-complete-v0", "TD3+BC") is None
    # ARQ's column is its policy's: the suite's AWR policy is Table A.4's ARQ + pi_phi (37), not s_psi (77)
    assert paper_number("kitchen-complete-v0", "ARQ", arq_policy=arq.policy) == (37.0, "ARQ Tab. A.4, ARQ + pi_phi")
    assert paper_number("kitchen-complete-v0", "ARQ") == (77.0, "ARQ Tab. A.4")
    assert paper_number("hopper-expert-v2", "ARQ", arq_policy="awr") == (111.0, "ARQ Tab. A.4, ARQ + pi_phi")
    # the normalized score is D4RL's: returns 0..4 -> 0..100
    loaded = load_dataset(runs[0].dataset)
    assert (loaded.random_return, loaded.expert_return) == (0.0, 4.0)
    assert len(loaded.transitions) == sum(LENGTHS) and loaded.transitions.n_episodes == len(LENGTHS)


def test_another_file_is_named_apart_and_gets_no_paper_numbers(copy: Path) -> None:
    ds = kitchen_dataset(copy)
    digest = file_sha256(copy)
    assert ds.name == f"kitchen-complete-v0-{digest[:8]}" and ds.paper_key is None
    run = build_real_suite("kitchen", data=[copy], algos=["BC"], seeds=[0])[0]
    assert "not the official D4RL file" in run.tag and digest[:16] in run.tag


def test_noise_first_episodes_and_folder_names(official: Path) -> None:
    assert results_name("kitchen") == "kitchen"
    assert results_name("kitchen", 0.01, "v1", [5, 10]) == "kitchen-noise-v1-first5-first10-x0.01"
    v1 = build_real_suite("kitchen", data=[official], algos=["BC"], seeds=[0], noise="v1")[0]
    default = build_real_suite("kitchen", data=[official], algos=["BC"], seeds=[0])[0]
    assert v1.dataset.name == "kitchen-complete-v0-noise-v1" and v1.dataset.env_kwargs == (("noise", "v1"),)
    assert v1.fingerprint() != default.fingerprint()

    cut = build_real_suite("kitchen", data=[official], algos=["SAQ-BC", "BC"], seeds=[0], first_episodes=[2, 3])
    assert [r.run_id for r in cut] == ["kitchen-complete-v0-first2__SAQ-BC-K64-q500000__seed0",
                                       "kitchen-complete-v0-first2__BC__seed0",
                                       "kitchen-complete-v0-first3__SAQ-BC-K64-q500000__seed0",
                                       "kitchen-complete-v0-first3__BC__seed0"]
    assert all(r.dataset.paper_key is None for r in cut)  # the paper trained on all 19
    two = load_dataset(cut[0].dataset).transitions
    assert two.n_episodes == 2 and len(two) == LENGTHS[0] + LENGTHS[1]
    with pytest.raises(DataError, match="--first-episodes 5, but the file holds 4 episodes"):
        build_real_suite("kitchen", data=[official], first_episodes=[5])


def test_refusals(tmp_path: Path, copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="pass one file with --data PATH, got 0"):
        build_real_suite("kitchen")
    with pytest.raises(DataError, match="got 2"):
        build_real_suite("kitchen", data=[copy, copy])
    with pytest.raises(DataError, match="does not exist"):
        build_real_suite("kitchen", data=[tmp_path / "nothing.hdf5"])
    with pytest.raises(DataError, match="not D4RL's kitchen file: expected 60-D observations"):
        build_real_suite("kitchen", data=[d4rl_file(tmp_path / "pendulum.hdf5")])
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable hdf5 file"):
        build_real_suite("kitchen", data=[tmp_path / "text.hdf5"])
    with pytest.raises(DataError, match="noise 'loud' unknown"):
        build_real_suite("kitchen", data=[copy], noise="loud")
    with pytest.raises(DataError, match="for --suite kitchen, not 'd4rl-locomotion'"):
        build_real_suite("d4rl-locomotion", first_episodes=[5])

    assert main(["--suite", "kitchen", "--data", str(copy), "--first-episodes", "2,x", "--list"]) == 2
    assert "expected distinct whole numbers" in capsys.readouterr().err
    assert main(["--suite", "small", "--kitchen-noise", "v1", "--list"]) == 2
    assert "--kitchen-noise: for the real-benchmark suites" in capsys.readouterr().err
    assert main(["--suite", "kitchen", "--data", str(copy), "--algos", "BC", "--seeds", "0,1", "--list"]) == 0
    listed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [f"{kitchen_dataset(copy).name}__BC__seed{s}" for s in (0, 1)]


def test_without_gymnasium_robotics_the_harness_names_the_install_line(
    official: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # not importable, even where installed
    run = build_real_suite("kitchen", data=[official], algos=["BC"], seeds=[0])[0]
    with pytest.raises(DataError) as raised:
        fetch_and_check([run.dataset])
    message = str(raised.value)
    assert ROBOTICS_INSTALL in message and "second virtualenv" in message and "--suite kitchen" in message
    code = main(["--suite", "kitchen", "--data", str(official), "--algos", "BC", "--seeds", "0", "--backend",
                 "serial", "--out", str(tmp_path / "out")])
    assert code == 2 and ROBOTICS_INSTALL in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()  # refused before any training


def test_the_check_line_says_official_and_noise(official: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the env can be made (here a stand-in registered under the kitchen id), the line
    names the file's provenance and the noise setting."""
    import gymnasium as gym

    made: list[dict[str, object]] = []
    monkeypatch.setattr(real_suites, "require_gymnasium_robotics", lambda *args, **kwargs: None)
    monkeypatch.setattr(gym, "make", lambda env_id, **kwargs: made.append(kwargs) or gym.Env())
    ds = kitchen_dataset(official, noise="none")
    assert fetch_and_check([ds]) == [
        f"found kitchen-complete-v0-noise-none: {official} (the official D4RL kitchen-complete-v0 file; env "
        f"{KITCHEN_ENV_ID}, observation noise 'none' (robot 0, objects 0), reference returns 0 / 4)"]
    assert made == [{"noise": "none"}]


def test_budget_overrides_reach_every_run(official: Path) -> None:
    """Measuring where the kitchen's curves level off needs the VQ-VAE's, the score model's and
    the curve's budgets apart from the authors' (1M updates, 500k VQ-VAE updates, 20 points)."""
    runs = build_real_suite("kitchen", data=[official], steps=50_000, quantizer_steps=5000, score_steps=7000,
                            curve_points=10)
    assert {(r.steps, r.quantizer.steps, r.arq.fit_steps, r.evaluation.curve_points) for r in runs} == {
        (50_000, 5000, 7000, 10)}
    untouched = build_real_suite("kitchen", data=[official])[0]
    assert (untouched.quantizer.steps, untouched.arq.fit_steps, untouched.evaluation.curve_points) == (
        500_000, 300_000, 20)


@pytest.mark.parametrize("flag", ["--quantizer-steps", "--score-steps", "--curve-points"])
def test_budget_override_flags_are_refused_by_the_generated_suites(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--suite", "tiny", flag, "5", "--list"]) == 2
    assert flag in capsys.readouterr().err
