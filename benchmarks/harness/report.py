"""``results.json``, ``results.md`` and the PNG plots of a grid, from its per-run result files.

Scores are aggregated over seeds per (dataset, algorithm label) as mean ± std (population std;
``n`` says how many seeds finished). The paper's number goes beside ours where one exists
(:mod:`.paper`). Plots: learning curves (score against gradient steps, mean over seeds), the
codebook-size curve (score against K, SAQ Table 4 dashed) when the grid varies K, the CQL
penalty gap (SAQ Figure 2) when runs tracked it, and state vs no-state bars when present.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any, Optional

import numpy as np

from saq_wrappers.app.plots import plot_curves, pyplot, save_figure
from saq_wrappers.io import atomic_output

from .paper import SAQ_TABLE4, paper_number
from .runner import failure_path, load_result, machine
from .spec import RunSpec

METRIC_NAMES = {"normalized": "normalized score", "success": "success rate (%)"}


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


def aggregate(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, label): mean/std of the score over seeds and the paper's number."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["label"]), []).append(r)
    rows = []
    for (dataset, label), members in groups.items():
        spec = RunSpec.from_dict(members[0]["spec"])
        scores = np.array([m["score"] for m in members], dtype=float)
        paper = paper_number(spec.dataset.paper_key, spec.algo, spec.quantizer.n_codes,
                             spec.quantizer.state_conditioned) if spec.is_saq else \
            paper_number(spec.dataset.paper_key, spec.algo)
        q = [m.get("quantizer") or {} for m in members]
        rows.append({
            "dataset": dataset, "label": label, "algo": spec.algo, "metric": members[0]["metric"],
            "n_codes": spec.quantizer.n_codes if spec.is_saq else None,
            "state_conditioned": spec.quantizer.state_conditioned if spec.is_saq else None,
            "seeds": [m["seed"] for m in members], "scores": scores.tolist(),
            "mean": float(scores.mean()), "std": float(scores.std()),
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


def _cell(row: dict[str, Any]) -> str:
    text = f"{row['mean']:.1f} ± {row['std']:.1f}"
    if len(row["seeds"]) > 1:
        text += f" (n={len(row['seeds'])})"
    if row["paper"] is not None:
        text += f" [{row['paper']:.1f}]"
    return text


def markdown(suite: str, rows: list[dict[str, Any]], failures: dict[str, str], command: str,
             missing: int = 0) -> str:
    """The ``results.md`` text."""
    info = machine()
    load = f"{info['load_1min']:.1f}" if info["load_1min"] is not None else "?"
    lines = [
        f"# Benchmark harness: suite `{suite}`",
        "",
        f"Command: `{command}`  ",
        f"Written {_dt.datetime.now().isoformat(timespec='minutes')} on {platform.node()} "
        f"({info['cpus']} CPUs, 1-min load {load} at report time).",
        "",
        "Score: D4RL-style normalized return (0 = random, 100 = the dataset's expert reference) for "
        "locomotion; success rate in % for robomimic-style tasks. Mean ± std over seeds. "
        "[bracketed]: the paper's number on the original D4RL / robomimic dataset (SAQ Tables 2, 4, 5; "
        "ARQ Table A.4); our datasets are generated stand-ins and our budgets are far shorter, so "
        "compare the X vs SAQ-X ordering, not the absolute values.",
        "",
    ]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    by_key = {(r["dataset"], r["label"]): r for r in rows}
    lines += ["## Scores", "", "| dataset | " + " | ".join(labels) + " |",
              "|---|" + "---|" * len(labels)]
    for ds in datasets:
        cells = [_cell(by_key[(ds, lab)]) if (ds, lab) in by_key else "-" for lab in labels]
        lines.append(f"| {ds} | " + " | ".join(cells) + " |")
    pairs = [(r["label"], r["label"].split(" (")[0].replace("SAQ-", "")) for r in rows if r["algo"].startswith("SAQ-")]
    pair_lines = []
    for ds in datasets:
        for saq_label, base in dict.fromkeys(pairs):
            if (ds, saq_label) in by_key and (ds, base) in by_key:
                x, y = by_key[(ds, base)], by_key[(ds, saq_label)]
                pair_lines.append(f"| {ds} | {base} vs {saq_label} | {x['mean']:.1f} | {y['mean']:.1f} | "
                                  f"{y['mean'] - x['mean']:+.1f} | {_paper_delta(x, y)} |")
    if pair_lines:
        lines += ["", "## SAQ-X against X (same data, networks and update budget)", "",
                  "| dataset | pair | X | SAQ-X | SAQ-X − X | paper's SAQ-X − X |", "|---|---|---|---|---|---|"]
        lines += pair_lines
    lines += ["", "## Every group", "",
              "| dataset | algorithm | metric | score | seeds | paper | mean return | updates | updates/s | "
              "train s | eval s | quantizer recon. MSE / codes used |",
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


def _paper_delta(x: dict[str, Any], y: dict[str, Any]) -> str:
    if x["paper"] is None or y["paper"] is None:
        return "-"
    return f"{y['paper'] - x['paper']:+.1f}"


# ---------------------------------------------------------------------------------- plots
def plot_learning_curves(results: list[dict[str, Any]], path: Path) -> None:
    """Score against gradient steps; one panel per dataset, one line per algorithm (seed mean)."""
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for ds in dict.fromkeys(r["dataset"] for r in results):
        members = [r for r in results if r["dataset"] == ds]
        panels[ds] = {}
        for label in dict.fromkeys(r["label"] for r in members):
            curves = [r["training"]["curve"] for r in members if r["label"] == label and r["training"]["curve"]]
            if curves:
                n = min(len(c) for c in curves)
                steps = np.mean([[p["step"] for p in c[:n]] for c in curves], axis=0)
                scores = np.mean([[p["score"] for p in c[:n]] for c in curves], axis=0)
                panels[ds][label] = list(zip(steps.tolist(), scores.tolist()))
    metric = METRIC_NAMES[results[0]["metric"]] if results else "score"
    plot_curves(panels, path, "gradient steps", metric)


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


def write_report(runs: list[RunSpec], out: Path, suite: str, command: str) -> dict[str, Any]:
    """Write ``results.json``, ``results.md`` and the plots of ``runs`` into ``out``."""
    results, failures = collect(runs, out)
    rows = aggregate(results)
    text = markdown(suite, rows, failures, command, missing=len(runs) - len(results))
    document = {
        "suite": suite, "command": command,
        "written": _dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
        "n_runs": len(runs), "n_finished": len(results), "failures": failures,
        "summary": rows, "runs": results,
    }
    with atomic_output(out / "results.json") as tmp:
        tmp.write_text(json.dumps(document, indent=1))
    with atomic_output(out / "results.md") as tmp:
        tmp.write_text(text)
    plots = []
    if results:
        plot_learning_curves(results, out / "learning_curves.png")
        plots.append("learning_curves.png")
    if plot_codebook_size(rows, out / "codebook_size.png"):
        plots.append("codebook_size.png")
    if plot_penalty_gap(results, out / "penalty_gap.png"):
        plots.append("penalty_gap.png")
    if plot_state_ablation(rows, out / "state_ablation.png"):
        plots.append("state_ablation.png")
    return {"markdown": text, "plots": plots, "n_finished": len(results), "failures": failures}
