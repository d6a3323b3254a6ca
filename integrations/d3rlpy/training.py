"""Training d3rlpy algorithms under a wall-clock or step budget, with a learning curve.

Uses d3rlpy's own ``fitter`` generator (so scalers, impl building and updates are exactly what
``fit`` does) in short epochs, stopping once the budget is spent and evaluating at a fixed
wall-clock interval. Evaluation time is not charged to the training budget.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import d3rlpy
import numpy as np
import torch
from d3rlpy.dataset import ReplayBufferBase
from d3rlpy.logging import NoopAdapterFactory
from tqdm.auto import tqdm

from saq_wrappers.errors import DataError


def seed_everything(seed: int) -> None:
    """One seed for torch, numpy and d3rlpy's own generators, before building an algorithm."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    d3rlpy.seed(seed)


def _epoch_length(preferred: int, n_steps: int | None) -> int:
    """d3rlpy runs ``n_steps // n_steps_per_epoch`` whole epochs, so a step budget needs an
    epoch length that divides it: the largest divisor of ``n_steps`` not above ``preferred``."""
    if n_steps is None:
        return preferred
    return next(d for d in range(min(preferred, n_steps), 0, -1) if n_steps % d == 0)


@dataclasses.dataclass
class TrainingRecord:
    """What a budgeted run did: steps, training seconds, the curve and the last losses."""

    steps: int
    train_seconds: float
    curve: list[dict[str, float]]
    last_metrics: dict[str, float]

    @property
    def updates_per_second(self) -> float:
        return self.steps / self.train_seconds if self.train_seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "updates_per_second": self.updates_per_second,
            "curve": self.curve,
            "last_metrics": self.last_metrics,
        }


def train_with_budget(
    algo: Any,
    dataset: ReplayBufferBase,
    time_budget: float | None = None,
    n_steps: int | None = None,
    evaluate: Callable[[Any], float] | None = None,
    n_evaluations: int = 8,
    steps_per_epoch: int = 50,
    progress: bool = True,
    desc: str = "train",
) -> TrainingRecord:
    """Train ``algo`` on ``dataset`` until ``time_budget`` seconds or ``n_steps`` updates.

    ``evaluate(algo) -> float`` (e.g. a mean return) is called about ``n_evaluations`` times,
    evenly over the budget, and once at the end; each call adds a point to the curve.
    """
    if time_budget is None and n_steps is None:
        raise DataError("give a time_budget (seconds) or n_steps: expected at least one budget")
    if time_budget is not None and time_budget <= 0:
        raise DataError(f"time_budget must be > 0 seconds, got {time_budget}")
    if n_steps is not None and n_steps < 1:
        raise DataError(f"n_steps must be >= 1, got {n_steps}")
    config = getattr(algo, "config", None)
    if (n_steps is None and getattr(config, "behavior_pretrain_fraction", None)
            and getattr(config, "behavior_pretrain_steps", None) is None):
        raise DataError(
            "this algorithm learns pi_beta in the first fraction of n_steps: a run stopped by a time "
            "budget only needs a fixed phase, set behavior_pretrain_steps (or give n_steps)"
        )
    max_steps = n_steps if n_steps is not None else 10**9
    per_epoch = _epoch_length(steps_per_epoch, n_steps)

    def spent(steps: int, seconds: float) -> float:
        """Fraction of the budget used so far."""
        fractions = []
        if time_budget is not None:
            fractions.append(seconds / time_budget)
        if n_steps is not None:
            fractions.append(steps / n_steps)
        return max(fractions)

    curve: list[dict[str, float]] = []
    metrics: dict[str, float] = {}
    train_seconds, steps, next_eval = 0.0, 0, 1.0 / n_evaluations
    bar = tqdm(total=100, desc=desc, unit="%", disable=not progress,
               bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]")

    def add_point() -> None:
        if evaluate is not None:
            score = float(evaluate(algo))
            curve.append({"step": steps, "seconds": train_seconds, "score": score})
            bar.set_postfix(step=steps, score=f"{score:.1f}")

    fitter = algo.fitter(
        dataset,
        n_steps=max_steps,
        n_steps_per_epoch=per_epoch,
        logger_adapter=NoopAdapterFactory(),
        show_progress=False,
        save_interval=10**9,
    )
    started = time.perf_counter()
    for _, epoch_metrics in fitter:
        train_seconds += time.perf_counter() - started
        steps += per_epoch
        metrics = {k: float(v) for k, v in epoch_metrics.items() if np.isscalar(v)}
        used = spent(steps, train_seconds)
        bar.update(min(100.0, 100.0 * used) - bar.n)
        if used >= 1.0:
            break
        if used >= next_eval:
            add_point()
            next_eval += 1.0 / n_evaluations
        started = time.perf_counter()
    fitter.close()
    add_point()
    bar.close()
    return TrainingRecord(steps=steps, train_seconds=train_seconds, curve=curve, last_metrics=metrics)
