"""The ``noise-study`` suite (data size against action noise): its grid next to the standard
suite's, its prepare plan, what ``prepare`` asks the generator for, and its results folder. No
training and no zoo agent: ``prepare``'s generator is replaced by a tiny stand-in."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run as bench_run
from benchmarks.harness.data import prepare, zoo_expert
from benchmarks.harness.runner import reuse_results
from benchmarks.harness.spec import build_suite, prepare_plan, suite_datasets, with_mode_averaged_twins
from saq_wrappers.errors import DataError
from saq_wrappers.integrations.minari import minari_info

DATA = Path("/data")
NAMES = {f"{env}-{kind}" for env in ("hopper", "walker2d")
         for kind in ("expert", "expert50", "expert250", "expertmean10")}


def _settings(run: Any) -> tuple:
    """What a run trains and evaluates with, beside its data."""
    return (run.steps, run.hidden, run.quantizer, run.evaluation, run.reward_scaling, run.time_budget)


def test_noise_study_grid_is_the_standard_budget_on_data_of_its_own() -> None:
    study = build_suite("noise-study", DATA)
    standard = build_suite("standard", DATA)
    assert {r.dataset.name for r in study} == NAMES
    assert {r.algo for r in study} == {"BC", "SAQ-BC", "IQL", "SAQ-IQL"}
    assert {r.seed for r in study} == {0, 1, 2}
    assert len({r.run_id for r in study}) == len(study) == 8 * 5 * 3  # SAQ-BC greedy and sampled
    # the 10 sampled episodes are the standard suite's hopper-/walker2d-expert, so those runs are the
    # standard suite's (same run ids and fingerprints: their results can be copied, not trained
    # again); the other datasets live in a Minari namespace of their own
    by_id = {r.run_id: r.fingerprint() for r in standard}
    on_standard_data = [r for r in study if r.dataset.name in ("hopper-expert", "walker2d-expert")]
    assert len(on_standard_data) == 2 * 5 * 3
    for run in on_standard_data:
        if run.algo == "SAQ-BC" and not run.evaluation.greedy:
            assert run.run_id not in by_id  # the study's own acting contrast
        else:
            assert by_id[run.run_id] == run.fingerprint(), run.run_id
    others = [r for r in study if r not in on_standard_data]
    assert {Path(r.dataset.source).parent for r in others} == {DATA / "minari" / "saqbench-noise"}
    assert not {r.run_id for r in others} & set(by_id)
    # per algorithm, exactly the standard suite's settings: budget, networks, quantizer, acting
    # (SAQ-IQL sampled), reward scaling (the IQL pair), evaluation episodes and curve
    on_hopper = {r.algo: _settings(r) for r in standard if r.dataset.name == "hopper-expert"}
    for run in study:
        sampled_saq_bc = run.algo == "SAQ-BC" and not run.evaluation.greedy
        expected = on_hopper[run.algo]
        if sampled_saq_bc:  # SAQ-BC's sampled twin: the standard SAQ-BC, acting by sampling
            expected = expected[:3] + (dataclasses.replace(expected[3], greedy=False),) + expected[4:]
        assert _settings(run) == expected, run.run_id
    assert {r.algo for r in study if not r.evaluation.greedy} == {"SAQ-IQL", "SAQ-BC"}
    # each sampled SAQ-BC run trains as its greedy run does: one training, two evaluations
    sampled = [r for r in study if r.algo == "SAQ-BC" and not r.evaluation.greedy]
    greedy = {r.training_spec().fingerprint() for r in study if r.algo == "SAQ-BC" and r.evaluation.greedy}
    assert len(sampled) == 8 * 3 and {r.training_spec().fingerprint() for r in sampled} == greedy
    assert {r.algo for r in study if r.reward_scaling == "returns"} == {"IQL", "SAQ-IQL"}
    assert {r.dataset.paper_key for r in study} == {"hopper-expert-v2", "walker2d-expert-v2"}
    # --mode-averaging adds one twin per SAQ run
    assert len(with_mode_averaged_twins(study)) == len(study) + 8 * 3 * 3


def test_noise_study_prepare_plan() -> None:
    plan = prepare_plan("noise-study")
    assert (plan["lift_demos"], plan["lift_file"]) == (0, None)
    items = {item["name"]: item for item in plan["minari"]}
    assert set(items) == NAMES
    for env, title in (("hopper", "Hopper"), ("walker2d", "Walker2d")):
        got = {kind: (items[f"{env}-{kind}"]["recipe"], items[f"{env}-{kind}"]["n_episodes"],
                      items[f"{env}-{kind}"]["n_steps"])
               for kind in ("expert", "expert50", "expert250", "expertmean10")}
        assert got == {"expert": ("expert", 10, None), "expert50": ("expert", 50, None),
                       "expert250": ("expert", 250, None), "expertmean10": ("expert-mean", 10, None)}
        for kind in got:
            item = items[f"{env}-{kind}"]
            assert (item["env_id"], item["model"], item["medium_model"]) == (
                f"{title}-v5", f"tqc/{title}-v3/model.zip", None)
            namespace = "saqbench-std" if kind == "expert" else "saqbench-noise"
            assert item["dataset_id"] == f"{namespace}/{env}-{kind}-v0"
            # one reference measurement per env, taken by a dataset listed before it
            assert item["ref_scores_from"] == (None if kind == "expert" else f"{env}-expert")
        # the standard suite's expert agent, for the diagnostics that load it
        assert zoo_expert("noise-study", f"{env}-expert250", Path("zoo")) == zoo_expert(
            "standard", f"{env}-expert", Path("zoo"))
    names = [item["name"] for item in plan["minari"]]
    assert all(names.index(i["ref_scores_from"]) < names.index(i["name"]) for i in plan["minari"]
               if i["ref_scores_from"])
    # the datasets build_suite reads are the ones prepare writes
    assert {str(Path(ds.source).relative_to(DATA / "minari")) for ds in suite_datasets("noise-study", DATA)} == {
        i["dataset_id"] for i in plan["minari"]}


@pytest.fixture()
def recorded_prepare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[list[dict[str, Any]], Path]:
    """``prepare``'s generator replaced: every call is recorded and writes a 3-step random
    Pendulum dataset under the asked id, with the asked reference scores (else -7 and 11)."""
    import saq_wrappers.app.generate as generate

    real = generate.generate_dataset
    calls: list[dict[str, Any]] = []

    def stand_in(model: str, env_id: str, dataset_id: str, recipe: str, **kwargs: Any) -> Path:
        calls.append(dict(model=model, env_id=env_id, dataset_id=dataset_id, recipe=recipe, **kwargs))
        ref_min, ref_max = kwargs["ref_min_score"], kwargs["ref_max_score"]
        return real(None, "Pendulum-v1", dataset_id, "random", n_steps=3, root=kwargs["root"], progress=False,
                    ref_min_score=-7.0 if ref_min is None else ref_min,
                    ref_max_score=11.0 if ref_max is None else ref_max)

    monkeypatch.setattr(generate, "generate_dataset", stand_in)
    zoo = tmp_path / "zoo"
    for algo in ("tqc", "sac"):
        for title in ("Hopper", "Walker2d", "HalfCheetah"):
            (zoo / algo / f"{title}-v3").mkdir(parents=True)
            (zoo / algo / f"{title}-v3" / "model.zip").write_bytes(b"")
    return calls, zoo


def test_prepare_asks_for_the_standard_recipe_and_shares_the_reference_scores(
        recorded_prepare: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    calls, zoo = recorded_prepare
    lines = prepare("noise-study", tmp_path / "noise", zoo, progress=False, agent_seed="model")
    assert len(lines) == len(calls) == 8 and all(line.startswith("wrote") for line in lines)
    study = {Path(c["dataset_id"]).name.removesuffix("-v0"): c for c in calls}
    for env in ("hopper", "walker2d"):
        first = study[f"{env}-expert"]
        assert (first["ref_min_score"], first["ref_max_score"]) == (None, None)  # measured, as the standard's
        for kind in ("expert50", "expert250", "expertmean10"):
            call = study[f"{env}-{kind}"]
            assert (call["ref_min_score"], call["ref_max_score"]) == (-7.0, 11.0)
        written = {minari_info(tmp_path / "noise" / "minari" / c["dataset_id"]).ref_max_score
                   for c in calls if env in c["dataset_id"]}
        assert written == {11.0}
    assert all(c["agent_seed"] == "model" and c["medium_model"] is None for c in calls)
    assert {c["recipe"] for c in calls} == {"expert", "expert-mean"}

    # the 10 sampled episodes are the standard suite's hopper-/walker2d-expert call, id included
    (tmp_path / "std").mkdir()
    (tmp_path / "std" / "lift_mm_30.hdf5").write_bytes(b"")  # kept: no robosuite here
    calls.clear()
    prepare("standard", tmp_path / "std", zoo, progress=False, agent_seed="model")
    standard = {Path(c["dataset_id"]).name.removesuffix("-v0"): c for c in calls}
    for env in ("hopper", "walker2d"):
        ours, theirs = dict(study[f"{env}-expert"]), dict(standard[f"{env}-expert"])
        ours.pop("root"), theirs.pop("root")
        assert ours == theirs
    # in a --data-dir where the standard suite's prepare ran, the noise study keeps its datasets
    calls.clear()
    prepare("noise-study", tmp_path / "std", zoo, progress=False, agent_seed="model")
    assert len(calls) == 6 and not any(c["dataset_id"].startswith("saqbench-std/") for c in calls)
    # a second prepare keeps all, generating nothing
    calls.clear()
    assert all(line.startswith("kept") for line in prepare("noise-study", tmp_path / "noise", zoo, progress=False))
    assert calls == []
    with pytest.raises(DataError, match="no --zoo"):
        prepare("noise-study", tmp_path / "empty", None, progress=False)


def test_noise_study_reports_into_a_folder_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Not the standard suite's folder (its family shares that one), with the mode-averaged
    twins' report beside its own."""
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path / "results")
    data = ["--data-dir", str(tmp_path / "data")]
    assert bench_run.main(["--suite", "noise-study", "--report-only", *data]) == 0
    assert bench_run.main(["--suite", "noise-study", "--report-only", "--mode-averaging", *data]) == 0
    assert (tmp_path / "results" / "noise-study" / "results.md").is_file()
    assert (tmp_path / "results" / "noise-study" / "mode-averaging" / "results.md").is_file()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["noise-study"]


def test_a_subset_reports_where_report_dir_says(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--report-dir``: a subset of a grid (one algorithm's density-policy runs) reports into its
    own folder and leaves the default folder's report as it was."""
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path / "results")
    data = ["--data-dir", str(tmp_path / "data")]
    base = ["--suite", "noise-study", "--report-only", "--density-policy", *data]
    assert bench_run.main([*base, "--algos", "SAQ-BC"]) == 0
    default = tmp_path / "results" / "noise-study" / "density-policy" / "results.md"
    before = default.read_text()
    assert bench_run.main([*base, "--algos", "SAQ-IQL", "--report-dir", "density-policy/saq-iql"]) == 0
    assert default.read_text() == before
    subset = (tmp_path / "results" / "noise-study" / "density-policy" / "saq-iql" / "results.md").read_text()
    assert "--algos SAQ-IQL" in subset and "--algos SAQ-IQL" not in before

def test_reused_runs_are_copied_only_when_they_are_the_same_run(tmp_path: Path) -> None:
    """``--reuse-runs``: the standard suite's results of the shared 10-episode datasets fill the
    study's grid; a file of the same name made with other settings, or a run the study already
    finished, is left as it is."""
    study = [r for r in build_suite("noise-study", DATA) if r.dataset.name == "hopper-expert" and r.seed == 0]
    bc, iql, saq_bc = (next(r for r in study if r.algo == algo) for algo in ("BC", "IQL", "SAQ-BC"))
    source, out = tmp_path / "standard", tmp_path / "noise-study"
    for folder in (source / "runs", out / "runs"):
        folder.mkdir(parents=True)

    def write(folder: Path, run: Any, fingerprint: str, score: float) -> None:
        (folder / "runs" / f"{run.run_id}.json").write_text(
            json.dumps({"run_id": run.run_id, "fingerprint": fingerprint, "score": score}))

    write(source, bc, bc.fingerprint(), 70.9)
    write(source, iql, "other settings", 1.0)
    write(source, saq_bc, saq_bc.fingerprint(), 40.0)
    write(out, saq_bc, saq_bc.fingerprint(), 41.0)
    assert reuse_results(study, out, source) == [bc.run_id]
    assert (out / "runs" / f"{bc.run_id}.json").read_bytes() == (source / "runs" / f"{bc.run_id}.json").read_bytes()
    assert not (out / "runs" / f"{iql.run_id}.json").exists()
    assert json.loads((out / "runs" / f"{saq_bc.run_id}.json").read_text())["score"] == 41.0
    assert reuse_results(study, out, source) == []  # a second time: nothing left to copy


def test_only_keeps_the_runs_whose_id_matches_and_refuses_a_pattern_that_matches_none(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--only``: one variant of the quantizer study (which ``--algos`` cannot select, since the
    study's budgets are variants of one algorithm), with its mode-averaged twin, and nothing else."""
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path / "results")
    base = ["--suite", "quantizer-study", "--data-dir", str(tmp_path / "data"), "--density-policy",
            "--mode-averaging", "--list"]
    assert bench_run.main([*base, "--only", "*SAQ-BC-K64-q20000-density*", "--only", "*__SAQ-CQL-K64__seed0"]) == 0
    ids = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if "__" in line]
    assert ids == [f"hopper-medium-expert__SAQ-BC-K64-q20000-density{m}__seed{s}" for s in (0, 1, 2)
                   for m in ("", "-mode")] + ["hopper-medium-expert__SAQ-CQL-K64__seed0"]
    assert bench_run.main([*base, "--only", "*SAQ-BC-K64-q2000-density*"]) == 2
    assert "no run of this grid matches --only '*SAQ-BC-K64-q2000-density*'" in capsys.readouterr().err
