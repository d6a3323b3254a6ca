"""The ``results.md`` text of a grid, from the rows of :mod:`.rows` and the aggregate of
:mod:`.statistics`.

Every number is printed with a fixed format: ``mean [low, high]`` for a seed mean with its
bootstrap interval (:func:`format_interval`), ``+d [+low, +high]`` for a difference
(:func:`format_signed_interval`); one seed has no interval to show. The benchmark pages of the
documentation (:mod:`benchmarks.docs_pages`) format their tables with the same two functions.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Optional

from .ledger import LEDGER
from .statistics import BOOTSTRAP_REPS, AggregateResult

__all__ = ["METRIC_NAMES", "dataset_table", "difference_table", "format_interval", "format_signed_interval",
           "improvement_table", "iqm_table", "main_data", "markdown", "mean_cell", "pairs_table", "seed_cell"]

METRIC_NAMES = {"normalized": "normalized score", "success": "success rate (%)"}


def main_data(data: list[dict[str, Any]]) -> dict[str, Optional[str]]:
    """Each dataset's most used set of episodes (the first row of :func:`~.rows.data_rows`)."""
    main: dict[str, Optional[str]] = {}
    for row in data:
        main.setdefault(row["dataset"], row["sha256"])
    return main


def format_interval(mean: float, low: float, high: float, n: int, digits: int = 1) -> str:
    """``mean [low, high]``; one value has no interval to show."""
    if n <= 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def dataset_table(rows: list[dict[str, Any]], cell: Callable[[dict[str, Any]], str]) -> list[str]:
    """One row per dataset, one column per group (first-seen order), ``cell`` of each finished group
    of :func:`~.rows.aggregate`'s ``rows`` and ``-`` where a group has not finished."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    by_key = {(r["dataset"], r["label"]): r for r in rows}
    lines = ["| dataset | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for ds in datasets:
        cells = [cell(by_key[(ds, lab)]) if (ds, lab) in by_key else "-" for lab in labels]
        lines.append(f"| {ds} | " + " | ".join(cells) + " |")
    return lines


def mean_cell(row: dict[str, Any]) -> str:
    """``mean [low, high] (n=3; paper 98.5)``: a group's seed mean, its interval and the paper's number."""
    n = len(row["seeds"])
    extra = [f"n={n}"] + ([f"paper {row['paper']:.1f}"] if row["paper"] is not None else [])
    return f"{format_interval(row['mean'], row['ci_low'], row['ci_high'], n)} ({'; '.join(extra)})"


def seed_cell(row: dict[str, Any], main_data: Optional[dict[str, Optional[str]]] = None) -> str:
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
             grid_time: Optional[dict[str, Any]] = None, host: Optional[dict[str, Any]] = None) -> str:
    """The ``results.md`` text. ``host``: where the report is written (``host``, ``cpus``,
    ``load_1min`` of :func:`saq_wrappers.app.pipeline.machine`; unknown values print as ``?``)."""
    info = {"host": "?", "cpus": "?", "load_1min": None, **(host or {})}
    load = f"{info['load_1min']:.1f}" if info["load_1min"] is not None else "?"
    pct = f"{100 * confidence:g}%"
    lines = [
        f"# Benchmark harness: suite `{suite}`",
        "",
        f"Command: `{command}`  ",
        f"Written {_dt.datetime.now().isoformat(timespec='minutes')} on {info['host']} "
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
    lines += ["## Scores per dataset", ""] + dataset_table(rows, mean_cell)
    main_sets = main_data(data or [])
    mixed = len(data or []) > len(main_sets)  # some dataset's runs trained on different episodes
    lines += ["", "## Scores per seed", "",
              "Every finished run's final score, `seed: score`, in seed order; a seed not listed has not "
              "finished." + (" `*`: trained on other episodes of the dataset than its other runs (see "
                             "*Data*)." if mixed else ""), ""]
    lines += dataset_table(rows, lambda row: seed_cell(row, main_sets if mixed else None))

    if pairs:
        lines += ["", "## SAQ-X against X at equal gradient updates", "",
                  "Same data, networks and number of updates. SAQ-X − X: difference of the seed means "
                  f"with a {pct} bootstrap interval (the two algorithms' seeds resampled independently). "
                  "TD3+BC is the closest continuous behaviour-regularised method d3rlpy has and stands in "
                  "for the paper's BRAC baseline of SAQ-BRAC; the paper's difference for that pair is "
                  "SAQ-BRAC − BRAC.",
                  ""] + pairs_table(pairs)

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
            fast_text = (f"{format_interval(fast['point'], fast['low'], fast['high'], fast['n'])} "
                         f"({w['fast_steps']:.0f})")
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
            runs_text = (str(row["n_runs"]) if main_sets[row["dataset"]] == row["sha256"]
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


def pairs_table(pairs: list[dict[str, Any]]) -> list[str]:
    """The table of :func:`~.rows.pair_rows`: both seed means with their intervals, SAQ-X − X with its
    interval, the updates and training seconds of each, and the paper's difference."""
    lines = ["| dataset | X | SAQ-X | X score | SAQ-X score | SAQ-X − X | updates X / SAQ-X | "
             "train s X / SAQ-X | paper's SAQ-X − X |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        n = min(p["x_n"], p["saq_n"])
        paper = "-" if p["paper_difference"] is None else (
            f"{p['paper_difference']:+.1f}" + (f" (vs {p['paper_base']})" if p["paper_base"] != p["x"] else ""))
        lines.append(
            f"| {p['dataset']} | {p['x']} | {p['saq_x']} | "
            f"{format_interval(p['x_mean'], *p['x_ci'], p['x_n'])} (n={p['x_n']}) | "
            f"{format_interval(p['saq_mean'], *p['saq_ci'], p['saq_n'])} (n={p['saq_n']}) | "
            f"{format_signed_interval(p['difference'], *p['difference_ci'], n)} | "
            f"{p['x_steps']:.0f} / {p['saq_steps']:.0f} | "
            f"{p['x_train_seconds']:.0f} / {p['saq_train_seconds']:.0f} | {paper} |")
    return lines


def _difference_lines(title: str, intro: str, entries: list[dict[str, Any]], keys: tuple[str, str],
                      columns: tuple[str, str]) -> list[str]:
    """A section of :func:`_against_base` rows: both groups, their means and the difference."""
    return ["", f"## {title}", "", intro, ""] + difference_table(entries, keys, columns)


def difference_table(entries: list[dict[str, Any]], keys: tuple[str, str], columns: tuple[str, str]) -> list[str]:
    """The table of :func:`~.rows.against_saq_bc_rows` or :func:`~.rows.variant_rows`: ``keys`` name
    the base and the compared group in the rows, ``columns`` in the table's header."""
    base, other = keys
    lines = [f"| dataset | {columns[0]} | {columns[1]} | {columns[0]} score | {columns[1]} score | "
             f"{columns[1]} − {columns[0]} |", "|---|---|---|---|---|---|"]
    for e in entries:
        n = min(e[f"{base}_n"], e[f"{other}_n"])
        lines.append(f"| {e['dataset']} | {e[base]} | {e[other]} | {e[f'{base}_mean']:.1f} (n={e[f'{base}_n']}) | "
                     f"{e[f'{other}_mean']:.1f} (n={e[f'{other}_n']}) | "
                     f"{format_signed_interval(e['difference'], *e['difference_ci'], n)} |")
    return lines


def format_signed_interval(value: float, low: float, high: float, n: int) -> str:
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
    summary = result.to_dict()
    if result.iqm:
        lines += iqm_table(summary)
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
                  "difference.", ""] + improvement_table(summary)
    if result.improvement_note:
        lines += ["", f"Probability of improvement: {result.improvement_note}."]
    return lines


def iqm_table(aggregate: dict[str, Any]) -> list[str]:
    """The IQM of each algorithm with its interval, highest first, from
    :meth:`~.statistics.AggregateResult.to_dict` (the ``aggregate`` of ``results.json``)."""
    lines = ["| algorithm | IQM | seeds | scores pooled |", "|---|---|---|---|"]
    for label, iv in sorted(aggregate["iqm"].items(), key=lambda item: -item[1]["point"]):
        lines.append(f"| {label} | {format_interval(iv['point'], iv['low'], iv['high'], len(iv['seeds']))} | "
                     f"{','.join(map(str, iv['seeds']))} | {iv['n']} |")
    return lines


def improvement_table(aggregate: dict[str, Any]) -> list[str]:
    """P(SAQ-X > X) of each pair with its interval, from the same dictionary as :func:`iqm_table`."""
    lines = ["| pair | P(SAQ-X > X) |", "|---|---|"]
    for p in aggregate["probability_of_improvement"]:
        value = format_interval(p["point"], p["low"], p["high"], p["n"], digits=2)
        lines.append(f"| {p['saq_x']} vs {p['x']} | {value} |")
    return lines
