"""The PNG plots of a grid's report.

Score against gradient steps and against training seconds per dataset (seed mean, band: min-max
over seeds), the IQM intervals, the codebook-size curve (score against K, SAQ Table 4 dashed)
when the grid varies K, the CQL penalty gap (SAQ Figure 2) when runs tracked it, and state vs
no-state bars when present. Each ``plot_*`` returns ``False`` and writes nothing when the grid has
nothing to draw.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from saq_wrappers.app.plots import pyplot, save_figure

from .markdown import METRIC_NAMES
from .paper import SAQ_TABLE4
from .statistics import AggregateResult

__all__ = ["Band", "curve_bands", "plot_codebook_size", "plot_curve_bands", "plot_iqm", "plot_learning_curves",
           "plot_penalty_gap", "plot_state_ablation", "plot_wall_clock_curves"]

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
