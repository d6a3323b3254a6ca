"""The benchmark harness (``python -m benchmarks.run``) on tiny grids: outputs, resumption, backends.

Every grid here trains a few hundred updates of small networks on the built-in Pendulum expert
data (10 episodes), so the file runs in about a minute single-threaded.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.harness.backends import plan, run_grid  # noqa: E402
from benchmarks.harness.paper import paper_number  # noqa: E402
from benchmarks.harness.ledger import GridLedger, read_ledger, summarize_ledger  # noqa: E402
from benchmarks.harness.report import write_report  # noqa: E402
from benchmarks.harness.runner import machine, result_path  # noqa: E402
from benchmarks.harness.spec import DatasetSpec, RunSpec, build_suite  # noqa: E402
from benchmarks.run import main  # noqa: E402
from saq_wrappers.errors import CheckpointError, DataError  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_grid(algos: list[str], steps: int = 200) -> list[RunSpec]:
    return build_suite("tiny", Path("."), algos=algos, steps=steps)


def quiet(_: str) -> None:
    pass


def test_tiny_grid_writes_json_table_plot_and_resumes(builtin_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    runs = tiny_grid(["BC", "SAQ-BC"])
    first = run_grid(runs, out, backend="local", workers=2, log=quiet)
    assert sorted(first.executed) == sorted(r.run_id for r in runs) and not first.failed
    report = write_report(runs, out, "tiny", "test")

    document = json.loads((out / "results.json").read_text())
    assert {r["run_id"] for r in document["runs"]} == {r.run_id for r in runs}
    for run in document["runs"]:
        assert run["training"]["steps"] == 200
        assert len(run["evaluation"]["returns"]) == 2  # the tiny suite's eval episodes
        assert run["training"]["curve"], "a learning curve point per evaluation"
        assert run["metric"] == "normalized" and isinstance(run["score"], float)
    saq = next(r for r in document["runs"] if r["algo"] == "SAQ-BC")
    assert saq["quantizer"]["n_codes"] == 8 and saq["quantizer"]["codes_used"] >= 1
    table = (out / "results.md").read_text()
    assert "| pendulum-expert |" in table and "BC" in table and "SAQ-BC (K=8, 200 quantizer updates)" in table
    assert "± 0.0" in table  # one seed: std 0
    assert (out / "learning_curves.png").read_bytes()[:8] == PNG_MAGIC
    assert report["plots"][:2] == ["learning_curves.png", "wall_clock_curves.png"]

    # resume: nothing is recomputed, no result file is touched
    mtimes = {r.run_id: result_path(out, r).stat().st_mtime_ns for r in runs}
    second = run_grid(runs, out, backend="local", workers=2, log=quiet)
    assert second.executed == [] and sorted(second.skipped) == sorted(mtimes)
    assert {r.run_id: result_path(out, r).stat().st_mtime_ns for r in runs} == mtimes

    # an interrupted run: its result never appeared, a temporary file was left behind;
    # only that run is repeated, the stray file is cleaned up
    lost, kept = runs
    result_path(out, lost).unlink()
    stray = out / "runs" / f".{lost.run_id}.json.abc123.tmp"
    stray.write_text('{"partial": ')
    third = run_grid(runs, out, backend="serial", workers=1, log=quiet)
    assert third.executed == [lost.run_id] and third.skipped == [kept.run_id]
    assert result_path(out, kept).stat().st_mtime_ns == mtimes[kept.run_id]
    assert not stray.exists()

    # the same run ids with other settings are refused, not mixed into the table
    changed = [dataclasses.replace(r, steps=300) for r in runs]
    with pytest.raises(DataError, match="other settings"):
        plan(changed, out)


def test_arq_and_penalty_tracking_in_process(builtin_data: Path, tmp_path: Path) -> None:
    """ARQ (sampler + candidate table artifacts) and the CQL penalty ablation through the CLI."""
    out = tmp_path / "bench"
    code = main(["--suite", "tiny", "--algos", "ARQ", "--steps", "100", "--backend", "serial",
                 "--out", str(out)])
    assert code == 0
    arq = json.loads(next((out / "runs").glob("*ARQ*.json")).read_text())
    assert arq["training"]["steps"] == 100
    assert 0.0 < arq["arq"]["valid_fraction"] <= 1.0
    assert arq["arq"]["table_states"] >= arq["data"]["transitions"]  # s and s' rows
    assert (out / "artifacts" / "arq").is_dir()
    # the implicit policy (eq. 6) trains no actor; policy="awr" trains ARQ's AWR policy and acts by it
    assert "actor_loss" not in arq["training"]["last_metrics"]
    awr_runs = [dataclasses.replace(r, arq=dataclasses.replace(r.arq, policy="awr")) for r in tiny_grid(["ARQ"], steps=100)]
    assert not run_grid(awr_runs, tmp_path / "awr", backend="serial", log=quiet).failed
    awr = json.loads(result_path(tmp_path / "awr", awr_runs[0]).read_text())
    assert "actor_loss" in awr["training"]["last_metrics"] and awr["spec"]["arq"]["policy"] == "awr"
    # a reward-scaled run trains on r * 1000 / (max - min return) and records the scale it used
    scaled_runs = [dataclasses.replace(r, reward_scaling="returns") for r in tiny_grid(["IQL"], steps=50)]
    assert not run_grid(scaled_runs, tmp_path / "scaled", backend="serial", log=quiet).failed
    scaled = json.loads(result_path(tmp_path / "scaled", scaled_runs[0]).read_text())
    assert scaled["reward_scaler"]["multiplier"] == 1000.0
    assert scaled["reward_scaler"]["return_max"] > scaled["reward_scaler"]["return_min"]

    penalty_runs = [dataclasses.replace(r, track_penalty=True,
                                        evaluation=dataclasses.replace(r.evaluation, curve_points=2))
                    for r in tiny_grid(["CQL", "SAQ-CQL"], steps=100)]
    summary = run_grid(penalty_runs, out, backend="serial", log=quiet)
    assert not summary.failed
    report = write_report(penalty_runs, out, "tiny", "test")
    assert "penalty_gap.png" in report["plots"]
    results = {json.loads(result_path(out, r).read_text())["algo"]: json.loads(result_path(out, r).read_text())
               for r in penalty_runs}
    assert {"sampled_penalty", "reference_penalty"} <= set(results["CQL"]["penalty"][0])
    assert "exact_penalty" in results["SAQ-CQL"]["penalty"][0]
    assert (out / "penalty_gap.png").read_bytes()[:8] == PNG_MAGIC


def test_ray_backend_on_a_tiny_grid(builtin_data: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                       "SAQ_CACHE_DIR": str(builtin_data)}})
    try:
        runs = tiny_grid(["BC", "SAQ-BC"], steps=100)
        summary = run_grid(runs, tmp_path / "ray", backend="ray", workers=2, log=quiet)
        assert sorted(summary.executed) == sorted(r.run_id for r in runs) and not summary.failed
        again = run_grid(runs, tmp_path / "ray", backend="ray", workers=2, log=quiet)
        assert again.executed == [] and len(again.skipped) == 2
    finally:
        ray.shutdown()


def test_specs_parse_round_trip_and_paper_numbers() -> None:
    spec = DatasetSpec.parse("hop=d4rl:/data/hopper_expert.hdf5@Hopper-v5")
    assert (spec.name, spec.kind, spec.source, spec.env_id) == ("hop", "d4rl", "/data/hopper_expert.hdf5", "Hopper-v5")
    assert DatasetSpec.parse("robomimic:/x/lift_ph.hdf5").metric == "success"
    assert DatasetSpec.parse("minari:mujoco/hopper/expert-v0").name == "mujoco-hopper-expert-v0"
    with pytest.raises(DataError, match="needs its env id"):
        DatasetSpec.parse("d4rl:/data/hopper.hdf5")
    with pytest.raises(DataError, match="does not exist"):
        DatasetSpec.parse("hopper.hdf5")
    with pytest.raises(DataError, match="unknown algorithm"):
        tiny_grid(["SAQ-XYZ"])

    runs = build_suite("ablation-k", Path("/data"))
    # 3 algorithms x K in {16, 32, 64, 128} x 3 seeds, at the standard budget on its data
    assert len({r.run_id for r in runs}) == len(runs) == 36
    assert {r.steps for r in runs} == {20_000} and {r.seed for r in runs} == {0, 1, 2}
    assert {r.dataset.source for r in runs} == {"/data/minari/saqbench-std/hopper-expert-v0"}
    standard = build_suite("standard", Path("/data"))
    assert len(standard) == 5 * 9 * 3 + 5 * 2 * 2
    # the criterion's pair, SAQ-BC and SAQ-IQL, alone runs 2 more seeds; --seeds gives exactly those
    assert {r.algo for r in standard if r.seed > 2} == {"SAQ-BC", "SAQ-IQL"}
    assert {r.seed for r in standard if r.algo == "SAQ-IQL"} == {0, 1, 2, 3, 4}
    assert {r.seed for r in build_suite("standard", Path("/data"), seeds=[0, 1])} == {0, 1}
    assert all(r.seed <= 2 for r in build_suite("ablation-k", Path("/data")))
    assert {r.dataset.name for r in standard} == {
        "hopper-expert", "walker2d-expert", "halfcheetah-expert", "hopper-medium-expert", "lift-mm"}
    # X and SAQ-X: same updates and networks
    assert {(r.steps, r.hidden) for r in standard} == {(20_000, (256, 256))}
    # ARQ: its AWR policy and the sampler's validated solver length (6 steps gave near-random candidates)
    assert {(r.arq.policy, r.arq.ode_steps) for r in standard if r.algo == "ARQ"} == {("awr", 28)}
    # the authors' reward scaling, exactly where they apply it: the IQL pair on locomotion
    assert {(r.dataset.name, r.algo) for r in standard if r.reward_scaling == "returns"} == {
        (name, algo) for name in ("hopper-expert", "walker2d-expert", "halfcheetah-expert", "hopper-medium-expert")
        for algo in ("IQL", "SAQ-IQL")}
    # the authors' acting: SAQ-IQL samples its code (their sample_action=True), the rest act greedily
    assert {r.algo for r in standard if not r.evaluation.greedy} == {"SAQ-IQL"}
    assert all(r.run_id.split("__")[1] == "SAQ-IQL-K64-sampled" for r in standard if r.algo == "SAQ-IQL")
    # the study shares the standard runs at the default quantizer and adds budgets and the other
    # acting rule (SAQ-IQL greedy) at the default quantizer
    study = build_suite("quantizer-study", Path("/data"))
    standard_ids = {r.run_id: r.fingerprint() for r in standard}
    shared = [r for r in study if r.run_id in standard_ids]
    assert len(shared) == 3 * 3 and all(standard_ids[r.run_id] == r.fingerprint() for r in shared)
    assert {r.quantizer.steps for r in study} == {5000, 20_000, 50_000}
    standard_acting = {r.algo: r.evaluation.greedy for r in standard}
    contrast = [r for r in study if r.evaluation.greedy != standard_acting[r.algo]]
    assert sorted((r.algo, r.seed, r.quantizer.steps) for r in contrast) == sorted(
        ("SAQ-IQL", seed, 5000) for seed in (0, 1, 2))
    assert all(r.evaluation.greedy for r in contrast)
    assert len({r.run_id for r in study}) == len(study) == 3 * 3 * 3 + 3
    assert all(RunSpec.from_dict(json.loads(json.dumps(r.to_dict()))) == r for r in runs)
    state = build_suite("ablation-state", Path("/data"))
    assert {(r.quantizer.n_codes, r.quantizer.state_conditioned) for r in state} == {(16, True), (16, False)}
    small = build_suite("small", Path("/data"))
    assert {r.dataset.name for r in small} == {"hopper-expert", "hopper-medium-expert", "lift-ph"}
    assert all(r.hidden == (256, 256) and r.steps == small[0].steps for r in small)  # same budget and sizes

    assert paper_number("hopper-expert-v2", "SAQ-CQL") == (109.9, "SAQ Tab. 5")
    assert paper_number("hopper-expert-v2", "SAQ-IQL", n_codes=16) == (106.9, "SAQ Tab. 4")
    assert paper_number("hopper-expert-v2", "SAQ-CQL", codebook_sweep=True) == (110.8, "SAQ Tab. 4")
    assert paper_number("robomimic-lift-ph", "BC") == (59.47, "SAQ Tab. 2")
    assert paper_number("robomimic-lift-ph", "ARQ") == (98.0, "ARQ Tab. A.4")
    assert paper_number("hopper-expert-v2", "TD3+BC") is None
    assert paper_number(None, "CQL") is None


@pytest.mark.parametrize("suite, folder", [("standard", "standard"), ("ablation-k", "ablations"),
                                           ("ablation-state", "ablations"), ("quantizer-study", "ablations")])
def test_the_standard_familys_grids_are_their_committed_runs(suite: str, folder: str) -> None:
    """Every run of the standard suite and of the suites on its data is a committed result with the
    same run id and fingerprint: a change to their grids (a budget, a setting, the acting, the
    data's names), such as a new suite's leaking into them, would re-run or orphan those results."""
    records = [json.loads(path.read_text())
               for path in (ROOT / "benchmarks" / "results" / "harness" / folder / "runs").glob("*.json")]
    committed = {record["run_id"]: record["fingerprint"] for record in records}
    data_dirs = {Path(r["spec"]["dataset"]["source"]).parents[2] for r in records
                 if r["spec"]["dataset"]["kind"] == "minari"}
    assert len(data_dirs) == 1  # the folder prepare wrote them into
    runs = build_suite(suite, data_dirs.pop())
    assert [r.run_id for r in runs if r.run_id not in committed] == []
    assert {r.run_id: r.fingerprint() for r in runs} == {r.run_id: committed[r.run_id] for r in runs}


def test_stop_file_lets_running_runs_finish_and_starts_no_new_one(builtin_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    runs = build_suite("tiny", Path("."), algos=["BC"], seeds=[0, 1, 2, 3], steps=50)
    (out).mkdir()
    (out / "STOP").touch()  # left by an earlier invocation: a new one starts anyway

    def stop_after_first(line: str) -> None:
        if "[1/" in line:
            (out / "STOP").touch()

    first = run_grid(runs, out, backend="serial", log=stop_after_first)
    # one run per seed, seed by seed: the stop is seen before the next seed starts
    assert first.stopped and len(first.executed) == 1 and not first.failed
    assert sum(result_path(out, r).is_file() for r in runs) == 1
    second = run_grid(runs, out, backend="serial", log=quiet)
    assert not second.stopped and len(second.executed) == 3 and len(second.skipped) == 1
    assert all(result_path(out, r).is_file() for r in runs)

    # the machine time of the resumed grid: one ledger entry per invocation that had work
    run_grid(runs, out, backend="serial", log=quiet)  # nothing left to run: no entry
    entries = read_ledger(out)
    assert [(e["runs"], e["stopped"], e["to_run"]) for e in entries] == [(1, True, 4), (3, False, 3)]
    assert all(e["seconds"] > 0 and e["cpu_model"] == machine()["cpu_model"] for e in entries)
    total = summarize_ledger(entries)
    assert total is not None and total["runs"] == 4 and total["invocations"] == 2
    assert total["hours"] == pytest.approx(sum(e["seconds"] for e in entries) / 3600)
    write_report(runs, out, "tiny", "test")
    table = (out / "results.md").read_text()
    assert f"took **{total['hours']:.2f} hours**" in table and "(2 invocations" in table


def test_grid_ledger_keeps_the_time_of_an_invocation_that_never_closed(tmp_path: Path) -> None:
    """A session that ends kills the grid without ``close``: what it finished still counts."""
    info = {"cpu_model": "Test CPU", "cpu_capability": "AVX512", "cpus": 2, "host": "h"}
    killed = GridLedger(tmp_path, "local", 2, to_run=5, machine=info)
    killed.tick("artifact", True)
    killed.tick("run", True)
    killed.tick("run", False)
    other = GridLedger(tmp_path, "local", 2, to_run=4, machine={**info, "cpu_capability": "AVX2"})
    other.tick("run", True)
    other.close(stopped=False)
    entries = read_ledger(tmp_path)
    assert [(e["artifacts"], e["runs"], e["failed"], e["stopped"]) for e in entries] == [
        (1, 1, 1, False), (0, 1, 0, False)]
    assert entries[0]["ended"] is not None
    total = summarize_ledger(entries)
    assert total is not None and [(p["cpu"], p["runs"]) for p in total["by_cpu"]] == [
        ("Test CPU (AVX512, 2 cpus)", 1), ("Test CPU (AVX2, 2 cpus)", 1)]
    assert summarize_ledger([]) is None
    (tmp_path / "grid_time.json").write_text('{"seconds": 3}')
    with pytest.raises(DataError, match="grid time ledger"):
        read_ledger(tmp_path)


def test_stop_file_starts_no_queued_run_in_the_process_pool(builtin_data: Path, tmp_path: Path) -> None:
    """The local pool submits a run only when a worker is free, so a stop request leaves
    nothing queued: with 1 worker and 4 runs of one seed, exactly 1 run executes."""
    out = tmp_path / "bench"
    runs = build_suite("tiny", Path("."), algos=["BC", "CQL", "IQL", "TD3+BC"], seeds=[0], steps=30)

    def stop_after_first(line: str) -> None:
        if "[1/" in line:
            (out / "STOP").touch()

    summary = run_grid(runs, out, backend="local", workers=1, log=stop_after_first)
    assert summary.stopped and len(summary.executed) == 1 and not summary.failed
    assert sum(result_path(out, r).is_file() for r in runs) == 1


def test_stored_artifacts_fitted_on_other_episodes_are_refused(builtin_data: Path, tmp_path: Path) -> None:
    """Data generated again under the same name: a quantizer or ARQ table fitted on the old
    episodes is refused with a message, not reused for the new ones."""
    from saq_wrappers.app.datasets import load_dataset
    from saq_wrappers.app.pipeline import ArtifactStore, ensure_arq, ensure_quantizer

    store = ArtifactStore(tmp_path / "artifacts")
    saq = tiny_grid(["SAQ-BC"])[0]
    data = load_dataset(saq.dataset)
    _, meta = ensure_quantizer(saq, store, data)
    assert meta["data_sha256"] == data.transitions.content_sha256()
    assert ensure_quantizer(saq, store, data)[1] == meta  # the same episodes: reused
    changed = data.transitions.to_dict()
    changed["rewards"] = changed["rewards"] + 1.0
    regenerated = dataclasses.replace(data, transitions=type(data.transitions)(**changed))
    with pytest.raises(DataError, match="fitted on other episodes of dataset"):
        ensure_quantizer(saq, store, regenerated)
    arq = tiny_grid(["ARQ"])[0]
    folder = store.arq_folder(arq)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"data_sha256": "0" * 64}))
    with pytest.raises(DataError, match="fitted on other episodes of dataset"):
        ensure_arq(arq, store, data)


@pytest.mark.parametrize("record", ["[" * 5000 + "]" * 5000, "[1, 2]", "{not json"])
def test_a_corrupt_fit_record_in_the_store_is_a_checkpoint_error(builtin_data: Path, tmp_path: Path, record: str) -> None:
    """A fit record nested thousands deep, not an object or not JSON: the library's error naming
    the artifact, never a RecursionError or AttributeError."""
    from saq_wrappers.app.datasets import load_dataset
    from saq_wrappers.app.pipeline import ArtifactStore, ensure_arq

    store = ArtifactStore(tmp_path / "artifacts")
    arq = tiny_grid(["ARQ"])[0]
    folder = store.arq_folder(arq)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(record)
    with pytest.raises(CheckpointError, match="fit record|meta.json"):
        ensure_arq(arq, store, load_dataset(arq.dataset))
