"""The README's kitchen summary: SAQ-X against X on D4RL's human demonstrations, beside the papers,
from ``benchmarks/results/harness/kitchen/results.json``."""

from __future__ import annotations

import re
from typing import Any

from ..harness.markdown import format_interval, format_signed_interval
from .common import Results, code, table
from .harness import details, run_command

__all__ = ["KITCHEN", "kitchen_block", "reading"]

#: The kitchen suite's folder under the results root (observation noise ``dataset``, all 19 demonstrations).
KITCHEN = "harness/kitchen"
_REPORT = f"{KITCHEN}/results.json"
#: The official file's dataset name in the reports (another copy is named after its hash).
_DATASET = "kitchen-complete-v0"


def _paper(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def kitchen_block(results: Results) -> str:
    """One row per pair X / SAQ-X (and ARQ alone): our seed means with the difference's bootstrap
    interval, and the papers' numbers at their 1M updates."""
    if not results.exists(_REPORT):
        return ("**Real human demonstrations (D4RL kitchen-complete)**: no results committed yet "
                "(`python -m benchmarks.run --suite kitchen`).")
    doc = results.json(_REPORT)
    pairs = [p for p in doc["pairs"] if p["dataset"] == _DATASET]
    rows = []
    for p in pairs:
        n = min(p["x_n"], p["saq_n"])
        rows.append([f"{p['x']} → {p['saq_x']}",
                     f"{format_interval(p['x_mean'], *p['x_ci'], p['x_n'])} → "
                     f"{format_interval(p['saq_mean'], *p['saq_ci'], p['saq_n'])}",
                     format_signed_interval(p["difference"], *p["difference_ci"], n),
                     _paper(_paper_x(doc, p)) + " → " + _paper(_paper_of(doc, p["saq_x"]))])
    for row in doc["summary"]:
        if row["dataset"] == _DATASET and row["algo"] == "ARQ":
            rows.append([row["label"], format_interval(row["mean"], row["ci_low"], row["ci_high"], len(row["seeds"])),
                         "-", _paper(row["paper"])])
    pct = f"{100 * doc['statistics']['confidence']:g}%"
    lines = [f"**Real human demonstrations: D4RL kitchen-complete** (19 teleoperated demonstrations, 3,680 "
             f"transitions; {doc['n_finished']} of the grid's {doc['n_runs']} runs finished: {details(doc)[0]}; "
             f"{details(doc)[1]}; the env's observation noise as the data's). "
             f"Normalized score (25 per task done of 4); means over seeds with {pct} bootstrap intervals. The paper "
             "column is SAQ Table 5 (and ARQ Table A.4 for ARQ's policy), at 1M updates on D4RL's own env; "
             "TD3+BC stands in for the paper's BRAC.", ""]
    lines += table(["pair", "ours: X → SAQ-X", "SAQ-X − X", "paper: X → SAQ-X"], rows)
    lines += ["", reading(pairs, pct)]
    lines += ["", "```bash", "# in the robotics virtualenv (the real-benchmark suites page says how to make it)", re.sub(r"--data \S+", "--data kitchen-complete-v0.hdf5", run_command(doc)), "```", "",
              f"Source: {code(results.name(_REPORT))}; every table and the learning curves: "
              "[the real-benchmark suites](docs/benchmarks/real-suites.md)."]
    return "\n".join(lines)


def reading(pairs: list[dict[str, Any]], pct: str) -> str:
    """Where SAQ-X wins, ties and loses, read off the difference's interval (not its mean), and
    whether the paper's difference had the same sign."""
    verdicts = []
    for p in pairs:
        n = min(p["x_n"], p["saq_n"])
        low, high = p["difference_ci"]
        if n < 2:
            single = p["x"] if p["x_n"] < 2 else p["saq_x"]
            verdict = f"{p['difference']:+.1f} with one seed of {single}, no interval yet"
        elif low > 0:
            verdict = "ahead"
        elif high < 0:
            verdict = "behind"
        else:
            verdict = f"level (the {pct} interval of the difference spans 0)"
        paper = p.get("paper_difference")
        if paper is not None:
            verdict += f"; the paper: {'ahead' if paper > 0 else 'behind' if paper < 0 else 'level'} by {abs(paper):.1f}"
        verdicts.append(f"{p['saq_x']} against {p['x']}: {verdict}")
    return ("Reading, from the intervals: " + "; ".join(verdicts) + "." if verdicts
            else "Reading: no pair has both runs yet.")


def _paper_of(doc: dict[str, Any], label: str) -> Any:
    return next((r["paper"] for r in doc["summary"] if r["dataset"] == _DATASET and r["label"] == label), None)


def _paper_x(doc: dict[str, Any], pair: dict[str, Any]) -> Any:
    """The paper's X: the report's, else the paper's base of SAQ-X (BRAC for SAQ-BRAC's TD3+BC)."""
    paper_x = _paper_of(doc, pair["x"])
    if paper_x is None and pair.get("paper_difference") is not None:
        saq = _paper_of(doc, pair["saq_x"])
        paper_x = None if saq is None else saq - pair["paper_difference"]
    return paper_x
