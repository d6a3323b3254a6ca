"""The learning-curve plot every recipe and report draws: score against updates or seconds.

Written atomically (a PNG appears only complete); matplotlib's non-interactive backend, so it
works without a screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from saq_wrappers.io import atomic_output

#: One curve: (x, y) points.
Curve = Sequence[tuple[float, float]]


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    """Write ``figure`` as a PNG atomically and close it."""
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    pyplot().close(figure)


def plot_curves(
    panels: Mapping[str, Mapping[str, Curve]],
    path: Path,
    xlabel: str,
    ylabel: str,
    reference_lines: Optional[Mapping[str, float]] = None,
) -> None:
    """One panel per key of ``panels`` (a dataset), one line per label (a method).

    ``reference_lines`` (``{"expert": -150.0}``) are drawn dashed in every panel.
    """
    plt = pyplot()
    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 4), squeeze=False)
    for axis, (title, curves) in zip(axes[0], panels.items()):
        for label, points in curves.items():
            if points:
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        for name, value in (reference_lines or {}).items():
            axis.axhline(value, linestyle="--", linewidth=1, color="gray")
            axis.text(0, value, f" {name}", va="bottom", color="gray", fontsize=8)
        axis.set(title=title, xlabel=xlabel, ylabel=ylabel)
        axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)
