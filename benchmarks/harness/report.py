"""``results.json``, ``results.md`` and the PNG plots of a grid, from its per-run result files.

What the report shows, and how it is computed (:mod:`.statistics`):

* **Per dataset and algorithm**: the mean score over seeds with a 95% percentile-bootstrap
  interval over seeds (``n`` says how many seeds finished), the paper's number beside it where
  one exists (:mod:`.paper`); the "every group" table keeps mean ± std (population std), speed
  and time.
* **X against SAQ-X at equal gradient updates** (the suites give both the same budget): both
  means, the difference with its bootstrap interval (seeds resampled independently), and the
  paper's difference. TD3+BC stands in for SAQ-BRAC's BRAC.
* **Across datasets**: the IQM per algorithm with stratified-bootstrap intervals, and
  P(SAQ-X > X), from rliable, for algorithms whose seeds x datasets matrix is complete.
* **SAQ-X against SAQ-BC** on the same dataset and quantizer: what the RL adds to imitating the
  codes, with the same difference interval.
* **At equal wall-clock**: per pair, the slower one's learning curve read at the training time
  the faster one needed for its whole budget.
* ``results.json`` carries all of it plus ``per_seed`` (one entry per run: score, steps, training
  seconds, curve) and the full run records; ``runs/<run_id>.json`` are the per-run files.

Plots: score against gradient steps and against training seconds per dataset (seed mean, band:
min-max over seeds), the IQM intervals, the codebook-size curve (score against K, SAQ Table 4
dashed) when the grid varies K, the CQL penalty gap (SAQ Figure 2) when runs tracked it, and
state vs no-state bars when present.

The report is rewritten while a suite runs: every table and plot works with missing runs, one
seed, or datasets where only some algorithms finished.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from saq_wrappers.app.plots import pyplot, save_figure
from saq_wrappers.io import atomic_output

from .ledger import LEDGER, read_ledger, summarize_ledger
from .paper import SAQ_TABLE4, paper_number
from .runner import failure_path, load_result, machine
from .spec import RunSpec, is_ablation_reference
from .statistics import (
    AGGREGATE_REPS,
    BOOTSTRAP_REPS,
    IMPROVEMENT_REPS,
    AggregateResult,
    MissingDependencyError,
    aggregate_iqm,
    bootstrap_ci,
    bootstrap_difference_ci,
    equal_wall_clock,
    pair_labels,
    per_seed_record,
)

METRIC_NAMES = {"normalized": "normalized score", "success": "success rate (%)"}
#: The paper's baseline for SAQ-BRAC, which d3rlpy lacks (TD3+BC stands in for it).
PAPER_BASE = {"SAQ-BRAC": "BRAC"}


def collect(runs: list[RunSpec], out: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Finished results of ``runs`` (grid order) and the errors of failed ones."""
    results, failures = [], {}
    for spec in runs:
        stored = load_result(out, spec)
        if stored is not None:
            results.append(stored)
        elif failure_path(out, spec).is_file():
            failures[spec.run_id] = json.loads(failure_path(out, spec).read_text()).get("error", "?")
    return results, failures


def aggregate(results: list[dict[str, Any]], confidence: float = 0.95,
              reps: int = BOOTSTRAP_REPS, seed: int = 0,
              inferred: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
    """One row per (dataset, label): mean, bootstrap interval and std over seeds, speed, time and
    the paper's number. ``inferred``: :func:`infer_unrecorded_identities` of ``results`` when the
    caller already has it (worked out here otherwise)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["label"]), []).append(r)
    specs = {key: RunSpec.from_dict(members[0]["spec"]) for key, members in groups.items()}
    if inferred is None:
        inferred = infer_unrecorded_identities(results)
    codebook_sizes: dict[tuple[str, str], set[int]] = {}
    for spec in specs.values():
        if spec.is_saq and spec.quantizer.state_conditioned:
            codebook_sizes.setdefault((spec.dataset.name, spec.algo), set()).add(spec.quantizer.n_codes)
    rows = []
    for (dataset, label), members in groups.items():
        spec = specs[(dataset, label)]
        scores = np.array([m["score"] for m in members], dtype=float)
        interval = bootstrap_ci(scores, confidence, reps, seed)
        sweep = len(codebook_sizes.get((spec.dataset.name, spec.algo), ())) > 1
        paper = paper_number(spec.dataset.paper_key, spec.algo, spec.quantizer.n_codes,
                             spec.quantizer.state_conditioned, codebook_sweep=sweep) if spec.is_saq else \
            paper_number(spec.dataset.paper_key, spec.algo)
        q = [m.get("quantizer") or {} for m in members]
        rows.append({
            "dataset": dataset, "label": label, "algo": spec.algo, "metric": members[0]["metric"],
            "paper_key": spec.dataset.paper_key,
            "n_codes": spec.quantizer.n_codes if spec.is_saq else None,
            "state_conditioned": spec.quantizer.state_conditioned if spec.is_saq else None,
            "quantizer": ([spec.quantizer.n_codes, spec.quantizer.state_conditioned, list(spec.quantizer.hidden),
                           spec.quantizer.steps] if spec.is_saq else None),
            "seeds": [m["seed"] for m in members], "scores": scores.tolist(),
            "data_sha256": [data_identity(m, inferred) for m in members],
            "mean": float(scores.mean()), "std": float(scores.std()),
            "ci_low": interval.low, "ci_high": interval.high, "confidence": confidence,
            "mean_return": float(np.mean([m["evaluation"]["mean_return"] for m in members])),
            "steps": float(np.mean([m["training"]["steps"] for m in members])),
            "updates_per_second": float(np.mean([m["training"]["updates_per_second"] for m in members])),
            "train_seconds": float(np.mean([m["training"]["train_seconds"] for m in members])),
            "eval_seconds": float(np.mean([m["eval_seconds"] for m in members])),
            "reconstruction_mse": _mean_or_none([x.get("reconstruction_mse") for x in q]),
            "codes_used": _mean_or_none([x.get("codes_used") for x in q]),
            "paper": paper[0] if paper else None, "paper_source": paper[1] if paper else None,
        })
    return rows


def _mean_or_none(values: list[Any]) -> Optional[float]:
    present = [float(v) for v in values if v is not None]
    return float(np.mean(present)) if present else None


def data_identity(result: dict[str, Any], inferred: Optional[dict[str, str]] = None) -> Optional[str]:
    """The SHA-256 of the episodes a run trained on: recorded, else ``inferred`` (see
    :func:`infer_unrecorded_identities`), else ``None`` (recorded before runs kept it)."""
    return (result.get("data") or {}).get("sha256") or (inferred or {}).get(result["run_id"])


def _episodes_summary(result: dict[str, Any]) -> tuple[Any, ...]:
    info = result.get("data") or {}
    return result["dataset"], info.get("transitions"), info.get("episodes"), info.get("mean_return")


def infer_unrecorded_identities(results: list[dict[str, Any]]) -> dict[str, str]:
    """``run_id -> SHA-256`` for runs recorded before run records kept the episodes' SHA-256 whose
    dataset, transitions, episodes and mean return (a float, to the last bit) equal those of
    exactly one recorded set: the same episodes, written again (``--agent-seed model`` writes the
    standard suite's first generation again). A run matching no set, or several, stays ``None``."""
    recorded: dict[tuple[Any, ...], set[str]] = {}
    for r in results:
        sha = data_identity(r)
        if sha is not None:
            recorded.setdefault(_episodes_summary(r), set()).add(sha)
    inferred = {}
    for r in results:
        matches = recorded.get(_episodes_summary(r), set())
        if data_identity(r) is None and len(matches) == 1 and None not in _episodes_summary(r):
            inferred[r["run_id"]] = next(iter(matches))
    return inferred


def data_rows(results: list[dict[str, Any]],
              inferred: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
    """Per dataset, one row per distinct set of episodes its runs trained on (most runs first):
    the same name can hold different episodes when the data were generated again. ``inferred`` as
    in :func:`aggregate`."""
    if inferred is None:
        inferred = infer_unrecorded_identities(results)
    groups: dict[tuple[str, Optional[str]], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], data_identity(r, inferred)), []).append(r)
    rows = []
    for (dataset, sha), members in groups.items():
        info = members[0].get("data") or {}
        rows.append({"dataset": dataset, "sha256": sha, "transitions": info.get("transitions"),
                     "episodes": info.get("episodes"), "mean_return": info.get("mean_return"),
                     "n_runs": len(members), "runs": [m["run_id"] for m in members],
                     "n_inferred": sum(m["run_id"] in inferred for m in members)})
    order = list(dict.fromkeys(r["dataset"] for r in results))
    rows.sort(key=lambda row: (order.index(row["dataset"]), -row["n_runs"]))
    return rows


def _main_data(data: list[dict[str, Any]]) -> dict[str, Optional[str]]:
    """Each dataset's most used set of episodes (the first row of :func:`data_rows`)."""
    main: dict[str, Optional[str]] = {}
    for row in data:
        main.setdefault(row["dataset"], row["sha256"])
    return main


def pair_rows(rows: list[dict[str, Any]], confidence: float = 0.95, reps: int = BOOTSTRAP_REPS,
              seed: int = 0) -> list[dict[str, Any]]:
    """X against SAQ-X per dataset where both finished: means, intervals, the difference with its
    bootstrap interval, the updates and training seconds of each, and the paper's difference."""
    by_key = {(r["dataset"], r["label"]): r for r in rows}
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        for base, saq in pair_labels(rows):
            if (ds, base) not in by_key or (ds, saq) not in by_key:
                continue
            x, y = by_key[(ds, base)], by_key[(ds, saq)]
            diff = bootstrap_difference_ci(x["scores"], y["scores"], confidence, reps, seed)
            paper_x = x["paper"]
            paper_base = base
            if paper_x is None and y["algo"] in PAPER_BASE:
                found = paper_number(y["paper_key"], PAPER_BASE[y["algo"]])
                paper_x, paper_base = (found[0], PAPER_BASE[y["algo"]]) if found else (None, base)
            out.append({
                "dataset": ds, "x": base, "saq_x": saq,
                "x_mean": x["mean"], "x_ci": [x["ci_low"], x["ci_high"]], "x_n": len(x["seeds"]),
                "saq_mean": y["mean"], "saq_ci": [y["ci_low"], y["ci_high"]], "saq_n": len(y["seeds"]),
                "difference": diff.point, "difference_ci": [diff.low, diff.high],
                "x_steps": x["steps"], "saq_steps": y["steps"],
                "x_train_seconds": x["train_seconds"], "saq_train_seconds": y["train_seconds"],
                "paper_difference": (y["paper"] - paper_x) if (y["paper"] is not None and paper_x is not None)
                else None,
                "paper_base": paper_base,
            })
    return out


def _against_base(rows: list[dict[str, Any]], base_key: Callable[[dict[str, Any]], Any],
                  is_base: Callable[[dict[str, Any]], bool], names: tuple[str, str], confidence: float,
                  reps: int, seed: int) -> list[dict[str, Any]]:
    """Each group minus the base group (``is_base``) with the same ``base_key``: the seed means'
    difference with the same bootstrap interval as :func:`pair_rows`. ``names``: the output's
    keys for the base and the compared group."""
    bases = {base_key(r): r for r in rows if is_base(r)}
    base_name, other_name = names
    out = []
    for row in rows:
        base = bases.get(base_key(row))
        if base is None or is_base(row):
            continue
        diff = bootstrap_difference_ci(base["scores"], row["scores"], confidence, reps, seed)
        out.append({"dataset": row["dataset"], base_name: base["label"], other_name: row["label"],
                    f"{base_name}_mean": base["mean"], f"{base_name}_n": len(base["seeds"]),
                    f"{other_name}_mean": row["mean"], f"{other_name}_n": len(row["seeds"]),
                    "difference": diff.point, "difference_ci": [diff.low, diff.high]})
    return out


def against_saq_bc_rows(rows: list[dict[str, Any]], confidence: float = 0.95, reps: int = BOOTSTRAP_REPS,
                        seed: int = 0) -> list[dict[str, Any]]:
    """Each SAQ-CQL / SAQ-IQL / SAQ-BRAC group against SAQ-BC on the same dataset and the same
    quantizer (K, state conditioning, size, fit updates): what the RL adds to imitating the codes
    (SAQ eq. 8's policy)."""
    return _against_base(rows, lambda r: (r["dataset"], json.dumps(r["quantizer"])),
                         lambda r: r["algo"] == "SAQ-BC", ("saq_bc", "saq_x"), confidence, reps, seed)


def variant_rows(rows: list[dict[str, Any]], reference_labels: set[str], confidence: float = 0.95,
                 reps: int = BOOTSTRAP_REPS, seed: int = 0) -> list[dict[str, Any]]:
    """An ablation's answer: each variant group (another K, no state, another quantizer budget,
    another acting rule) minus the reference group of the same algorithm on the same dataset
    (``reference_labels``, from :func:`~benchmarks.harness.spec.is_ablation_reference`)."""
    return _against_base(rows, lambda r: (r["dataset"], r["algo"]), lambda r: r["label"] in reference_labels,
                         ("reference", "variant"), confidence, reps, seed)


# ---------------------------------------------------------------------------------- markdown
def _interval(mean: float, low: float, high: float, n: int, digits: int = 1) -> str:
    """``mean [low, high]``; one value has no interval to show."""
    if n <= 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _cell(row: dict[str, Any]) -> str:
    n = len(row["seeds"])
    extra = [f"n={n}"] + ([f"paper {row['paper']:.1f}"] if row["paper"] is not None else [])
    return f"{_interval(row['mean'], row['ci_low'], row['ci_high'], n)} ({'; '.join(extra)})"


def _seed_cell(row: dict[str, Any], main_data: Optional[dict[str, Optional[str]]] = None) -> str:
    """``0: 40.0 / 1: 37.9 / 2: 43.0``: the group's scores by seed, lowest seed first; ``*`` marks a
    run trained on other episodes than most runs of its dataset (``main_data``)."""
    main = (main_data or {}).get(row["dataset"], None)
    ids = row.get("data_sha256") or [None] * len(row["seeds"])
    marked = [(seed, score, "*" if main_data is not None and sha != main else "")
              for seed, score, sha in zip(row["seeds"], row["scores"], ids)]
    return " / ".join(f"{seed}: {score:.1f}{mark}" for seed, score, mark in sorted(marked))


def markdown(suite: str, rows: list[dict[str, Any]], failures: dict[str, str], command: str,
             missing: int = 0, pairs: Optional[list[dict[str, Any]]] = None,
             against_saq_bc: Optional[list[dict[str, Any]]] = None,
             variants: Optional[list[dict[str, Any]]] = None,
             wall_clock: Optional[list[dict[str, Any]]] = None,
             aggregate_result: Optional[AggregateResult] = None, aggregate_note: Optional[str] = None,
             confidence: float = 0.95, reps: int = BOOTSTRAP_REPS,
             data: Optional[list[dict[str, Any]]] = None,
             grid_time: Optional[dict[str, Any]] = None) -> str:
    """The ``results.md`` text."""
    info = machine()
    load = f"{info['load_1min']:.1f}" if info["load_1min"] is not None else "?"
    pct = f"{100 * confidence:g}%"
    lines = [
        f"# Benchmark harness: suite `{suite}`",
        "",
        f"Command: `{command}`  ",
        f"Written {_dt.datetime.now().isoformat(timespec='minutes')} on {platform.node()} "
        f"({info['cpus']} CPUs, 1-min load {load} at report time).",
        "",
        "**What was measured.** Each run trains one algorithm on one dataset with one seed for a fixed "
        "number of gradient updates (the same for X and SAQ-X, with the same network sizes), then is "
        "scored by a final evaluation. Score: D4RL-style normalized return (0 = random, 100 = the "
        "dataset's expert reference) for locomotion; success rate in % for robomimic-style tasks. "
        "Training seconds are wall-clock time of the updates only (evaluation excluded), measured on "
        "this machine while other runs of the grid shared its cores, so they compare algorithms run "
        "under the same conditions, not absolute speeds.",
        "",
        f"**Intervals.** `mean [low, high]`: mean over seeds with a {pct} percentile-bootstrap interval "
        f"over seeds ({reps:,} resamples); `n` seeds finished (one seed: no interval). With 3 seeds "
        "such an interval is narrow and optimistic: read it as the spread of the seeds we ran. "
        "`paper`: the paper's number on the original D4RL / robomimic dataset (SAQ Tables 2, 4, 5; "
        "ARQ Table A.4); our datasets are generated stand-ins and our budgets are far shorter, so "
        "compare the X vs SAQ-X ordering, not the absolute values.",
        "",
        "Per-seed results: `per_seed` in `results.json` (score, updates, training seconds, learning "
        "curve of every run) and one file per run in `runs/<run_id>.json`.",
        "",
    ]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    by_key = {(r["dataset"], r["label"]): r for r in rows}
    def dataset_table(cell: Callable[[dict[str, Any]], str]) -> list[str]:
        """One row per dataset, one column per group, ``cell`` of each finished group."""
        rows = ["| dataset | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for ds in datasets:
            cells = [cell(by_key[(ds, lab)]) if (ds, lab) in by_key else "-" for lab in labels]
            rows.append(f"| {ds} | " + " | ".join(cells) + " |")
        return rows

    lines += ["## Scores per dataset", ""] + dataset_table(_cell)
    main_data = _main_data(data or [])
    mixed = len(data or []) > len(main_data)  # some dataset's runs trained on different episodes
    lines += ["", "## Scores per seed", "",
              "Every finished run's final score, `seed: score`, in seed order; a seed not listed has not "
              "finished." + (" `*`: trained on other episodes of the dataset than its other runs (see "
                             "*Data*)." if mixed else ""), ""]
    lines += dataset_table(lambda row: _seed_cell(row, main_data if mixed else None))

    if pairs:
        lines += ["", "## SAQ-X against X at equal gradient updates", "",
                  "Same data, networks and number of updates. SAQ-X − X: difference of the seed means "
                  f"with a {pct} bootstrap interval (the two algorithms' seeds resampled independently). "
                  "TD3+BC is the closest continuous behaviour-regularised method d3rlpy has and stands in "
                  "for the paper's BRAC baseline of SAQ-BRAC; the paper's difference for that pair is "
                  "SAQ-BRAC − BRAC.",
                  "", "| dataset | X | SAQ-X | X score | SAQ-X score | SAQ-X − X | updates X / SAQ-X | "
                  "train s X / SAQ-X | paper's SAQ-X − X |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for p in pairs:
            n = min(p["x_n"], p["saq_n"])
            paper = "-" if p["paper_difference"] is None else (
                f"{p['paper_difference']:+.1f}" + (f" (vs {p['paper_base']})" if p["paper_base"] != p["x"] else ""))
            lines.append(
                f"| {p['dataset']} | {p['x']} | {p['saq_x']} | "
                f"{_interval(p['x_mean'], *p['x_ci'], p['x_n'])} (n={p['x_n']}) | "
                f"{_interval(p['saq_mean'], *p['saq_ci'], p['saq_n'])} (n={p['saq_n']}) | "
                f"{_signed_interval(p['difference'], *p['difference_ci'], n)} | "
                f"{p['x_steps']:.0f} / {p['saq_steps']:.0f} | "
                f"{p['x_train_seconds']:.0f} / {p['saq_train_seconds']:.0f} | {paper} |")

    if against_saq_bc:
        lines += _difference_lines(
            "SAQ-X against SAQ-BC on the same quantizer",
            "What the offline RL adds to imitating the codes: SAQ-X − SAQ-BC, same data, quantizer and "
            f"number of updates, with a {pct} bootstrap interval (seeds resampled independently).",
            against_saq_bc, ("saq_bc", "saq_x"), ("SAQ-BC", "SAQ-X"))
    if variants:
        lines += _difference_lines(
            "Each variant against the ablation's reference",
            "Variant − reference: the same algorithm, data and number of updates with one setting changed, "
            f"with a {pct} bootstrap interval (seeds resampled independently).",
            variants, ("reference", "variant"), ("reference", "variant"))

    lines += ["", "## Aggregate across datasets (IQM)", ""]
    lines += _aggregate_lines(aggregate_result, aggregate_note, pct)

    if wall_clock:
        lines += ["", "## At equal wall-clock", "",
                  "Per pair, T = the mean training seconds the faster of X and SAQ-X needed for its whole "
                  "update budget. The faster one is scored by its final evaluation; the slower one by the "
                  "last point of each seed's learning curve at or before T (curve points use fewer "
                  "evaluation episodes than the final score), averaged over the seeds that have one. "
                  "\"no point yet\": the slower one's first curve point came after T.",
                  "", "| dataset | X | SAQ-X | faster | T (s) | faster: final score (updates) | "
                  "slower at T: score (updates, s of the point, seeds) | slower after its whole budget: "
                  "score (s) | SAQ-X − X at T |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for w in wall_clock:
            fast = w["fast_score"]
            fast_text = f"{_interval(fast['point'], fast['low'], fast['high'], fast['n'])} ({w['fast_steps']:.0f})"
            if w["slow_score"] is None:
                slow_text, diff = "no point yet", "-"
            else:
                slow_text = (f"{w['slow_score']:.1f} ({w['slow_step']:.0f}, {w['slow_seconds']:.0f} s, "
                             f"{w['slow_n']}/{w['slow_total']})")
                sign = 1.0 if w["faster"] == w["saq_x"] else -1.0
                diff = f"{sign * (fast['point'] - w['slow_score']):+.1f}"
            lines.append(
                f"| {w['dataset']} | {w['x']} | {w['saq_x']} | {w['faster']} | {w['seconds']:.0f} | "
                f"{fast_text} | {slow_text} | {w['slow_final_score']:.1f} ({w['slow_train_seconds']:.0f} s) | "
                f"{diff} |")

    if data:
        lines += ["", "## Data", "",
                  "The episodes each dataset's runs trained on, by their SHA-256 (`not recorded`: runs "
                  "written before run records kept it; such runs count under a recorded set whose "
                  "transitions, episodes and mean return are exactly theirs). A dataset with more than "
                  "one row was generated again between its runs; the first row holds most of its runs, "
                  "the runs of every other row are listed and marked `*` above.",
                  "", "| dataset | episodes' SHA-256 | transitions | episodes | mean return | runs |",
                  "|---|---|---|---|---|---|"]
        for row in data:
            sha = f"`{row['sha256'][:16]}`" if row["sha256"] else "not recorded"
            if row.get("n_inferred"):
                sha += (f" ({row['n_inferred']} runs recorded without it, same transitions, episodes and "
                        "mean return)")
            runs_text = (str(row["n_runs"]) if main_data[row["dataset"]] == row["sha256"]
                         else f"{row['n_runs']}: " + ", ".join(f"`{run}`" for run in row["runs"]))
            mean_return = "-" if row["mean_return"] is None else f"{row['mean_return']:.1f}"
            lines.append(f"| {row['dataset']} | {sha} | {row['transitions'] or '-'} | {row['episodes'] or '-'} | "
                         f"{mean_return} | {runs_text} |")

    if grid_time:
        lines += ["", "## Machine time", "",
                  f"The grid's invocations on this folder (`{LEDGER}`) took **{grid_time['hours']:.2f} hours** of "
                  f"wall-clock time in all ({grid_time['invocations']} invocations, {grid_time['first']} to "
                  f"{grid_time['last']}), in which they finished {grid_time['runs']} runs and "
                  f"{grid_time['artifacts']} shared artifacts. Runs finished before the ledger existed, or "
                  "in another folder, are not in it.", "",
                  "| CPU | hours | invocations | runs | artifacts |", "|---|---|---|---|---|"]
        lines += [f"| {p['cpu']} | {p['hours']:.2f} | {p['invocations']} | {p['runs']} | {p['artifacts']} |"
                  for p in grid_time["by_cpu"]]

    lines += ["", "## Every group", "",
              "| dataset | algorithm | metric | score (mean ± std) | seeds | paper | mean return | updates | "
              "updates/s | train s | eval s | quantizer recon. MSE / codes used |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = f"{r['paper']:.1f} ({r['paper_source']})" if r["paper"] is not None else "-"
        quant = (f"{r['reconstruction_mse']:.4f} / {r['codes_used']:.0f}"
                 if r["reconstruction_mse"] is not None else "-")
        lines.append(
            f"| {r['dataset']} | {r['label']} | {METRIC_NAMES[r['metric']]} | {r['mean']:.1f} ± {r['std']:.1f} | "
            f"{','.join(str(s) for s in r['seeds'])} | {paper} | {r['mean_return']:.1f} | {r['steps']:.0f} | "
            f"{r['updates_per_second']:.1f} | {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} | {quant} |"
        )
    if failures or missing:
        lines += ["", "## Not finished", ""]
        lines += [f"- `{run_id}`: {error}" for run_id, error in failures.items()]
        if missing - len(failures) > 0:
            lines.append(f"- {missing - len(failures)} run(s) not run yet")
    return "\n".join(lines) + "\n"


def _difference_lines(title: str, intro: str, entries: list[dict[str, Any]], keys: tuple[str, str],
                      columns: tuple[str, str]) -> list[str]:
    """A section of :func:`_against_base` rows: both groups, their means and the difference."""
    base, other = keys
    lines = ["", f"## {title}", "", intro, "",
             f"| dataset | {columns[0]} | {columns[1]} | {columns[0]} score | {columns[1]} score | "
             f"{columns[1]} − {columns[0]} |", "|---|---|---|---|---|---|"]
    for e in entries:
        n = min(e[f"{base}_n"], e[f"{other}_n"])
        lines.append(f"| {e['dataset']} | {e[base]} | {e[other]} | {e[f'{base}_mean']:.1f} (n={e[f'{base}_n']}) | "
                     f"{e[f'{other}_mean']:.1f} (n={e[f'{other}_n']}) | "
                     f"{_signed_interval(e['difference'], *e['difference_ci'], n)} |")
    return lines


def _signed_interval(value: float, low: float, high: float, n: int) -> str:
    if n <= 1:
        return f"{value:+.1f}"
    return f"{value:+.1f} [{low:+.1f}, {high:+.1f}]"


def _aggregate_lines(result: Optional[AggregateResult], note: Optional[str], pct: str) -> list[str]:
    if result is None:
        return [f"Not computed: {note or 'no finished runs'}."]
    lines = [
        f"Interquartile mean (the mean of the middle 50% of all seed x dataset scores) over "
        f"{len(result.tasks)} dataset(s) ({', '.join(result.tasks)}), with {pct} stratified-bootstrap "
        f"intervals (seeds resampled within each dataset, {result.reps:,} resamples), computed with rliable "
        "(Agarwal et al., NeurIPS 2021). Locomotion normalized scores and Lift success rates are both on "
        "a 0-100 scale, so they are pooled as they are. Each algorithm enters with the seeds it finished "
        "on every dataset (a complete seeds x datasets matrix); runs of other seeds wait until their seed "
        "has finished everywhere.",
        "",
    ]
    if result.iqm:
        lines += ["| algorithm | IQM | seeds | scores pooled |", "|---|---|---|---|"]
        for label, iv in sorted(result.iqm.items(), key=lambda item: -item[1].point):
            lines.append(f"| {label} | {_interval(iv.point, iv.low, iv.high, len(result.seeds[label]))} | "
                         f"{','.join(map(str, result.seeds[label]))} | {iv.n} |")
    else:
        lines.append("No algorithm has a complete seeds x datasets matrix yet.")
    if result.dropped:
        lines += ["", "Runs not in the aggregate yet:", ""]
        lines += [f"- {label}: {reason}" for label, reason in result.dropped.items()]
    if result.excluded:
        lines += ["", "Left out of the aggregate:", ""]
        lines += [f"- {label}: {reason}" for label, reason in result.excluded.items()]
    if result.improvement:
        lines += ["", f"Probability of improvement P(SAQ-X > X): the chance that a run of SAQ-X scores higher "
                  f"than a run of X on a dataset picked at random (Mann-Whitney U, averaged over datasets), "
                  f"with {pct} stratified-bootstrap intervals ({result.improvement_reps:,} resamples). 0.5 = no "
                  "difference.", "",
                  "| pair | P(SAQ-X > X) |", "|---|---|"]
        for (x, y), iv in result.improvement.items():
            lines.append(f"| {y} vs {x} | {_interval(iv.point, iv.low, iv.high, iv.n, digits=2)} |")
    if result.improvement_note:
        lines += ["", f"Probability of improvement: {result.improvement_note}."]
    return lines


# ---------------------------------------------------------------------------------- plots
#: One learning-curve line: x (seed mean), y (seed mean), y min and y max over seeds, seeds.
Band = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def curve_bands(records: Sequence[dict[str, Any]], x_key: str) -> dict[str, dict[str, Band]]:
    """Per dataset and label, the curves of its seeds combined at matching indices (truncated to
    the shortest): x averaged (``step`` or ``seconds``), score mean, min and max over seeds."""
    panels: dict[str, dict[str, Band]] = {}
    for ds in dict.fromkeys(r["dataset"] for r in records):
        members = [r for r in records if r["dataset"] == ds]
        for label in dict.fromkeys(r["label"] for r in members):
            curves = [r["curve"] for r in members if r["label"] == label and r["curve"]]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            xs = np.array([[p[x_key] for p in c[:n]] for c in curves], dtype=float)
            ys = np.array([[p["score"] for p in c[:n]] for c in curves], dtype=float)
            panels.setdefault(ds, {})[label] = (xs.mean(0), ys.mean(0), ys.min(0), ys.max(0), len(curves))
    return panels


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def plot_curve_bands(records: Sequence[dict[str, Any]], path: Path, x_key: str, xlabel: str) -> bool:
    """One panel per dataset, one line per algorithm (seed mean) with a min-max band over seeds;
    ``False`` (nothing written) when no run has a curve."""
    panels = curve_bands(records, x_key)
    if not panels:
        return False
    metrics = {r["dataset"]: r.get("metric") for r in records}
    colors = _colors(list(dict.fromkeys(r["label"] for r in records)))
    plt = pyplot()
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for axis, (ds, lines) in zip(axes.ravel(), panels.items()):
        for label, (x, mean, low, high, n) in lines.items():
            axis.plot(x, mean, marker="o", ms=3, color=colors[label], label=f"{label} (n={n})")
            if n > 1:
                axis.fill_between(x, low, high, color=colors[label], alpha=0.15, lw=0)
        axis.set(title=ds, xlabel=xlabel, ylabel=METRIC_NAMES.get(metrics.get(ds) or "", "score"))
        axis.legend(fontsize=7)
    for axis in axes.ravel()[len(panels):]:
        axis.set_visible(False)
    figure.suptitle("line: mean over seeds; band: min-max over seeds", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)
    return True


def plot_learning_curves(records: Sequence[dict[str, Any]], path: Path) -> bool:
    """Score against gradient steps per dataset (seed mean, min-max band)."""
    return plot_curve_bands(records, path, "step", "gradient steps")


def plot_wall_clock_curves(records: Sequence[dict[str, Any]], path: Path) -> bool:
    """Score against training seconds per dataset (seed mean at matching curve points, seconds
    averaged; evaluation time excluded)."""
    return plot_curve_bands(records, path, "seconds", "training seconds (evaluation excluded)")


def plot_iqm(result: AggregateResult, path: Path) -> bool:
    """The IQM of each algorithm across datasets with its interval; ``False`` when none."""
    if not result.iqm:
        return False
    items = sorted(result.iqm.items(), key=lambda item: item[1].point)
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 0.45 * len(items) + 1.5))
    y = np.arange(len(items))
    points = np.array([iv.point for _, iv in items])
    errors = np.array([[iv.point - iv.low for _, iv in items], [iv.high - iv.point for _, iv in items]])
    axis.errorbar(points, y, xerr=errors, fmt="o", capsize=4)
    axis.set_yticks(y, [label for label, _ in items], fontsize=8)
    axis.set(xlabel="IQM of scores (0-100 scale)",
             title=f"IQM across {len(result.tasks)} dataset(s), {100 * result.confidence:g}% stratified "
                   "bootstrap CI")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)
    return True


def plot_codebook_size(rows: list[dict[str, Any]], path: Path) -> bool:
    """Score against K per SAQ algorithm (and SAQ Table 4); ``False`` if the grid has one K."""
    series: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    for r in rows:
        if r["n_codes"] is not None and r["state_conditioned"]:
            series.setdefault((r["dataset"], r["algo"]), []).append((r["n_codes"], r["mean"], r["std"]))
    series = {k: sorted(v) for k, v in series.items() if len({p[0] for p in v}) > 1}
    if not series:
        return False
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for (ds, algo), points in series.items():
        ks = [p[0] for p in points]
        line = axis.errorbar(ks, [p[1] for p in points], yerr=[p[2] for p in points], marker="o", capsize=3,
                             label=f"{algo} ({ds})")
        if algo in SAQ_TABLE4:
            axis.plot(list(SAQ_TABLE4[algo]), list(SAQ_TABLE4[algo].values()), ls="--",
                      color=line[0].get_color(), alpha=0.6, label=f"{algo} paper (hopper-expert-v2)")
    axis.set_xscale("log", base=2)
    axis.set(xlabel="codebook size K", ylabel="normalized score", title="SAQ: score vs codebook size")
    axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)
    return True


def plot_penalty_gap(results: list[dict[str, Any]], path: Path) -> bool:
    """SAQ Figure 2: CQL's sampled penalty vs an accurate reference, and SAQ-CQL's exact one."""
    tracked = [r for r in results if r.get("penalty")]
    if not tracked:
        return False
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for r in tracked:
        steps = [p["step"] for p in r["penalty"]]
        name = f"{r['dataset']} seed {r['seed']}"
        if r["algo"] == "CQL":
            sampled = np.array([p["sampled_penalty"] for p in r["penalty"]])
            reference = np.array([p["reference_penalty"] for p in r["penalty"]])
            axes[0].plot(steps, sampled, marker="o", label=f"sampled (3x10 IS), {name}")
            axes[0].plot(steps, reference, ls="--", label=f"reference (1024 IS), {name}")
            axes[1].plot(steps, reference - sampled, marker="o", label=name)
        else:
            axes[2].plot(steps, [p["exact_penalty"] for p in r["penalty"]], marker="o", label=f"exact, {name}")
    axes[0].set(title="continuous CQL penalty", xlabel="gradient steps", ylabel="E[log∫exp Q − Q(s,a)]")
    axes[1].set(title="gap: reference − sampled estimate", xlabel="gradient steps", ylabel="nats")
    axes[1].axhline(0, color="gray", lw=0.8)
    axes[2].set(title="SAQ-CQL penalty (exact over K codes)", xlabel="gradient steps",
                ylabel="E[logsumexp Q − Q(s,k)]")
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)
    return True


def plot_state_ablation(rows: list[dict[str, Any]], path: Path) -> bool:
    """Bars of SAQ-X with and without state conditioning at equal K (SAQ Table 3)."""
    pairs: dict[tuple[str, str, int], dict[bool, dict[str, Any]]] = {}
    for r in rows:
        if r["n_codes"] is not None:
            pairs.setdefault((r["dataset"], r["algo"], r["n_codes"]), {})[bool(r["state_conditioned"])] = r
    pairs = {k: v for k, v in pairs.items() if len(v) == 2}
    if not pairs:
        return False
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    names = [f"{algo}\n{ds} K={k}" for ds, algo, k in pairs]
    x = np.arange(len(pairs))
    for offset, conditioned, title in ((-0.2, True, "state-conditioned"), (0.2, False, "no state")):
        values = [v[conditioned] for v in pairs.values()]
        axis.bar(x + offset, [v["mean"] for v in values], 0.4, yerr=[v["std"] for v in values], label=title)
    axis.set_xticks(x, names, fontsize=7)
    axis.set(ylabel="normalized score", title="SAQ: state vs no-state quantizer (equal K)")
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)
    return True


def write_report(runs: list[RunSpec], out: Path, suite: str, command: str, *, confidence: float = 0.95,
                 bootstrap_reps: int = BOOTSTRAP_REPS, aggregate_reps: int = AGGREGATE_REPS,
                 improvement_reps: int = IMPROVEMENT_REPS, seed: int = 0,
                 report_dir: Optional[Path] = None) -> dict[str, Any]:
    """Write ``results.json``, ``results.md`` and the plots of the finished ``runs`` of ``out``
    into ``report_dir`` (default ``out``; suites sharing one folder of runs report apart).

    ``confidence``, ``*_reps`` and ``seed``: the bootstrap intervals (deterministic for a seed).
    Without rliable the aggregate is left out (the report says how to install it); everything else
    is still written.
    """
    results, failures = collect(runs, out)
    folder = report_dir if report_dir is not None else out
    folder.mkdir(parents=True, exist_ok=True)
    records = [per_seed_record(r) for r in results]
    inferred = infer_unrecorded_identities(results)
    rows = aggregate(results, confidence, bootstrap_reps, seed, inferred)
    pairs = pair_rows(rows, confidence, bootstrap_reps, seed)
    against_bc = against_saq_bc_rows(rows, confidence, bootstrap_reps, seed)
    variants = variant_rows(rows, {spec.label for spec in runs if is_ablation_reference(suite, spec)},
                            confidence, bootstrap_reps, seed)
    wall_clock = equal_wall_clock(records, confidence, bootstrap_reps, seed)
    aggregate_result: Optional[AggregateResult] = None
    aggregate_note: Optional[str] = None
    if records:
        try:
            aggregate_result = aggregate_iqm(records, confidence, aggregate_reps, seed,
                                             improvement_reps=improvement_reps)
        except MissingDependencyError as error:
            aggregate_note = str(error)
    data = data_rows(results, inferred)
    grid_time = summarize_ledger(read_ledger(out))
    text = markdown(suite, rows, failures, command, missing=len(runs) - len(results), pairs=pairs,
                    against_saq_bc=against_bc, variants=variants, wall_clock=wall_clock,
                    aggregate_result=aggregate_result, aggregate_note=aggregate_note, confidence=confidence,
                    reps=bootstrap_reps, data=data, grid_time=grid_time)
    document = {
        "suite": suite, "command": command,
        "written": _dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
        "n_runs": len(runs), "n_finished": len(results), "failures": failures,
        "statistics": {"confidence": confidence, "bootstrap_reps": bootstrap_reps,
                       "aggregate_reps": aggregate_reps, "improvement_reps": improvement_reps, "seed": seed,
                       "per_dataset": "percentile bootstrap of the mean over seeds"},
        "summary": rows, "pairs": pairs, "against_saq_bc": against_bc, "variants": variants,
        "equal_wall_clock": wall_clock,
        "data": data, "grid_time": grid_time,
        "aggregate": aggregate_result.to_dict() if aggregate_result is not None else {"skipped": aggregate_note},
        "per_seed": records, "runs": results,
    }
    with atomic_output(folder / "results.json") as tmp:
        tmp.write_text(json.dumps(document, indent=1))
    with atomic_output(folder / "results.md") as tmp:
        tmp.write_text(text)
    plots = []
    if plot_learning_curves(records, folder / "learning_curves.png"):
        plots.append("learning_curves.png")
    if plot_wall_clock_curves(records, folder / "wall_clock_curves.png"):
        plots.append("wall_clock_curves.png")
    if aggregate_result is not None and plot_iqm(aggregate_result, folder / "iqm.png"):
        plots.append("iqm.png")
    if plot_codebook_size(rows, folder / "codebook_size.png"):
        plots.append("codebook_size.png")
    if plot_penalty_gap(results, folder / "penalty_gap.png"):
        plots.append("penalty_gap.png")
    if plot_state_ablation(rows, folder / "state_ablation.png"):
        plots.append("state_ablation.png")
    return {"markdown": text, "plots": plots, "n_finished": len(results), "failures": failures}
