"""The ablations page (``docs/benchmarks/ablations.md``): codebook size (SAQ Table 4), state
conditioning (SAQ Table 3), CQL's penalty (SAQ Figure 2) and the quantizer study, each from its
harness report."""

from __future__ import annotations

from typing import Any

from ..harness.markdown import difference_table
from .common import Results, code, image, table
from .harness import groups_table, source

__all__ = ["ABLATIONS", "ablations_page"]

#: (section title, report folder under the results root, what it asks, figures beside the report).
ABLATIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("Codebook size (SAQ Table 4)", "harness/ablations/ablation-k",
     "{algos} with K ∈ {{{ks}}} codes on {datasets}: does the size of the codebook matter? The reference is "
     "K = {reference_k}, the library's default.",
     ("codebook_size.png",)),
    ("State conditioning (SAQ Table 3)", "harness/ablations/ablation-state",
     "{algos} with and without state conditioning (the VQ-VAE's state input zeroed), K = {ks}, on {datasets}: "
     "without the state the codes must cover every action of the data at once.", ("state_ablation.png",)),
    ("The quantizer study", "harness/ablations/quantizer-study",
     "{algos} with quantizers fitted for {qsteps} updates (the first is the default), and SAQ-IQL acting "
     "greedily instead of by sampling its code, on {datasets}, where SAQ-BC trails BC most.", ()),
    ("The quantizer study, seed 0 on the standard suite's data",
     "harness/quantizer-study-first-generation/quantizer-study",
     "The same study's seed 0 on the data generation the standard suite trained on (the runs above used "
     "another generation of the same datasets; the first lines of each report's Data table give their "
     "SHA-256).", ()),
)

_INTRO = (
    "Each ablation changes one setting of SAQ-X on the standard suite's data and budget and compares every "
    "variant with its reference setting: the variant's seed mean minus the reference's, with a 95% "
    "percentile-bootstrap interval (seeds resampled independently). The ablations ran into a folder of their "
    "own, on another generation of the data than the standard suite (`--out benchmarks/results/harness/ablations`), "
    "with their own reference runs, so that no comparison inside them mixes the two."
)


def _grid(doc: dict[str, Any]) -> dict[str, str]:
    """What a report's grid varies, read from its rows: algorithms, datasets, K and quantizer budgets."""
    rows = [r for r in doc["summary"] if r.get("quantizer")]
    references = {v["reference"] for v in doc.get("variants") or []}
    return {"algos": ", ".join(dict.fromkeys(r["algo"] for r in rows)),
            "datasets": ", ".join(dict.fromkeys(r["dataset"] for r in doc["summary"])),
            "ks": ", ".join(str(k) for k in sorted({r["n_codes"] for r in rows})),
            "qsteps": ", ".join(f"{n:,}" for n in sorted({r["quantizer"][3] for r in rows})),
            "reference_k": ", ".join(str(k) for k in sorted({r["n_codes"] for r in rows
                                                             if r["label"] in references}))}


def _section(results: Results, title: str, folder: str, what: str, figures: tuple[str, ...]) -> list[str]:
    rel = f"{folder}/results.json"
    if not results.exists(rel):
        return []
    doc = results.json(rel)
    lines = ["", f"## {title}", "", what.format(**_grid(doc)), "", source(results, rel), "",
             "Every group: its seeds' scores, the seed mean with its 95% bootstrap interval, the paper's number "
             "(on the original data, at the authors' budget) and the quantizer's reconstruction error on the data "
             "(mean over seeds):", ""] + groups_table(doc)
    if doc.get("variants"):
        lines += ["", "Each variant against the reference:", ""]
        lines += difference_table(doc["variants"], ("reference", "variant"), ("reference", "variant"))
    for name in figures:
        if results.exists(f"{folder}/{name}"):
            lines += ["", image("benchmarks", f"{folder}/{name}", f"{title}: {name[:-4].replace('_', ' ')}")]
    return lines


def _penalty_rows(run: dict[str, Any], reference: dict[float, float]) -> list[list[str]]:
    rows = []
    for point in run["penalty"]:
        sampled, ref = point["sampled_penalty"], point["reference_penalty"]
        exact = reference.get(point["step"])
        rows.append([f"{point['step']:,.0f}", f"{sampled:.3f}", f"{ref:.3f}", f"{ref - sampled:+.3f}",
                     "-" if exact is None else f"{exact:.3f}"])
    return rows


def _penalty_section(results: Results) -> list[str]:
    folder = "harness/ablation-penalty"
    rel = f"{folder}/results.json"
    if not results.exists(rel):
        return []
    doc = results.json(rel)
    cql = [r for r in doc["runs"] if r["algo"] == "CQL" and r.get("penalty")]
    saq = [r for r in doc["runs"] if r["algo"] == "SAQ-CQL" and r.get("penalty")]
    lines = ["", "## CQL's penalty, sampled against exact (SAQ Figure 2)", "",
             "Continuous CQL estimates its penalty, E[log ∫ exp Q(s, a) da − Q(s, a_data)], by importance sampling "
             "with d3rlpy's few samples per state; the run also logs the same quantity estimated with many more "
             "samples as a reference. SAQ-CQL computes its penalty exactly, as a log-sum-exp over the K codes, so "
             "it has no gap.", "",
             source(results, rel), ""]
    exact = {p["step"]: p["exact_penalty"] for r in saq for p in r["penalty"]}
    for run in cql:
        lines += [f"{run['dataset']}, seed {run['seed']} (final scores: CQL {run['score']:.1f}"
                  + "".join(f", {r['label']} {r['score']:.1f}" for r in saq) + "):", ""]
        lines += table(["update", "CQL penalty, sampled", "CQL penalty, reference", "reference − sampled",
                        "SAQ-CQL penalty, exact"], _penalty_rows(run, exact))
    if results.exists(f"{folder}/penalty_gap.png"):
        lines += ["", image("benchmarks", f"{folder}/penalty_gap.png", "CQL's penalty gap over training")]
    if results.exists("cql_penalty.json"):
        lines += ["", "The same diagnosis on the narrow built-in Pendulum data "
                  f"({code('OMP_NUM_THREADS=1 python benchmarks/plot_cql_penalty.py')}): the table is "
                  f"{code('docs/generated/cql_penalty.md')}, from {code(results.name('cql_penalty.json'))}."]
        if results.exists("cql_penalty.png"):
            lines += ["", image("benchmarks", "cql_penalty.png", "CQL's sampled penalty on the Pendulum data")]
    return lines


def ablations_page(results: Results) -> str:
    lines = ["# Ablations and the quantizer study", "", _INTRO]
    for title, folder, what, figures in ABLATIONS:
        lines += _section(results, title, folder, what, figures)
    lines += _penalty_section(results)
    return "\n".join(lines)
