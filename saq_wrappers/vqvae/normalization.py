"""Per-dimension z-scoring of observations and actions: the one normalizer of the VQ-VAE
quantizer and of ARQ's score sampler.

SAQ's D4RL actions already lie in ``[-1, 1]``; datasets in general do not, and the reconstruction
term of SAQ eq. 7 sums squared errors over action dimensions, so without z-scoring a dimension of
large scale would dominate the loss and the choice of codes (SAQ eq. 5). ARQ's score model
(:class:`~saq_wrappers.score.support_sampler.ScoreSupportSampler`) is trained and sampled on
z-scored actions too, as in the authors' code, with its own, larger std floor. The statistics are
fitted once on the training data, in float64, and saved with the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from saq_wrappers.errors import CheckpointError, DataError

__all__ = ["NORMALIZATION_KEYS", "STAT_LIMIT", "STD_FLOOR", "Normalizer", "statistics_problem"]

#: Floor of the z-score standard deviations: a (near-)constant dimension is divided by this
#: instead of ~0, so it neither blows up nor dominates the loss.
STD_FLOOR = 1e-3
#: Largest magnitude of a mean or standard deviation: far beyond any quantity in sensible units,
#: and far below float32's overflow (3.4e38), so z-scoring and unnormalizing stay finite and
#: meaningful. Data beyond it must be rescaled; a checkpoint beyond it is refused.
STAT_LIMIT = 1e12
#: The four statistics, in the order they are saved in a checkpoint's ``normalization``.
NORMALIZATION_KEYS = ("obs_mean", "obs_std", "act_mean", "act_std")


def statistics_problem(stats: dict[str, np.ndarray], std_floor: float) -> str | None:
    """What is wrong with z-score statistics ``stats`` (the :data:`NORMALIZATION_KEYS`), or
    ``None``: every mean must be finite within ``+-STAT_LIMIT``, every std within
    ``[std_floor, STAT_LIMIT]`` (fitting floors stds at ``std_floor``, compared in float32 as
    they are stored)."""
    for key in NORMALIZATION_KEYS:
        values = np.asarray(stats[key], dtype=np.float32)
        low = np.float32(std_floor) if key.endswith("std") else np.float32(-STAT_LIMIT)
        inside = (values >= low) & (values <= np.float32(STAT_LIMIT))  # False for NaN
        if not inside.all():
            index = int(np.argmin(inside))
            return (
                f"{key}[{index}] is {float(values[index]):.6g}, expected a finite value in "
                f"[{float(low):.6g}, {STAT_LIMIT:.6g}]"
            )
    return None


@dataclass(frozen=True)
class Normalizer:
    """float32 means and (floored) standard deviations of flat observations and actions."""

    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray

    @classmethod
    def fit(cls, obs: np.ndarray, actions: np.ndarray, std_floor: float = STD_FLOOR) -> "Normalizer":
        """Statistics of ``obs (N, obs_dim)`` and ``actions (N, act_dim)``, computed in float64
        (float32 sums over millions of rows lose digits), std floored at ``std_floor``.

        Raises:
            DataError: a statistic out of range (:func:`statistics_problem`).
        """

        def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x64 = x.astype(np.float64)
            return (
                x64.mean(axis=0).astype(np.float32),
                np.maximum(x64.std(axis=0), std_floor).astype(np.float32),
            )

        obs_mean, obs_std = stats(obs)
        act_mean, act_std = stats(actions)
        normalizer = cls(obs_mean, obs_std, act_mean, act_std)
        problem = statistics_problem(normalizer.as_dict(), std_floor)
        if problem is not None:
            raise DataError(
                f"the data cannot be z-scored: {problem}; rescale the observations or actions"
            )
        return normalizer

    def as_dict(self) -> dict[str, np.ndarray]:
        """The four statistics by name (the arrays themselves, not copies)."""
        return {key: getattr(self, key) for key in NORMALIZATION_KEYS}

    def normalize_observations(self, obs: np.ndarray) -> np.ndarray:
        """``(obs - obs_mean) / obs_std`` for flat float32 observations ``(B, obs_dim)``."""
        return (obs - self.obs_mean) / self.obs_std

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """``(actions - act_mean) / act_std`` for float32 actions ``(B, act_dim)``."""
        return (actions - self.act_mean) / self.act_std

    def to_json(self) -> dict[str, list[float]]:
        """The statistics as lists of floats (the checkpoint's ``normalization`` entry)."""
        return {k: [float(v) for v in values] for k, values in self.as_dict().items()}

    @classmethod
    def from_json(cls, data: Any, obs_dim: int, act_dim: int, std_floor: float = STD_FLOOR) -> "Normalizer":
        """Inverse of :meth:`to_json` (``data`` may also hold arrays, as a tensor checkpoint
        does), checking keys, shapes and ranges (:func:`statistics_problem`: finite means, stds
        in ``[std_floor, STAT_LIMIT]``).

        Raises:
            CheckpointError: ``data`` is not a valid ``normalization`` entry for these sizes.
        """
        if not isinstance(data, dict) or set(data) != set(NORMALIZATION_KEYS):
            raise CheckpointError(
                f"checkpoint normalization must hold exactly {list(NORMALIZATION_KEYS)}, "
                f"got {data!r:.200}"
            )
        arrays = {}
        for key in NORMALIZATION_KEYS:
            want = obs_dim if key.startswith("obs") else act_dim
            try:
                array = np.asarray(data[key], dtype=np.float32)
            except (TypeError, ValueError) as error:
                raise CheckpointError(f"checkpoint normalization {key!r} is malformed") from error
            if array.shape != (want,):
                raise CheckpointError(
                    f"checkpoint normalization {key!r} has shape {array.shape}, expected ({want},)"
                )
            arrays[key] = array
        problem = statistics_problem(arrays, std_floor)
        if problem is not None:
            raise CheckpointError(f"checkpoint normalization is out of range: {problem}")
        return cls(**arrays)
