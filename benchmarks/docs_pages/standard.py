"""The standard suite's page (``docs/benchmarks/standard.md``) and the README's results summary,
both from ``benchmarks/results/harness/standard/results.json`` and its ``grid_time.json``."""

from __future__ import annotations

import re
from typing import Any

from ..harness.markdown import (
    dataset_table,
    difference_table,
    format_interval,
    format_signed_interval,
    improvement_table,
    iqm_table,
    mean_cell,
    pairs_table,
    seed_cell,
)
from .common import RESULTS_NAME, Results, code, commas, image, table
from .harness import details, ledger_table, run_command, run_hours_table, source, time_detail

__all__ = ["STANDARD", "readme_block", "standard_page"]

#: The standard suite's folder under the results root.
STANDARD = "harness/standard"
_REPORT = f"{STANDARD}/results.json"


def _pair_columns(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((p["x"], p["saq_x"]) for p in doc["pairs"]))


def _claim_rows(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per dataset and pair: ``X mean → SAQ-X mean: SAQ-X − X [95% CI]``."""
    columns = _pair_columns(doc)
    by_key = {(p["dataset"], p["x"], p["saq_x"]): p for p in doc["pairs"]}
    rows = []
    for dataset in dict.fromkeys(p["dataset"] for p in doc["pairs"]):
        cells = [dataset]
        for x, saq in columns:
            p = by_key.get((dataset, x, saq))
            cells.append("-" if p is None else
                         f"{p['x_mean']:.1f} → {p['saq_mean']:.1f}: "
                         f"{format_signed_interval(p['difference'], *p['difference_ci'], min(p['x_n'], p['saq_n']))}")
        rows.append(cells)
    return ["dataset"] + [f"{x} → {saq}" for x, saq in columns], rows


def _aggregate_sentence(doc: dict[str, Any]) -> str:
    aggregate = doc["aggregate"]
    iqm = sorted(aggregate["iqm"].items(), key=lambda item: -item[1]["point"])
    pct = f"{100 * aggregate['confidence']:g}%"
    text = (f"IQM across the {len(aggregate['tasks'])} datasets ({pct} stratified-bootstrap interval): "
            + ", ".join(f"{label} {format_interval(v['point'], v['low'], v['high'], len(v['seeds']))}"
                        for label, v in iqm) + ".")
    if aggregate["probability_of_improvement"]:
        text += " P(SAQ-X > X): " + ", ".join(
            f"{p['saq_x']} vs {p['x']} {format_interval(p['point'], p['low'], p['high'], p['n'], digits=2)}"
            for p in aggregate["probability_of_improvement"]) + "."
    return text


def _budget_sentence(doc: dict[str, Any]) -> str:
    steps = sorted({r["spec"]["steps"] for r in doc["runs"]})
    return (f"{len(doc['aggregate']['tasks'])} generated datasets, {len(doc['runs'])} runs, "
            f"{' / '.join(commas(s) for s in steps)} updates per run")


def readme_block(results: Results) -> str:
    """The README's results summary (between its ``results`` markers): one claim table, the
    aggregate in one paragraph, one figure, the command and a link to the full page."""
    doc = results.json(_REPORT)
    header, rows = _claim_rows(doc)
    pct = f"{100 * doc['statistics']['confidence']:g}%"
    lines = [f"**SAQ-X against X on the standard suite** ({_budget_sentence(doc)}; {details(doc)[0]}). "
             f"Each cell: X's seed mean → SAQ-X's seed mean: SAQ-X − X with its {pct} bootstrap interval "
             "(normalized score; lift-mm: success rate in %).", ""]
    lines += table(header, rows)
    lines += ["", _aggregate_sentence(doc), ""]
    if results.exists(f"{STANDARD}/iqm.png"):
        lines += [f"![IQM of each algorithm across the standard suite's datasets]"
                  f"({RESULTS_NAME}/{STANDARD}/iqm.png)", ""]
    lines += ["```bash", "# the data (--agent-seed model: the episodes these runs trained on), then the runs",
              "python -m benchmarks.run --suite standard --prepare-only --agent-seed model --data-dir DIR --zoo ZOO",
              re.sub(r"--data-dir \S+", "--data-dir DIR", run_command(doc)), "```", "",
              f"Source: {code(results.name(_REPORT))}. Seeds, budgets, the machine, the time it took and every "
              "table: [the standard suite](docs/benchmarks/standard.md)."]
    return "\n".join(lines)


def _data_table(doc: dict[str, Any]) -> list[str]:
    rows = [[d["dataset"], f"`{d['sha256'][:16]}`" if d["sha256"] else "not recorded", f"{d['transitions'] or '-'}",
             f"{d['episodes'] or '-'}", "-" if d["mean_return"] is None else f"{d['mean_return']:.1f}",
             str(d["n_runs"])] for d in doc["data"]]
    return table(["dataset", "episodes' SHA-256 (first 16 hex digits)", "transitions", "episodes", "mean return",
                  "runs"], rows)


def standard_page(results: Results) -> str:
    doc = results.json(_REPORT)
    pct = f"{100 * doc['statistics']['confidence']:g}%"
    reps = commas(doc["statistics"]["bootstrap_reps"])
    note = source(results, _REPORT, brief=True)
    labels = list(dict.fromkeys(r["label"] for r in doc["summary"]))
    lines = [
        "# The standard suite: SAQ-X against X", "",
        "The suite that tests the library's claim: each continuous offline RL algorithm X and its SAQ "
        "counterpart SAQ-X train on the same data, with the same networks and the same number of gradient "
        "updates, and are scored by the same evaluation. TD3+BC is the closest continuous behaviour-regularised "
        "method d3rlpy has and stands in for the paper's BRAC as SAQ-BRAC's baseline. The datasets are narrow "
        "stand-ins generated by the package (expert agents of the SB3 zoo on MuJoCo locomotion, and scripted "
        "robosuite Lift demonstrations with three approach paths), not D4RL's or robomimic's own data.", "",
        f"Algorithms: {', '.join(labels)}. Datasets: {', '.join(doc['aggregate']['tasks'])}. "
        "Score: D4RL-style normalized return (0 = random, 100 = the dataset's expert reference); lift-mm: "
        "success rate in %.", "",
        "## How it was run", "",
        f"- Runs: {code(run_command(doc))} (as recorded; `--data-dir` names the folder the data were written to; "
        "the command resumes where it stopped, and `touch <out>/STOP` stops it gracefully).",
        f"- Report: {code(doc['command'])} (rewrites `results.md`, `results.json` and the plots from the "
        "finished runs, training nothing).",
        "- Data: the suite's datasets are written by "
        "`python -m benchmarks.run --suite standard --prepare-only --data-dir DIR --zoo ZOO`; "
        "`--agent-seed model` writes the episodes these runs trained on (their SHA-256 below).",
    ]
    lines += [f"- {d[0].upper()}{d[1:]}." for d in details(doc) if d]
    lines += ["", "The episodes each dataset's runs trained on:", ""] + _data_table(doc)
    lines += [
        "", "## SAQ-X against X", "", note, "",
        f"Seed means with {pct} percentile-bootstrap intervals over seeds ({reps} resamples; n = seeds), and "
        "SAQ-X − X, the difference of the seed means with its bootstrap interval (the two algorithms' seeds "
        "resampled independently). The paper's difference is on the original D4RL or robomimic data at the "
        "authors' budgets: compare the sign, not the size. With 3 to 5 seeds these intervals are narrow and "
        "optimistic; read them as the spread of the seeds that ran.", "",
    ] + pairs_table(doc["pairs"])
    aggregate = doc["aggregate"]
    if aggregate.get("iqm"):
        lines += [
            "", "## Across datasets", "", note, "",
            f"The interquartile mean (IQM) of all seed x dataset scores of each algorithm, with {pct} "
            f"stratified-bootstrap intervals ({commas(aggregate['reps'])} resamples, seeds resampled within each "
            "dataset), and the probability of improvement P(SAQ-X > X): the chance that a run of SAQ-X scores "
            "higher than a run of X on a dataset picked at random "
            f"({commas(aggregate['improvement_reps'])} resamples; 0.5 = no difference). Both from rliable "
            "(Agarwal et al., NeurIPS 2021).", "",
        ] + iqm_table(aggregate) + [""] + improvement_table(aggregate)
        if results.exists(f"{STANDARD}/iqm.png"):
            lines += ["", image("benchmarks", f"{STANDARD}/iqm.png", "IQM of each algorithm with its interval")]
    lines += ["", "## Scores per dataset", "", note, "",
              f"Seed mean with its {pct} bootstrap interval (n seeds; the paper's number on the original data):", ""]
    lines += dataset_table(doc["summary"], mean_cell)
    lines += ["", "Every run's final score, `seed: score`:", ""] + dataset_table(doc["summary"], seed_cell)
    if doc["against_saq_bc"]:
        lines += ["", "## SAQ-X against SAQ-BC", "", note, "",
                  "What the offline RL adds to imitating the codes: SAQ-X − SAQ-BC on the same data and quantizer "
                  f"with its {pct} bootstrap interval.", ""]
        lines += difference_table(doc["against_saq_bc"], ("saq_bc", "saq_x"), ("SAQ-BC", "SAQ-X"))
    lines += ["", "## Learning curves", "", note, "",
              "Score against gradient updates and against training seconds, per dataset (line: mean over seeds; "
              "band: min-max over seeds; curve points use fewer evaluation episodes than the final score).", ""]
    for name, alt in (("learning_curves.png", "score against gradient updates"),
                      ("wall_clock_curves.png", "score against training seconds")):
        if results.exists(f"{STANDARD}/{name}"):
            lines += [image("benchmarks", f"{STANDARD}/{name}", alt), ""]
    if results.exists(f"{STANDARD}/grid_time.json"):
        entries = results.json(f"{STANDARD}/grid_time.json")
        lines += ["## Time", "", f"Source: {code(results.name(f'{STANDARD}/grid_time.json'))}, the grid's time "
                  f"ledger: each invocation of the command records its wall-clock time. {time_detail(entries)}.", ""]
        lines += ledger_table(entries)
        lines += ["", f"The runs' own wall-clock time (training and evaluation; source {code(results.name(_REPORT))}), "
                  "in worker-hours (each run on one worker with one torch thread); shared artifacts (quantizers, "
                  "ARQ's score models and candidate tables) and the time work was repeated after an interrupted "
                  "session are not in it:", ""]
        lines += run_hours_table(doc)
        lines.append("")
    lines += ["## The full report", "",
              f"{code(results.name(f'{STANDARD}/results.md'))} holds every table above plus the equal-wall-clock "
              "view (each pair read at the training time the faster one needed) and every group's speed; "
              f"{code(results.name(f'{STANDARD}/runs/'))} holds one record per run (spec, fingerprint, learning "
              "curve, evaluation returns, machine)."]
    return "\n".join(lines)
