"""The benchmark report's statistics and views, on fabricated run records (no training).

Result files are written exactly as :func:`benchmarks.harness.runner.execute_run` writes them
(the spec, its fingerprint, score, training record with its curve), for runs of the ``standard``
suite's grid, so :func:`write_report` reads them through the same fingerprint check as real runs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pytest


from benchmarks.harness.plots import curve_bands  # noqa: E402
from benchmarks.harness.report import write_report  # noqa: E402
from benchmarks.harness.rows import aggregate, against_saq_bc_rows  # noqa: E402
from benchmarks.harness.runner import result_path  # noqa: E402
from benchmarks.harness.spec import (  # noqa: E402
    RunSpec,
    build_suite,
    is_ablation_reference,
    mode_twin_references,
    variant_references,
    with_density_policy_variants,
    with_mode_averaged_twins,
)
from benchmarks.harness.statistics import (  # noqa: E402
    BOOTSTRAP_REPS,
    MissingDependencyError,
    aggregate_iqm,
    bootstrap_ci,
    bootstrap_difference_ci,
    equal_wall_clock,
    point_at_seconds,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPS = 300  # aggregate resamples in these tests (rliable calls Python once per resample)
STANDARD = build_suite("standard", Path("/data"))


def spec_of(dataset: str, algo: str, seed: int) -> RunSpec:
    return next(r for r in STANDARD if (r.dataset.name, r.algo, r.seed) == (dataset, algo, seed))


def curve(train_seconds: float, scores: Sequence[float], steps: int = 20_000) -> list[dict[str, float]]:
    """Evenly spaced curve points; the last one at the end of training."""
    n = len(scores)
    return [{"step": steps * (i + 1) // n, "seconds": train_seconds * (i + 1) / n, "score": float(s)}
            for i, s in enumerate(scores)]


def fake_result(spec: RunSpec, score: float, train_seconds: float = 100.0,
                curve_scores: Optional[Sequence[float]] = None) -> dict[str, Any]:
    """A result record shaped like :func:`saq_wrappers.app.pipeline.run_experiment`'s."""
    steps = spec.steps or 0
    points = curve(train_seconds, curve_scores if curve_scores is not None else [score / 2, score], steps)
    record: dict[str, Any] = {
        "run_id": spec.run_id, "fingerprint": spec.fingerprint(), "spec": spec.to_dict(),
        "label": spec.label, "dataset": spec.dataset.name, "algo": spec.algo, "seed": spec.seed,
        "metric": spec.dataset.metric, "score": float(score),
        "evaluation": {"mean_return": 10.0 * score, "returns": [10.0 * score] * 10, "success_rate": None},
        "eval_seconds": 5.0,
        "training": {"steps": steps, "train_seconds": train_seconds, "updates_per_second": steps / train_seconds,
                     "curve": points, "last_metrics": {}},
        "penalty": None,
        "wall_seconds": train_seconds + 5.0,
    }
    if spec.is_saq:
        record["quantizer"] = {"n_codes": spec.quantizer.n_codes, "state_conditioned": True,
                               "reconstruction_mse": 0.01, "codes_used": 60}
    return record


def write_runs(out: Path, results: list[dict[str, Any]]) -> None:
    for r in results:
        path = result_path(out, RunSpec.from_dict(r["spec"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))


def record(dataset: str, label: str, seed: int, score: float, algo: Optional[str] = None) -> dict[str, Any]:
    """A per-seed record, the input of the statistics functions."""
    return {"dataset": dataset, "label": label, "algo": algo or label.split(" (")[0], "seed": seed,
            "score": score, "steps": 1000, "train_seconds": 10.0, "curve": []}


# ---------------------------------------------------------------------------------- bootstrap
def test_bootstrap_ci_contains_mean_shrinks_and_is_deterministic() -> None:
    spread = bootstrap_ci([0.0, 40.0, 70.0, 100.0], seed=3)
    assert spread.point == pytest.approx(52.5) and spread.n == 4
    assert spread.low < spread.point < spread.high
    agreeing = bootstrap_ci([50.0, 52.0, 54.0, 56.0], seed=3)
    assert agreeing.low <= agreeing.point <= agreeing.high
    assert agreeing.high - agreeing.low < 0.2 * (spread.high - spread.low)

    same = bootstrap_ci([0.1, 0.1, 0.1])  # 0.1 * 3 / 3 != 0.1 in floats: the point must be exact
    assert (same.point, same.low, same.high) == (0.1, 0.1, 0.1)
    one = bootstrap_ci([42.0])
    assert (one.point, one.low, one.high, one.n) == (42.0, 42.0, 42.0, 1)

    scores = np.random.default_rng(0).normal(50, 10, size=10)
    assert bootstrap_ci(scores, seed=7) == bootstrap_ci(scores, seed=7)
    assert bootstrap_ci(scores, seed=7) != bootstrap_ci(scores, seed=8)


def test_bootstrap_ci_matches_the_normal_interval_for_many_seeds() -> None:
    """For many samples the percentile bootstrap of a mean approaches mean ± z * sd / sqrt(n):
    a wrong quantile (e.g. 5%/95% or a confidence mix-up) fails here."""
    x = np.random.default_rng(1).normal(0.0, 1.0, size=400)
    half = 1.959964 * x.std() / np.sqrt(x.size)
    ci = bootstrap_ci(x, confidence=0.95, seed=0)
    assert ci.low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.1 * half)
    narrow = bootstrap_ci(x, confidence=0.5, seed=0)
    assert narrow.high - narrow.low == pytest.approx(2 * 0.67449 * x.std() / np.sqrt(x.size), rel=0.1)


def test_bootstrap_difference_ci() -> None:
    diff = bootstrap_difference_ci([10.0, 20.0, 30.0], [60.0, 70.0, 80.0])
    assert diff.point == pytest.approx(50.0)
    assert diff.low < 50.0 < diff.high and diff.low > 20.0
    exact = bootstrap_difference_ci([5.0, 5.0], [7.5, 7.5, 7.5])
    assert (exact.point, exact.low, exact.high) == (2.5, 2.5, 2.5)


# ---------------------------------------------------------------------------------- aggregate
def test_iqm_of_a_known_matrix_and_exclusions() -> None:
    pytest.importorskip("rliable")
    from scipy.stats import trim_mean

    tasks = ["a", "b", "c", "d"]
    rng = np.random.default_rng(2)
    good = rng.uniform(0, 100, size=(3, 4))
    good[0, 0] = 1000.0  # an outlier the IQM trims (the mean would not)
    other = rng.uniform(0, 100, size=(3, 4))
    records = [record(t, "CQL", s, good[s, j]) for s in range(3) for j, t in enumerate(tasks)]
    records += [record(t, "SAQ-CQL (K=64)", s, other[s, j]) for s in range(3) for j, t in enumerate(tasks)]
    # IQL misses a dataset; BC's seed 2 has not finished on "b"; TD3+BC shares no seed across datasets
    records += [record(t, "IQL", s, 50.0) for s in range(3) for t in tasks[:3]]
    bc = rng.uniform(0, 100, size=(3, 4))
    records += [record(t, "BC", s, bc[s, j]) for s in range(3) for j, t in enumerate(tasks) if (t, s) != ("b", 2)]
    records += [record(t, "TD3+BC", 0 if t == "a" else 1, 50.0) for t in tasks]

    result = aggregate_iqm(records, reps=REPS, seed=0, improvement_reps=REPS)
    assert result.tasks == tasks
    expected = trim_mean(good.ravel(), 0.25)
    assert expected != pytest.approx(good.mean())
    assert result.iqm["CQL"].point == pytest.approx(expected)
    assert result.iqm["SAQ-CQL (K=64)"].point == pytest.approx(trim_mean(other.ravel(), 0.25))
    iv = result.iqm["CQL"]
    assert iv.low <= iv.point <= iv.high and iv.low < iv.high and iv.n == 12
    assert result.seeds["CQL"] == [0, 1, 2]
    assert set(result.iqm) == {"CQL", "SAQ-CQL (K=64)", "BC"}
    assert set(result.excluded) == {"IQL", "TD3+BC"}
    assert result.excluded["IQL"] == "no finished run on d"
    assert result.excluded["TD3+BC"].startswith("no seed finished on every dataset")
    # BC enters with the seeds finished everywhere; its seed-2 runs wait
    assert result.seeds["BC"] == [0, 1] and result.iqm["BC"].n == 8
    assert result.iqm["BC"].point == pytest.approx(trim_mean(bc[:2].ravel(), 0.25))
    assert result.dropped == {"BC": "left out seed(s) 2 on a; 2 on c; 2 on d (not finished on every dataset)"}

    # reproducible for a seed, and numpy's global random stream is left as it was
    np.random.seed(123)
    expected_draw = np.random.random()
    np.random.seed(123)
    again = aggregate_iqm(records, reps=REPS, seed=0, improvement_reps=REPS)
    assert np.random.random() == expected_draw
    assert again.iqm == result.iqm and again.improvement == result.improvement
    assert aggregate_iqm(records, reps=REPS, seed=1, improvement_reps=REPS).iqm["CQL"] != iv
    # P(SAQ-CQL > CQL) from rliable, for the one complete pair
    assert set(result.improvement) == {("CQL", "SAQ-CQL (K=64)")}
    poi = result.improvement[("CQL", "SAQ-CQL (K=64)")]
    assert 0.0 <= poi.low <= poi.point <= poi.high <= 1.0


def test_probability_of_improvement_direction() -> None:
    pytest.importorskip("rliable")
    records = [record(t, "BC", s, 10.0 + s) for s in range(3) for t in ("a", "b")]
    records += [record(t, "SAQ-BC (K=64)", s, 90.0 + s) for s in range(3) for t in ("a", "b")]
    records += [record(t, "IQL", s, 90.0 + s) for s in range(3) for t in ("a", "b")]
    records += [record(t, "SAQ-IQL (K=64)", s, 10.0 + s) for s in range(3) for t in ("a", "b")]
    result = aggregate_iqm(records, reps=REPS, improvement_reps=REPS)
    assert result.improvement[("BC", "SAQ-BC (K=64)")].point == pytest.approx(1.0)
    assert result.improvement[("IQL", "SAQ-IQL (K=64)")].point == pytest.approx(0.0)


def test_missing_rliable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rliable", None)  # import rliable -> ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install -e "\.\[bench\]"'):
        aggregate_iqm([record("a", "BC", 0, 1.0)])


# ---------------------------------------------------------------------------------- wall clock
def test_point_at_seconds_picks_the_last_point_not_later() -> None:
    points = [{"step": 100, "seconds": 10.0, "score": 1.0}, {"step": 200, "seconds": 20.0, "score": 2.0},
              {"step": 300, "seconds": 30.0, "score": 3.0}]
    assert point_at_seconds(points, 25.0)["step"] == 200
    assert point_at_seconds(points, 20.0)["step"] == 200
    assert point_at_seconds(points, 19.99)["step"] == 100
    assert point_at_seconds(points, 1e6)["step"] == 300
    assert point_at_seconds(points, 9.0) is None
    assert point_at_seconds([], 9.0) is None


def test_equal_wall_clock_reads_the_slower_curve_at_the_faster_budget() -> None:
    def run(label: str, seed: int, score: float, seconds: float, points: list[tuple[int, float, float]]
            ) -> dict[str, Any]:
        r = record("hop", label, seed, score)
        r.update(train_seconds=seconds, steps=points[-1][0] if points else 1000,
                 curve=[{"step": st, "seconds": sec, "score": sc} for st, sec, sc in points])
        return r

    # CQL is slow: at 150 s (SAQ-CQL's whole budget) seed 0 is at its 100 s point, seed 1 at 140 s
    records = [
        run("CQL", 0, 30.0, 300.0, [(1000, 100.0, 10.0), (2000, 200.0, 20.0), (3000, 300.0, 30.0)]),
        run("CQL", 1, 40.0, 280.0, [(1000, 140.0, 14.0), (2000, 210.0, 24.0), (3000, 280.0, 40.0)]),
        run("SAQ-CQL (K=64)", 0, 80.0, 140.0, [(3000, 140.0, 70.0)]),
        run("SAQ-CQL (K=64)", 1, 90.0, 160.0, [(3000, 160.0, 75.0)]),
        # IQL is faster than SAQ-IQL, and SAQ-IQL has no curve point that early
        run("IQL", 0, 60.0, 20.0, [(3000, 20.0, 55.0)]),
        run("SAQ-IQL (K=64)", 0, 65.0, 400.0, [(1500, 200.0, 50.0), (3000, 400.0, 65.0)]),
    ]
    rows = {row["x"]: row for row in equal_wall_clock(records)}
    cql = rows["CQL"]
    assert (cql["faster"], cql["slower"]) == ("SAQ-CQL (K=64)", "CQL")
    assert cql["seconds"] == pytest.approx(150.0)
    assert cql["slow_score"] == pytest.approx((10.0 + 14.0) / 2)
    assert cql["slow_seconds"] == pytest.approx(120.0) and cql["slow_step"] == pytest.approx(1000)
    assert (cql["slow_n"], cql["slow_total"]) == (2, 2)
    assert cql["fast_score"]["point"] == pytest.approx(85.0)
    assert cql["slow_final_score"] == pytest.approx(35.0) and cql["slow_train_seconds"] == pytest.approx(290.0)

    iql = rows["IQL"]
    assert (iql["faster"], iql["seconds"]) == ("IQL", 20.0)
    assert iql["slow_score"] is None and iql["slow_n"] == 0


def test_curve_bands_combine_seeds_at_matching_points() -> None:
    a = record("hop", "BC", 0, 0.0)
    b = record("hop", "BC", 1, 0.0)
    a["curve"] = [{"step": 10, "seconds": 1.0, "score": 0.0}, {"step": 20, "seconds": 3.0, "score": 10.0},
                  {"step": 30, "seconds": 4.0, "score": 99.0}]
    b["curve"] = [{"step": 10, "seconds": 2.0, "score": 4.0}, {"step": 20, "seconds": 5.0, "score": 30.0}]
    x, mean, low, high, n = curve_bands([a, b], "seconds")["hop"]["BC"]
    assert n == 2
    np.testing.assert_allclose(x, [1.5, 4.0])  # truncated to the shorter curve, seconds averaged
    np.testing.assert_allclose(mean, [2.0, 20.0])
    np.testing.assert_allclose(low, [0.0, 10.0])
    np.testing.assert_allclose(high, [4.0, 30.0])
    np.testing.assert_allclose(curve_bands([a, b], "step")["hop"]["BC"][0], [10.0, 20.0])


# ---------------------------------------------------------------------------------- the report
def test_report_tables_json_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("rliable")
    out = tmp_path / "standard"
    datasets = ["hopper-expert", "lift-mm"]
    algos = ["BC", "SAQ-BC", "CQL", "SAQ-CQL", "TD3+BC", "SAQ-BRAC"]
    base = {"BC": 90.0, "SAQ-BC": 95.0, "CQL": 40.0, "SAQ-CQL": 80.0, "TD3+BC": 60.0, "SAQ-BRAC": 70.0}
    seconds = {"CQL": 400.0, "SAQ-CQL": 100.0}
    results = []
    for ds in datasets:
        for algo in algos:
            for seed in range(3):
                if algo == "SAQ-BRAC" and ds == "lift-mm" and seed == 2:
                    continue  # unfinished: SAQ-BRAC enters the aggregate with seeds 0 and 1
                score = base[algo] + 5.0 * seed
                t = seconds.get(algo, 100.0)
                results.append(fake_result(spec_of(ds, algo, seed), score, t,
                                           [0.25 * score + seed, 0.5 * score, 0.75 * score, score]))
    # IQL finished on one dataset only: left out of the aggregate
    results += [fake_result(spec_of("hopper-expert", "IQL", seed), 50.0) for seed in range(3)]
    write_runs(out, results)
    report = write_report(STANDARD, out, "standard", "test", aggregate_reps=REPS, improvement_reps=REPS)
    assert report["n_finished"] == len(results) == 38
    assert report["plots"] == ["learning_curves.png", "wall_clock_curves.png", "iqm.png"]
    for name in report["plots"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC

    text = (out / "results.md").read_text()
    assert text == report["markdown"]
    bc = bootstrap_ci([90.0, 95.0, 100.0], reps=BOOTSTRAP_REPS, seed=0)
    assert f"| {bc.point:.1f} [{bc.low:.1f}, {bc.high:.1f}] (n=3; paper 98.8) |" in text  # hopper-expert BC
    assert "| 72.5 [70.0, 75.0] (n=2) |" in text  # SAQ-BRAC on lift-mm: 2 seeds, no paper number
    # the per-seed table: each group's scores by seed, so a README table is copied, not retyped
    per_seed = text.split("## Scores per seed")[1].split("## ")[0]
    lift_row = next(line for line in per_seed.splitlines() if line.startswith("| lift-mm |"))
    assert "| 0: 70.0 / 1: 75.0 |" in lift_row  # SAQ-BRAC: seed 2 not finished
    assert "| 0: 90.0 / 1: 95.0 / 2: 100.0 |" in lift_row  # BC
    # the pair table: TD3+BC stands in for BRAC, the paper's difference is against BRAC
    assert "closest continuous behaviour-regularised method" in text
    assert "| hopper-expert | TD3+BC | SAQ-BRAC (K=64) |" in text and "+42.7 (vs BRAC)" in text
    assert "| 20000 / 20000 |" in text  # equal update budgets shown
    # SAQ-X against SAQ-BC on the same quantizer: SAQ-CQL (80 + 5 s) against SAQ-BC (95 + 5 s)
    vs_bc = bootstrap_difference_ci([95.0, 100.0, 105.0], [80.0, 85.0, 90.0], reps=BOOTSTRAP_REPS, seed=0)
    assert (f"| hopper-expert | SAQ-BC (K=64) | SAQ-CQL (K=64) | 100.0 (n=3) | 85.0 (n=3) | "
            f"-15.0 [{vs_bc.low:+.1f}, {vs_bc.high:+.1f}] |") in text
    diff = bootstrap_difference_ci([40.0, 45.0, 50.0], [80.0, 85.0, 90.0], reps=BOOTSTRAP_REPS, seed=0)
    assert f"| +40.0 [{diff.low:+.1f}, {diff.high:+.1f}] |" in text
    # the aggregate
    assert "0-100 scale" in text and "rliable" in text
    assert "- SAQ-BRAC (K=64): left out seed(s) 2 on hopper-expert (not finished on every dataset)" in text
    assert "Left out of the aggregate:\n\n- IQL: no finished run on lift-mm\n" in text
    assert "P(SAQ-X > X)" in text and "| SAQ-CQL (K=64) vs CQL |" in text
    # equal wall-clock: SAQ-CQL finished in 100 s; CQL's curve (points every 100 s) read at 100 s
    assert "## At equal wall-clock" in text
    cql_at_100 = np.mean([0.25 * (40.0 + 5 * s) + s for s in range(3)])
    assert (f"| hopper-expert | CQL | SAQ-CQL (K=64) | SAQ-CQL (K=64) | 100 | 85.0 [80.0, 90.0] (20000) | "
            f"{cql_at_100:.1f} (5000, 100 s, 3/3) |") in text
    # the every-group table keeps speed and time
    assert "| updates/s | train s | eval s |" in text and "± 4.1" in text
    assert "runs/<run_id>.json" in text
    assert "## Not finished" in text and "- 117 run(s) not run yet" in text

    document = json.loads((out / "results.json").read_text())
    assert len(document["per_seed"]) == 38
    entry = next(e for e in document["per_seed"] if e["run_id"] == spec_of("lift-mm", "CQL", 1).run_id)
    assert (entry["dataset"], entry["algo"], entry["label"], entry["seed"], entry["score"]) == \
        ("lift-mm", "CQL", "CQL", 1, 45.0)
    assert entry["steps"] == 20_000 and entry["train_seconds"] == 400.0 and len(entry["curve"]) == 4
    iqm = document["aggregate"]["iqm"]
    assert set(iqm) == {"BC", "SAQ-BC (K=64)", "CQL", "SAQ-CQL (K=64)", "TD3+BC", "SAQ-BRAC (K=64)"}
    assert iqm["SAQ-BRAC (K=64)"]["seeds"] == [0, 1] and iqm["CQL"]["seeds"] == [0, 1, 2]
    assert document["aggregate"]["excluded"] == {"IQL": "no finished run on lift-mm"}
    assert {(p["x"], p["saq_x"]) for p in document["pairs"]} == {
        ("BC", "SAQ-BC (K=64)"), ("CQL", "SAQ-CQL (K=64)"), ("TD3+BC", "SAQ-BRAC (K=64)")}
    assert sorted((a["dataset"], a["saq_x"]) for a in document["against_saq_bc"]) == [
        (ds, saq) for ds in sorted(datasets) for saq in ("SAQ-BRAC (K=64)", "SAQ-CQL (K=64)")]
    row = next(s for s in document["summary"] if (s["dataset"], s["label"]) == ("hopper-expert", "BC"))
    assert (row["ci_low"], row["ci_high"]) == (bc.low, bc.high)
    assert document["equal_wall_clock"] and document["runs"]


def test_saq_x_is_compared_with_saq_bc_only_on_the_same_quantizer() -> None:
    def row(label: str, algo: str, quantizer: list[Any], scores: list[float]) -> dict[str, Any]:
        return {"dataset": "d", "label": label, "algo": algo, "quantizer": quantizer, "seeds": [0, 1],
                "scores": scores, "mean": float(np.mean(scores))}

    default, longer = [64, True, [512, 512], 5000], [64, True, [512, 512], 20_000]
    rows = [row("SAQ-BC (K=64)", "SAQ-BC", default, [40.0, 42.0]),
            row("SAQ-BC (K=64, q20000)", "SAQ-BC", longer, [10.0, 12.0]),
            row("SAQ-IQL (K=64)", "SAQ-IQL", default, [30.0, 34.0]),
            row("SAQ-IQL (K=64, q20000)", "SAQ-IQL", longer, [30.0, 34.0]),
            row("SAQ-CQL (K=16)", "SAQ-CQL", [16, True, [512, 512], 5000], [50.0, 50.0]),
            row("IQL", "IQL", None, [60.0, 60.0])]
    found = {(a["saq_x"], a["saq_bc"]): a["difference"] for a in against_saq_bc_rows(rows)}
    assert found == {("SAQ-IQL (K=64)", "SAQ-BC (K=64)"): pytest.approx(-9.0),
                     ("SAQ-IQL (K=64, q20000)", "SAQ-BC (K=64, q20000)"): pytest.approx(21.0)}


@pytest.mark.parametrize("suite", ["ablation-k", "ablation-state", "quantizer-study"])
def test_each_ablation_has_one_reference_per_algorithm_and_seed(suite: str) -> None:
    """The setting an ablation's variants are measured against: exactly one run per (dataset,
    algorithm, seed), the library's default where it is in the grid; none in the main suite."""
    grid = build_suite(suite, Path("/data"))
    references = [s for s in grid if is_ablation_reference(suite, s)]
    keys = [(s.dataset.name, s.algo, s.seed) for s in references]
    assert len(keys) == len(set(keys)) == len({(s.dataset.name, s.algo, s.seed) for s in grid})
    n_codes = {"ablation-k": 64, "ablation-state": 16, "quantizer-study": 64}[suite]
    for spec in references:
        sampled = ", sampled" if spec.algo == "SAQ-IQL" else ""
        assert spec.label == f"{spec.algo} (K={n_codes}{sampled})"
    assert not any(is_ablation_reference("standard", s) for s in STANDARD)


def test_codebook_sweep_reads_every_column_from_table_4_and_the_main_suite_from_table_5() -> None:
    """SAQ Table 4's K = 64 column (SAQ-CQL 110.8) differs from the main table's hopper-expert
    (109.9): inside the K sweep every column, the default included, must come from Table 4, while
    the standard suite's SAQ-CQL at K = 64 alone keeps Table 5's number."""
    sweep = [s for s in build_suite("ablation-k", Path("/data")) if s.seed == 0]
    papers = {(r["algo"], r["n_codes"]): (r["paper"], r["paper_source"])
              for r in aggregate([fake_result(s, 30.0) for s in sweep], reps=REPS)}
    assert papers[("SAQ-CQL", 64)] == (110.8, "SAQ Tab. 4")
    assert papers[("SAQ-IQL", 64)] == (104.2, "SAQ Tab. 4")
    assert papers[("SAQ-BRAC", 128)] == (107.0, "SAQ Tab. 4")
    main = [spec_of("hopper-expert", "SAQ-CQL", 0)]
    (row,) = aggregate([fake_result(s, 30.0) for s in main], reps=REPS)
    assert (row["paper"], row["paper_source"]) == (109.9, "SAQ Tab. 5")


def test_ablation_report_measures_each_variant_against_its_reference(tmp_path: Path) -> None:
    """SAQ Table 3 asks what state conditioning adds: each no-state group minus the
    state-conditioned group of the same algorithm, never of another algorithm."""
    grid = build_suite("ablation-state", Path("/data"))
    offset = {"SAQ-CQL": 0.0, "SAQ-IQL": 20.0, "SAQ-BRAC": 40.0}
    results = [fake_result(s, offset[s.algo] + (30.0 if s.quantizer.state_conditioned else 10.0) + s.seed)
               for s in grid]
    out = tmp_path / "runs"
    write_runs(out, results)
    report = write_report(grid, out, "ablation-state", "test", aggregate_reps=REPS, improvement_reps=REPS)
    variants = json.loads((out / "results.json").read_text())["variants"]
    assert {(v["reference"], v["variant"]) for v in variants} == {
        ("SAQ-CQL (K=16)", "SAQ-CQL (K=16, no state)"), ("SAQ-BRAC (K=16)", "SAQ-BRAC (K=16, no state)"),
        ("SAQ-IQL (K=16, sampled)", "SAQ-IQL (K=16, no state, sampled)")}
    diff = bootstrap_difference_ci([30.0, 31.0, 32.0], [10.0, 11.0, 12.0], reps=BOOTSTRAP_REPS, seed=0)
    for v in variants:
        assert v["difference"] == pytest.approx(-20.0)
        assert v["difference_ci"] == [pytest.approx(diff.low), pytest.approx(diff.high)]
    assert (f"| hopper-medium-expert | SAQ-IQL (K=16, sampled) | SAQ-IQL (K=16, no state, sampled) | "
            f"51.0 (n=3) | 31.0 (n=3) | -20.0 [{diff.low:+.1f}, {diff.high:+.1f}] |") in report["markdown"]


def test_report_on_a_partial_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a suite runs: nothing finished, then one run, then no rliable."""
    out = tmp_path / "partial"
    out.mkdir()  # as benchmarks.run does
    empty = write_report(STANDARD, out, "standard", "test", aggregate_reps=REPS, improvement_reps=REPS)
    assert empty["plots"] == [] and "155 run(s) not run yet" in empty["markdown"]

    write_runs(out, [fake_result(spec_of("walker2d-expert", "SAQ-IQL", 1), 33.0)])
    one = write_report(STANDARD, out, "standard", "test", aggregate_reps=REPS, improvement_reps=REPS)
    assert "| 33.0 (n=1; paper 107.6) |" in one["markdown"]
    assert "## At equal wall-clock" not in one["markdown"]  # no pair finished
    assert {"learning_curves.png", "wall_clock_curves.png"} <= set(one["plots"])

    monkeypatch.setitem(sys.modules, "rliable", None)
    without = write_report(STANDARD, out, "standard", "test", aggregate_reps=REPS, improvement_reps=REPS)
    assert 'Not computed: the aggregate statistics' in without["markdown"]
    assert 'pip install -e ".[bench]"' in without["markdown"] and "iqm.png" not in without["plots"]
    assert "skipped" in json.loads((out / "results.json").read_text())["aggregate"]


def test_runs_on_regenerated_episodes_are_shown_and_marked(tmp_path: Path) -> None:
    """One dataset name, two sets of episodes: the report says which runs trained on which."""
    out = tmp_path / "mixed"
    results = [fake_result(spec_of("hopper-expert", algo, seed), 40.0 + seed)
               for algo in ("BC", "SAQ-BC") for seed in (0, 1, 2)]
    for r in results:
        r["data"] = {"transitions": 8649, "episodes": 10, "mean_return": 3165.0}  # recorded before the hash
    results[2]["data"] = {"transitions": 8658, "episodes": 10, "mean_return": 3166.6, "sha256": "ab" * 32}
    write_runs(out, results)
    report = write_report(STANDARD, out, "standard", "test", aggregate_reps=REPS, improvement_reps=REPS)
    text = report["markdown"]
    assert "| hopper-expert | not recorded | 8649 | 10 | 3165.0 | 5 |" in text
    assert f"| hopper-expert | `{'ab' * 8}` | 8658 | 10 | 3166.6 | 1: `hopper-expert__BC__seed2` |" in text
    assert "0: 40.0 / 1: 41.0 / 2: 42.0* |" in text  # BC seed 2 is the one on other episodes
    assert "0: 40.0 / 1: 41.0 / 2: 42.0 |" in text  # SAQ-BC: all on the main episodes
    data = json.loads((out / "results.json").read_text())["data"]
    assert [(row["sha256"], row["n_runs"]) for row in data] == [(None, 5), ("ab" * 32, 1)]


def test_unrecorded_runs_join_the_recorded_set_with_their_exact_episode_summary(tmp_path: Path) -> None:
    """Runs recorded before the hash count under a later-recorded set only when transitions,
    episodes and mean return are exactly theirs (the first generation written again)."""
    out = tmp_path / "rewritten"
    results = [fake_result(spec_of("hopper-expert", algo, seed), 40.0 + seed)
               for algo in ("BC", "SAQ-BC") for seed in (0, 1, 2)]
    for r in results:
        r["data"] = {"transitions": 8649, "episodes": 10, "mean_return": 3165.037548828125}  # unrecorded
    results[2]["data"] = {**results[2]["data"], "sha256": "cd" * 32}  # BC seed 2, written again
    results[5]["data"] = {"transitions": 8649, "episodes": 10, "mean_return": 3165.0375, "sha256": "ef" * 32}
    write_runs(out, results)
    text = write_report(STANDARD, out, "standard", "test", aggregate_reps=REPS, improvement_reps=REPS)["markdown"]
    assert (f"| hopper-expert | `{'cd' * 8}` (4 runs recorded without it, same transitions, episodes and mean "
            "return) | 8649 | 10 | 3165.0 | 5 |") in text
    assert "0: 40.0 / 1: 41.0 / 2: 42.0 |" in text  # BC: all on the main episodes
    assert "0: 40.0 / 1: 41.0 / 2: 42.0* |" in text  # SAQ-BC seed 2: a mean return 5e-5 apart


def test_mode_averaged_twins_train_the_same_runs_and_measure_against_their_plain_run() -> None:
    grid = build_suite("standard", Path("/data"), algos=["BC", "SAQ-BC"], seeds=[0])
    twinned = with_mode_averaged_twins(grid)
    twins = [s for s in twinned if s.evaluation.mode_averaging]
    assert len(twins) == sum(s.is_saq for s in grid) and all(s.is_saq for s in twins)
    for twin in twins:
        plain = dataclasses.replace(twin, evaluation=dataclasses.replace(twin.evaluation, mode_averaging=False))
        assert plain in grid and twin.run_id == plain.run_id.replace("-K64", "-K64-mode")
    assert mode_twin_references(twinned) == {"SAQ-BC (K=64)"}
    assert mode_twin_references(grid) == set()  # no twin: no reference


def test_an_ablations_variants_all_read_against_its_one_plain_reference() -> None:
    """The quantizer study with density variants and twins: the 5,000-update quantizer's plain run
    is the one reference of each algorithm (the plain runs of the other budgets have density
    variants and twins of their own, and were taken as references too, the last one winning)."""
    grid = with_mode_averaged_twins(with_density_policy_variants(build_suite("quantizer-study", Path("/data"))))
    assert variant_references("quantizer-study", grid) == {"SAQ-BC (K=64)", "SAQ-CQL (K=64)",
                                                           "SAQ-IQL (K=64, sampled)"}
    standard = with_mode_averaged_twins(with_density_policy_variants(
        build_suite("standard", Path("/data"), algos=["SAQ-BC", "SAQ-CQL"], seeds=[0])))
    # elsewhere: plain SAQ-X where its density variant is in the grid, else each twin's own run
    assert variant_references("standard", standard) == {"SAQ-BC (K=64)", "SAQ-CQL (K=64)"}
    assert variant_references("standard", with_mode_averaged_twins(build_suite(
        "standard", Path("/data"), algos=["SAQ-CQL"], seeds=[0]))) == {"SAQ-CQL (K=64)"}
