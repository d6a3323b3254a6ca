"""The statistics of the benchmark report: intervals over seeds, the aggregate across datasets, and
the equal-wall-clock reading of learning curves.

* **Per dataset** (:func:`bootstrap_ci`, :func:`bootstrap_difference_ci`): the mean score over
  seeds with a percentile-bootstrap confidence interval (resample the seeds with replacement,
  take the mean, read the 2.5% and 97.5% quantiles). With 3 seeds this interval is narrow and
  under-covers; it is reported because it is what 3 seeds can say, not because it is tight.
* **Across datasets** (:func:`aggregate_iqm`): the interquartile mean (IQM: the mean of the middle
  50% of all seed x dataset scores of an algorithm) with stratified-bootstrap confidence intervals
  (seeds resampled within each dataset), and the probability of improvement P(SAQ-X > X), both as
  recommended by Agarwal et al. (NeurIPS 2021, "Deep RL at the Edge of the Statistical
  Precipice") and computed with their library, ``rliable`` (the ``bench`` extra).
  Only complete seeds x datasets matrices enter (an algorithm's seeds finished on every dataset):
  a ragged grid would weight the datasets that happen to have finished more.
* **Equal wall-clock** (:func:`point_at_seconds`, :func:`equal_wall_clock`): X and SAQ-X get the
  same number of gradient updates; this view instead reads the slower one's learning curve at
  the training seconds the faster one needed for its whole budget.

Everything takes the per-seed records the report builds (:func:`per_seed_record`): ``dataset``,
``algo``, ``label``, ``seed``, ``score``, ``steps``, ``train_seconds`` and ``curve`` (points
``{"step", "seconds", "score"}``, ``seconds`` = training seconds so far, evaluation excluded).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from saq_wrappers.errors import DataError, SAQError

__all__ = [
    "AGGREGATE_REPS", "BOOTSTRAP_REPS", "IMPROVEMENT_REPS", "PAIRS", "AggregateResult", "Interval", "MissingDependencyError",
    "ScoreMatrices", "aggregate_iqm", "bootstrap_ci", "bootstrap_difference_ci", "equal_wall_clock", "pair_labels",
    "per_seed_record", "point_at_seconds", "score_matrices",
]

#: Bootstrap resamples of the per-dataset intervals (vectorised numpy: cheap).
BOOTSTRAP_REPS = 10_000
#: Bootstrap resamples of the aggregate intervals. rliable's default is 50,000; each resample is a
#: Python call here, and the report is rewritten often while a suite runs, so fewer are drawn
#: (the report states the number).
AGGREGATE_REPS = 2_000
#: Resamples of the P(SAQ-X > X) intervals: each one runs a Mann-Whitney U test per dataset
#: (about 6 ms for the 4 pairs on 5 datasets), so fewer again.
IMPROVEMENT_REPS = 1_000

#: The X / SAQ-X pairs: (X, SAQ-X). SAQ's paper pairs SAQ-BRAC with BRAC, which d3rlpy does not
#: have; TD3+BC is the closest continuous behaviour-regularised actor-critic it has.
PAIRS: tuple[tuple[str, str], ...] = (("BC", "SAQ-BC"), ("CQL", "SAQ-CQL"), ("IQL", "SAQ-IQL"),
                                      ("TD3+BC", "SAQ-BRAC"))


class MissingDependencyError(SAQError, ImportError):
    """An optional package the report needs is not installed."""


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval, from ``n`` values (seeds, or runs)."""

    point: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_settings(confidence: float, reps: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise DataError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise DataError(f"bootstrap reps must be an integer >= 1, got {reps!r}")


def _scores(values: Iterable[float], what: str) -> np.ndarray:
    x = np.asarray(list(values), dtype=float).ravel()
    if x.size == 0:
        raise DataError(f"{what}: no scores, expected at least one")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{what}: scores must be finite, got {x.tolist()}")
    return x


def bootstrap_ci(scores: Sequence[float], confidence: float = 0.95, reps: int = BOOTSTRAP_REPS,
                 seed: int = 0) -> Interval:
    """The mean of ``scores`` (one per seed) and its percentile-bootstrap confidence interval.

    Deterministic for a ``seed``. One score, or identical scores, give the point as the interval:
    resampling them can only return the same mean.
    """
    _check_settings(confidence, reps)
    x = _scores(scores, "bootstrap_ci")
    if np.all(x == x[0]):
        value = float(x[0])
        return Interval(value, value, value, int(x.size))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(reps, x.size))].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))


def bootstrap_difference_ci(base: Sequence[float], other: Sequence[float], confidence: float = 0.95,
                            reps: int = BOOTSTRAP_REPS, seed: int = 0) -> Interval:
    """``mean(other) - mean(base)`` with a percentile-bootstrap interval, the two groups resampled
    independently (seeds of different algorithms are not paired). ``n``: the smaller group."""
    _check_settings(confidence, reps)
    x, y = _scores(base, "bootstrap_difference_ci (base)"), _scores(other, "bootstrap_difference_ci (other)")
    point = float(y.mean() - x.mean())
    if np.all(x == x[0]) and np.all(y == y[0]):
        value = float(y[0] - x[0])
        return Interval(value, value, value, int(min(x.size, y.size)))
    rng = np.random.default_rng(seed)
    diffs = (y[rng.integers(0, y.size, size=(reps, y.size))].mean(axis=1)
             - x[rng.integers(0, x.size, size=(reps, x.size))].mean(axis=1))
    alpha = 1.0 - confidence
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return Interval(point, float(low), float(high), int(min(x.size, y.size)))


# ---------------------------------------------------------------------------------- records
def per_seed_record(result: Mapping[str, Any]) -> dict[str, Any]:
    """The per-seed entry of ``results.json`` from a run's result file."""
    training = result["training"]
    return {
        "run_id": result.get("run_id"), "dataset": result["dataset"], "algo": result["algo"],
        "label": result["label"], "seed": int(result["seed"]), "metric": result.get("metric"),
        "score": float(result["score"]), "steps": int(training["steps"]),
        "train_seconds": float(training["train_seconds"]),
        "curve": [{"step": int(p["step"]), "seconds": float(p["seconds"]), "score": float(p["score"])}
                  for p in training.get("curve") or []],
    }


def pair_labels(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The (X label, SAQ-X label) pairs present in ``records``, in :data:`PAIRS` order (every SAQ
    variant, e.g. each K of an ablation, pairs with its X)."""
    labels = {(r["algo"], r["label"]) for r in records}
    present = {label for _, label in labels}
    pairs = []
    for base, saq in PAIRS:
        if base not in present:
            continue
        for algo, label in sorted(labels, key=lambda item: item[1]):
            if algo == saq:
                pairs.append((base, label))
    return pairs


def _by_group(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["label"]), []).append(r)
    return groups


# ---------------------------------------------------------------------------------- aggregate
@dataclasses.dataclass
class ScoreMatrices:
    """The (seeds, datasets) score matrices rliable takes, and which runs could not enter."""

    tasks: list[str]
    matrices: dict[str, np.ndarray]
    seeds: dict[str, list[int]]
    #: label -> why it is not in the aggregate at all
    excluded: dict[str, str]
    #: label -> the runs left out so that its matrix is complete (seeds not finished everywhere)
    dropped: dict[str, str]


def score_matrices(records: Sequence[Mapping[str, Any]], tasks: Optional[Sequence[str]] = None) -> ScoreMatrices:
    """Per label, its complete (seeds, tasks) score matrix: the seeds finished on every dataset.

    ``tasks``: the datasets (default: every dataset in ``records``, first-seen order). A label
    without a finished run on some dataset, or with no seed finished on all of them, is excluded.
    Runs of seeds that have not finished on every dataset yet are dropped (and listed): seeds are
    exchangeable, so a complete matrix on fewer seeds is unbiased, while a ragged one would weight
    the datasets that happen to have finished more often.
    """
    task_list = list(tasks) if tasks is not None else list(dict.fromkeys(r["dataset"] for r in records))
    table: dict[str, dict[str, dict[int, float]]] = {}
    for r in records:
        table.setdefault(r["label"], {}).setdefault(r["dataset"], {})[int(r["seed"])] = float(r["score"])
    result = ScoreMatrices(task_list, {}, {}, {}, {})
    if not task_list:
        return result
    for label, per_task in table.items():
        missing = [t for t in task_list if t not in per_task]
        if missing:
            result.excluded[label] = f"no finished run on {', '.join(missing)}"
            continue
        common = sorted(set.intersection(*(set(per_task[t]) for t in task_list)))
        extra = {t: sorted(set(per_task[t]) - set(common)) for t in task_list}
        extra = {t: s for t, s in extra.items() if s}
        if not common:
            detail = "; ".join(f"{t}: {','.join(map(str, sorted(per_task[t])))}" for t in task_list)
            result.excluded[label] = f"no seed finished on every dataset ({detail})"
            continue
        if extra:
            result.dropped[label] = "left out seed(s) " + "; ".join(
                f"{','.join(map(str, s))} on {t}" for t, s in extra.items()) + " (not finished on every dataset)"
        result.matrices[label] = np.array([[per_task[t][s] for t in task_list] for s in common], dtype=float)
        result.seeds[label] = common
    return result


@dataclasses.dataclass
class AggregateResult:
    """IQM across datasets per label, P(SAQ-X > X) per pair, and what was left out."""

    tasks: list[str]
    iqm: dict[str, Interval]
    seeds: dict[str, list[int]]
    excluded: dict[str, str]
    dropped: dict[str, str]
    improvement: dict[tuple[str, str], Interval]
    improvement_note: Optional[str]
    confidence: float
    reps: int
    improvement_reps: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks, "confidence": self.confidence, "reps": self.reps,
            "improvement_reps": self.improvement_reps,
            "method": "rliable: IQM (scipy trim_mean 25%) over seeds x datasets, stratified bootstrap "
                      "percentile intervals (seeds resampled within each dataset)",
            "iqm": {label: {**iv.to_dict(), "seeds": self.seeds[label]} for label, iv in self.iqm.items()},
            "excluded": self.excluded, "dropped_runs": self.dropped,
            "probability_of_improvement": [{"x": x, "saq_x": y, **iv.to_dict()}
                                           for (x, y), iv in self.improvement.items()],
            "probability_of_improvement_note": self.improvement_note,
        }


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except Exception as error:  # noqa: BLE001 - not installed, or a dependency that fails to import
        # rliable 1.2 needs arch < 8, and arch 7 fails on import under pandas 3 (a TypeError)
        raise MissingDependencyError(
            f"the aggregate statistics (IQM, stratified bootstrap intervals) need rliable, which could not "
            f"be imported ({type(error).__name__}: {error}): pip install -e \".[bench]\" -c constraints.txt"
        ) from error
    return library, metrics


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for the block and restore its state afterwards.

    rliable 1.2's stratified bootstraps draw their indices from ``np.random.choice`` (the global
    generator) whatever ``random_state`` they are given, so this is the only way to make their
    intervals reproducible; restoring the state keeps the caller's random stream untouched.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def aggregate_iqm(records: Sequence[Mapping[str, Any]], confidence: float = 0.95, reps: int = AGGREGATE_REPS,
                  seed: int = 0, tasks: Optional[Sequence[str]] = None,
                  improvement_reps: int = IMPROVEMENT_REPS) -> AggregateResult:
    """IQM across datasets per label with stratified-bootstrap intervals, and P(SAQ-X > X).

    Scores of different datasets are pooled, which is sound here because all of them are on a
    0-100 scale (normalized return; success rate in %). Deterministic for a ``seed``.

    Raises:
        MissingDependencyError: rliable is not installed.
    """
    _check_settings(confidence, reps)
    _check_settings(confidence, improvement_reps)
    rly, metrics = _rliable()
    found = score_matrices(records, tasks)
    matrices = found.matrices
    iqm: dict[str, Interval] = {}
    if matrices:
        with _global_numpy_seed(seed):
            points, intervals = rly.get_interval_estimates(
                matrices, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps,
                confidence_interval_size=confidence)
        for label, matrix in matrices.items():
            iqm[label] = Interval(float(points[label][0]), float(intervals[label][0, 0]),
                                  float(intervals[label][1, 0]), int(matrix.size))

    improvement: dict[tuple[str, str], Interval] = {}
    note: Optional[str] = None
    pairs = [(x, y) for x, y in pair_labels(records) if x in matrices and y in matrices]
    if pairs:
        try:
            paired = {f"{y} > {x}": (matrices[y], matrices[x]) for x, y in pairs}
            with _global_numpy_seed(seed + 1):
                points, intervals = rly.get_interval_estimates(
                    paired, metrics.probability_of_improvement, reps=improvement_reps,
                    confidence_interval_size=confidence)
            for x, y in pairs:
                key = f"{y} > {x}"
                value = np.ravel(points[key])[0]
                bounds = np.ravel(intervals[key])
                if not (math.isfinite(value) and np.all(np.isfinite(bounds))):
                    raise DataError(f"non-finite probability of improvement for {key}")
                improvement[(x, y)] = Interval(float(value), float(bounds[0]), float(bounds[-1]),
                                               int(min(matrices[x].shape[0], matrices[y].shape[0])))
        except Exception as error:  # noqa: BLE001 - an optional view: skipped with the reason
            improvement = {}
            note = f"probability of improvement skipped: {error!r}"
    else:
        note = "no X / SAQ-X pair has complete score matrices for both"
    return AggregateResult(found.tasks, iqm, found.seeds, found.excluded, found.dropped, improvement, note,
                           confidence, reps, improvement_reps)


# ---------------------------------------------------------------------------------- wall clock
def point_at_seconds(curve: Sequence[Mapping[str, float]], seconds: float) -> Optional[Mapping[str, float]]:
    """The last curve point measured at or before ``seconds`` of training, or ``None`` if the first
    point came later. (A point's ``seconds`` is its training time so far; evaluation excluded.)"""
    best = None
    for point in curve:
        if point["seconds"] <= seconds * (1 + 1e-9) and (best is None or point["seconds"] >= best["seconds"]):
            best = point
    return best


def equal_wall_clock(records: Sequence[Mapping[str, Any]], confidence: float = 0.95,
                     reps: int = BOOTSTRAP_REPS, seed: int = 0) -> list[dict[str, Any]]:
    """Per dataset and X / SAQ-X pair: both at the training time the faster one needed.

    The faster one (smaller mean training seconds over its seeds) is scored by its final
    evaluation; the slower one by the last point of each seed's learning curve at or before that
    time, averaged over the seeds that have one (``slow_n`` of ``slow_total``). ``slow_score`` is
    ``None`` when no seed of the slower one had a curve point that early.
    """
    groups = _by_group(records)
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        for base, saq in pair_labels(records):
            if (dataset, base) not in groups or (dataset, saq) not in groups:
                continue
            members = {base: groups[(dataset, base)], saq: groups[(dataset, saq)]}
            seconds = {k: float(np.mean([m["train_seconds"] for m in v])) for k, v in members.items()}
            fast, slow = (saq, base) if seconds[saq] <= seconds[base] else (base, saq)
            budget = seconds[fast]
            points = [p for p in (point_at_seconds(m["curve"], budget) for m in members[slow]) if p is not None]
            row: dict[str, Any] = {
                "dataset": dataset, "x": base, "saq_x": saq, "faster": fast, "slower": slow,
                "seconds": budget, "fast_steps": float(np.mean([m["steps"] for m in members[fast]])),
                "fast_score": bootstrap_ci([m["score"] for m in members[fast]], confidence, reps, seed).to_dict(),
                "slow_train_seconds": seconds[slow],
                "slow_final_score": float(np.mean([m["score"] for m in members[slow]])),
                "slow_total": len(members[slow]), "slow_n": len(points),
                "slow_score": None, "slow_seconds": None, "slow_step": None,
            }
            if points:
                row.update(slow_score=float(np.mean([p["score"] for p in points])),
                           slow_seconds=float(np.mean([p["seconds"] for p in points])),
                           slow_step=float(np.mean([p["step"] for p in points])))
            rows.append(row)
    return rows
