"""Issue 37's acting rule across every SAQ algorithm: one table of each mode-averaged twin against
its plain run, collected from every harness report of the standard and kitchen suites.

The per-report ``variants.md`` fragments hold the same rows, one report at a time (SAQ-BC's and
SAQ-CQL's twins were reported apart from SAQ-IQL's and SAQ-BRAC's); the issue's bound is stated
for all of them together ("not below today's means by more than their intervals"), so this
fragment puts them side by side and reads that bound off each row's interval.
"""

from __future__ import annotations

from typing import Any

from ..harness.markdown import format_signed_interval

from .common import Output, Results, source_note, table

__all__ = ["MODE_RULE_FRAGMENT", "mode_rule_fragment", "twin_entries"]

#: Where the fragment is written, under the docs root.
MODE_RULE_FRAGMENT = "generated/harness/mode_rule.md"
#: The suites whose twins the issue's bound is about, in the table's order.
_SUITES = ("standard", "kitchen")
#: The algorithms in the table's order.
_ALGORITHMS = ("SAQ-BC", "SAQ-CQL", "SAQ-IQL", "SAQ-BRAC")


def _is_twin(entry: dict[str, Any]) -> bool:
    """A variant row whose variant is its reference acting through the rule: the harness labels the
    twin of ``SAQ-X (K=64, ...)`` as ``SAQ-X (K=64, ..., mode-averaged)``."""
    reference: str = entry["reference"]
    return reference.endswith(")") and entry["variant"] == reference[:-1] + ", mode-averaged)"


def _preference(report: str, entry: dict[str, Any]) -> tuple[int, int]:
    """More seeds on both sides first, then fewer folders between the report and its suite."""
    return min(entry["reference_n"], entry["variant_n"]), -report.count("/")


def twin_entries(results: Results) -> list[tuple[str, str, dict[str, Any]]]:
    """``(suite, report, variant row)`` for every twin-against-plain row of the standard and kitchen
    suites' reports, one per (suite, dataset, plain group): where two reports hold the same pair,
    the one with more seeds on both sides, and on a tie the report nearest the suite's folder (the
    twins' own report, not a later one that reuses their runs)."""
    best: dict[tuple[str, str, str], tuple[str, str, dict[str, Any]]] = {}
    for rel in results.files("harness/**/results.json"):
        suite = rel.split("/")[1]
        if suite not in _SUITES:
            continue
        for entry in results.json(rel).get("variants") or []:
            if not _is_twin(entry):
                continue
            key = (suite, entry["dataset"], entry["reference"])
            held = best.get(key)
            if held is None or _preference(rel, entry) > _preference(held[1], held[2]):
                best[key] = (suite, rel, entry)

    def order(item: tuple[str, str, dict[str, Any]]) -> tuple[int, int, str]:
        suite, _, entry = item
        algorithm = entry["reference"].split(" ")[0]
        rank = _ALGORITHMS.index(algorithm) if algorithm in _ALGORITHMS else len(_ALGORITHMS)
        return _SUITES.index(suite), rank, entry["reference"]

    # stable sort: within an algorithm the datasets keep their reports' order
    return sorted(best.values(), key=order)


def _below_by_more_than_interval(entry: dict[str, Any]) -> str:
    """The issue's bound, per row: the twin is below the plain run's mean by more than the interval
    when the whole 95% interval of ``twin - plain`` lies below zero."""
    if min(entry["reference_n"], entry["variant_n"]) <= 1:
        return "-"
    return "yes" if entry["difference_ci"][1] < 0 else "no"


def mode_rule_fragment(results: Results, out: Output) -> None:
    """Write :data:`MODE_RULE_FRAGMENT` when any report holds a twin."""
    entries = twin_entries(results)
    if not entries:
        return
    rows = []
    for suite, _, e in entries:
        n = min(e["reference_n"], e["variant_n"])
        rows.append([suite, e["dataset"], e["reference"], f"{e['reference_mean']:.1f} (n={e['reference_n']})",
                     f"{e['variant_mean']:.1f} (n={e['variant_n']})",
                     format_signed_interval(e["difference"], *e["difference_ci"], n),
                     _below_by_more_than_interval(e)])
    reports = sorted({rel for _, rel, _ in entries})
    failing = sum(row[-1] == "yes" for row in rows)
    signs = [(e["difference"] > 0) - (e["difference"] < 0) for _, _, e in entries]
    lines = [source_note([results.name(rel) for rel in reports],
                         details=["each row is one report's twin-against-plain row (a report's `variants`); where "
                                  "two reports hold the same pair, the one with more seeds, then the one nearest its suite's folder"]),
             "",
             *table(["suite", "dataset", "plain run (today's acting)", "plain score", "mode-averaged twin",
                     "twin − plain [95% CI]", "below by more than the interval"], rows),
             "",
             f"{len(rows)} pairs; the twin is below its plain run by more than the interval in {failing}; by seed "
             f"means it is ahead in {signs.count(1)}, level in {signs.count(0)} and behind in {signs.count(-1)}."]
    out.add(MODE_RULE_FRAGMENT, "\n".join(lines),
            "every SAQ algorithm's mode-averaged twins against their plain runs (standard and kitchen suites)")
