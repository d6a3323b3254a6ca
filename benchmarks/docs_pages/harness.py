"""Tables and facts of one harness report (a ``results.json`` written by ``python -m benchmarks.run``):
what ran (seeds, budget, machine, dates, command) and the report's tables, formatted as the
report formats them (:mod:`benchmarks.harness.markdown`)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional

from ..harness.markdown import (
    dataset_table,
    difference_table,
    format_interval,
    improvement_table,
    iqm_table,
    mean_cell,
    pairs_table,
    seed_cell,
)
from .common import Output, Results, bold_headings, commas, join_seeds, source_note, table

__all__ = ["details", "group_rows", "groups_table", "harness_fragments", "ledger_table", "run_command",
           "run_hours_table", "source", "time_detail"]

Doc = dict[str, Any]


def run_command(doc: Doc) -> str:
    """The command that ran the grid: the report's command without ``--report-only`` (a report
    rewritten from finished runs names the same grid, the same folder and the same data)."""
    return doc["command"].replace(" --report-only", "")


def _seeds_detail(doc: Doc) -> str:
    by_seeds: dict[str, list[str]] = {}
    for row in doc["summary"]:
        by_seeds.setdefault(join_seeds(row["seeds"]), []).append(row["label"])
    if not by_seeds:
        return "no finished runs"
    common = max(by_seeds, key=lambda s: len(by_seeds[s]))
    others = [f"{seeds} for {', '.join(dict.fromkeys(labels))}" for seeds, labels in by_seeds.items()
              if seeds != common]
    return f"seeds {common}" + (f" ({'; '.join(others)})" if others else "")


def _budget_detail(doc: Doc) -> str:
    specs = [r["spec"] for r in doc["runs"]]
    if not specs:
        return ""
    steps = sorted({s["steps"] for s in specs})
    # no hidden sizes: each algorithm's default (the real suites', the authors' sizes)
    hidden = sorted({"-".join(map(str, s["hidden"])) if s["hidden"] else "each algorithm's default"
                     for s in specs})
    # run records before the pipeline's typed spec kept the evaluation settings at the top level
    episodes = sorted({(s.get("evaluation") or {}).get("episodes", s.get("eval_episodes")) for s in specs})
    parts = [f"{' / '.join(commas(s) for s in steps)} updates per run", f"{', '.join(hidden)} networks",
             f"{' / '.join(map(str, episodes))} final evaluation episodes"]
    quantizers = sorted({(s["quantizer"]["n_codes"], s["quantizer"]["steps"]) for s in specs
                         if s["algo"].startswith("SAQ-")})
    if quantizers:
        codes = join_seeds(k for k, _ in quantizers) if len({k for k, _ in quantizers}) > 1 else str(quantizers[0][0])
        parts.append(f"quantizer K = {codes}, {' / '.join(commas(n) for n in sorted({n for _, n in quantizers}))} "
                     "fit updates")
    return "budget: " + ", ".join(parts)


def machine_detail(doc: Doc) -> str:
    """Where the runs ran, from each run record's ``machine`` (runs recorded before records kept
    it are counted as not recorded)."""
    counts = Counter()
    for run in doc["runs"]:
        info = run.get("machine") or {}
        key = (f"{info['cpu_model']} ({info.get('cpu_capability') or '?'}, {info.get('cpus')} CPUs)"
               if info.get("cpu_model") else "machine not recorded")
        counts[key] += 1
    return "machine: " + "; ".join(f"{key}: {n} runs" for key, n in sorted(counts.items()))


def _dates_detail(doc: Doc) -> str:
    dates = sorted(r["finished_at"][:10] for r in doc["runs"] if r.get("finished_at"))
    if not dates:
        return ""
    return f"runs finished {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")


def details(doc: Doc) -> list[str]:
    """Seeds, budget, machine and dates of a report's runs, one phrase each."""
    return [_seeds_detail(doc), _budget_detail(doc), machine_detail(doc), _dates_detail(doc)]


def source(results: Results, rel: str, *, brief: bool = False) -> str:
    """The paragraph naming a report's file, the command of its runs, its seeds and budget, and
    (unless ``brief``) the machine and dates of its runs."""
    doc = results.json(rel)
    return source_note([results.name(rel)], run_command(doc), details=details(doc)[:2] if brief else details(doc))


def group_rows(doc: Doc) -> list[list[str]]:
    """One row per group: dataset, algorithm, per-seed scores, seed mean with its interval, the
    paper's number and the quantizer's reconstruction error."""
    rows = []
    for r in doc["summary"]:
        n = len(r["seeds"])
        mean = (f"{format_interval(r['mean'], r['ci_low'], r['ci_high'], n)} (n={n})" if "ci_low" in r
                else f"{r['mean']:.1f} ± {r['std']:.1f} std (n={n}; report written before intervals)")
        rows.append([r["dataset"], r["label"], seed_cell(r), mean,
                     "-" if r["paper"] is None else f"{r['paper']:.1f} ({r['paper_source']})",
                     "-" if r["reconstruction_mse"] is None else f"{r['reconstruction_mse']:.3f}"])
    return rows


def groups_table(doc: Doc) -> list[str]:
    return table(["dataset", "algorithm", "seed: score", "mean [95% CI]", "paper", "quantizer recon. MSE"],
                 group_rows(doc))


def ledger_table(entries: list[dict[str, Any]]) -> list[str]:
    """Each invocation of a grid's time ledger (``grid_time.json``)."""
    rows = [[e["started"][:16].replace("T", " "), e["ended"][:16].replace("T", " "), f"{e['seconds'] / 3600:.2f}",
             str(e["runs"]), str(e["artifacts"]), str(e["failed"]),
             f"{e.get('cpu_model') or '?'} ({e.get('cpu_capability') or '?'}, {e.get('cpus')} CPUs)",
             f"{e['backend']}, {e['workers']} workers"] for e in entries]
    return table(["started (UTC)", "ended (UTC)", "hours", "runs", "artifacts", "failed", "CPU", "backend"], rows)


def time_detail(entries: list[dict[str, Any]]) -> str:
    hours = sum(e["seconds"] for e in entries) / 3600
    return (f"{len(entries)} invocations took {hours:.2f} hours of wall-clock time in all and finished "
            f"{sum(e['runs'] for e in entries)} runs and {sum(e['artifacts'] for e in entries)} shared artifacts")


def run_hours_table(doc: Doc) -> list[str]:
    """Per algorithm: runs, their wall-clock seconds (training and evaluation, each run on one
    worker) in worker-hours and their range, and the mean training updates per second."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in doc["runs"]:
        groups.setdefault(run["label"], []).append(run)
    rows = []
    for label, runs in sorted(groups.items(), key=lambda item: -sum(r["wall_seconds"] for r in item[1])):
        seconds = [r["wall_seconds"] for r in runs]
        rows.append([label, str(len(runs)), f"{sum(seconds) / 3600:.2f}", f"{min(seconds):,.0f}-{max(seconds):,.0f}",
                     f"{sum(r['training']['updates_per_second'] for r in runs) / len(runs):.1f}"])
    total = sum(r["wall_seconds"] for r in doc["runs"]) / 3600
    rows.append(["all", str(len(doc["runs"])), f"{total:.2f}", "", ""])
    return table(["algorithm", "runs", "worker-hours", "seconds per run", "updates/s"], rows)


def _aggregate(doc: Doc) -> Optional[dict[str, Any]]:
    aggregate = doc.get("aggregate") or {}
    return aggregate if aggregate.get("iqm") else None


def harness_fragments(results: Results, out: Output) -> None:
    """``generated/harness/<folder>/*.md`` for every harness report under the results root."""
    for rel in results.files("harness/**/results.json"):
        folder = rel[: -len("/results.json")]
        doc = results.json(rel)
        base = f"generated/{folder}"
        note = source(results, rel)
        if results.exists(f"{folder}/results.md"):
            out.add(f"{base}/results.md", source_note([results.name(f"{folder}/results.md")]) + "\n\n"
                    + bold_headings(results.text(f"{folder}/results.md")),
                    f"the report {results.name(folder)}/results.md as written (headings as bold lines)")
        out.add(f"{base}/scores.md", "\n".join([note, ""] + groups_table(doc)),
                "per group: per-seed scores, mean [95% CI], paper, quantizer MSE")
        if all("ci_low" in r for r in doc["summary"]):
            out.add(f"{base}/scores_by_dataset.md",
                    "\n".join([note, "", "Seed mean with its 95% bootstrap interval (n seeds; the paper's number).",
                               ""] + dataset_table(doc["summary"], mean_cell)),
                    "datasets x algorithms: mean [95% CI] (n; paper)")
        if doc.get("pairs"):
            out.add(f"{base}/pairs.md", "\n".join([note, ""] + pairs_table(doc["pairs"])),
                    "SAQ-X − X per dataset with 95% CI, updates, training seconds, the paper's difference")
        if doc.get("against_saq_bc"):
            out.add(f"{base}/against_saq_bc.md",
                    "\n".join([note, ""] + difference_table(doc["against_saq_bc"], ("saq_bc", "saq_x"),
                                                            ("SAQ-BC", "SAQ-X"))),
                    "SAQ-X − SAQ-BC on the same quantizer with 95% CI")
        if doc.get("variants"):
            out.add(f"{base}/variants.md",
                    "\n".join([note, ""] + difference_table(doc["variants"], ("reference", "variant"),
                                                            ("reference", "variant"))),
                    "each variant − the ablation's reference with 95% CI")
        aggregate = _aggregate(doc)
        if aggregate is not None:
            lines = [note, "", f"IQM over {len(aggregate['tasks'])} dataset(s) ({', '.join(aggregate['tasks'])}) with "
                     f"{100 * aggregate['confidence']:g}% stratified-bootstrap intervals ({commas(aggregate['reps'])} "
                     "resamples, rliable).", ""] + iqm_table(aggregate)
            if aggregate["probability_of_improvement"]:
                lines += ["", f"P(SAQ-X > X), {commas(aggregate['improvement_reps'])} resamples.", ""]
                lines += improvement_table(aggregate)
            out.add(f"{base}/iqm.md", "\n".join(lines), "IQM across datasets and P(SAQ-X > X) with 95% CIs")
        if results.exists(f"{folder}/grid_time.json"):
            entries = results.json(f"{folder}/grid_time.json")
            out.add(f"{base}/grid_time.md",
                    "\n".join([source_note([results.name(f"{folder}/grid_time.json")], details=[time_detail(entries)]),
                               ""] + ledger_table(entries) + ["", source(results, rel, brief=True), ""]
                              + run_hours_table(doc)),
                    "the time ledger (one row per invocation) and worker-hours per algorithm")
