"""Shared by the d3rlpy algorithm tests: training without progress bars, logs or checkpoints."""

from __future__ import annotations

import d3rlpy


def quiet_fit(
    algo: d3rlpy.base.LearnableBase, dataset: d3rlpy.dataset.MDPDataset, n_steps: int, **kwargs: object
) -> list:
    """``algo.fit`` for ``n_steps`` updates in one epoch (unless ``n_steps_per_epoch`` says
    otherwise), with no progress bar, no log folder and no saved model; returns fit's metrics."""
    return algo.fit(
        dataset,
        n_steps=n_steps,
        n_steps_per_epoch=kwargs.pop("n_steps_per_epoch", n_steps),  # type: ignore[arg-type]
        show_progress=False,
        save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        **kwargs,  # type: ignore[arg-type]
    )
