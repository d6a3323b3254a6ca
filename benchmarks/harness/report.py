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

The pieces: :mod:`.rows` (the tables as data), :mod:`.markdown` (``results.md``), :mod:`.plots`
(the PNGs); this module runs them and writes the files.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Optional

from saq_wrappers.io import atomic_output

from .ledger import read_ledger, summarize_ledger
from .markdown import markdown
from .plots import (
    plot_codebook_size,
    plot_iqm,
    plot_learning_curves,
    plot_penalty_gap,
    plot_state_ablation,
    plot_wall_clock_curves,
)
from .rows import (
    against_saq_bc_rows,
    aggregate,
    collect,
    data_rows,
    infer_unrecorded_identities,
    pair_rows,
    variant_rows,
)
from .runner import machine
from .spec import RunSpec, variant_references
from .statistics import (
    AGGREGATE_REPS,
    BOOTSTRAP_REPS,
    IMPROVEMENT_REPS,
    AggregateResult,
    MissingDependencyError,
    aggregate_iqm,
    equal_wall_clock,
    per_seed_record,
)

__all__ = ["write_report"]


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
    references = variant_references(suite, runs)
    variants = variant_rows(rows, references, confidence, bootstrap_reps, seed)
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
    host = machine()
    text = markdown(suite, rows, failures, command, missing=len(runs) - len(results), pairs=pairs,
                    against_saq_bc=against_bc, variants=variants, wall_clock=wall_clock,
                    aggregate_result=aggregate_result, aggregate_note=aggregate_note, confidence=confidence,
                    reps=bootstrap_reps, data=data, grid_time=grid_time, host=host)
    document = {
        "suite": suite, "command": command,
        "written": _dt.datetime.now().isoformat(timespec="seconds"), "machine": host,
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
