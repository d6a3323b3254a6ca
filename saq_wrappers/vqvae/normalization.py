"""Per-dimension z-scoring of observations and actions: the one normalizer of the VQ-VAE
quantizer and of ARQ's score sampler, and the one rule for near-constant observation dimensions.

SAQ's D4RL actions already lie in ``[-1, 1]``; datasets in general do not, and the reconstruction
term of SAQ eq. 7 sums squared errors over action dimensions, so without z-scoring a dimension of
large scale would dominate the loss and the choice of codes (SAQ eq. 5). ARQ's score model
(:class:`~saq_wrappers.score.support_sampler.ScoreSupportSampler`) is trained and sampled on
z-scored actions too, as in the authors' code, with its own, larger std floor. The statistics are
fitted once on the training data, in float64, and saved with the checkpoint.

Observations follow :func:`robust_std` (see its docstring for the rule and why): a dimension that
did not vary in the data is scaled by the typical spread of the dimensions that did, not by its
own (near-)zero spread, so a sensor that was constant in the demonstrations and moves in
deployment cannot become a huge input. The d3rlpy presets' observation scaler
(``saq_wrappers.integrations.d3rlpy.scalers``) applies the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from saq_wrappers.errors import CheckpointError, DataError

__all__ = [
    "NEGLIGIBLE_SPREAD",
    "NORMALIZATION_KEYS",
    "STAT_LIMIT",
    "STD_FLOOR",
    "Normalizer",
    "near_constant_dimensions",
    "robust_std",
    "statistics_problem",
]

#: Floor of the z-score standard deviations, a numerical guard: no std is ever below it, so
#: nothing is divided by ~0. Near-constant observation dimensions are handled by
#: :func:`robust_std`, not by this floor: in arbitrary units it says nothing about how far a
#: dimension may move at run time.
STD_FLOOR = 1e-3
#: A dimension whose standard deviation is below this fraction of the reference spread (the
#: median std of the dimensions that vary, :func:`near_constant_dimensions`) did not vary in the
#: data: two orders of magnitude below the typical dimension, where sensor jitter and rounding
#: live and measured state rarely does.
NEGLIGIBLE_SPREAD = 1e-2
#: Largest magnitude of a mean or standard deviation: far beyond any quantity in sensible units,
#: and far below float32's overflow (3.4e38), so z-scoring and unnormalizing stay finite and
#: meaningful. Data beyond it must be rescaled; a checkpoint beyond it is refused.
STAT_LIMIT = 1e12
#: The four statistics, in the order they are saved in a checkpoint's ``normalization``.
NORMALIZATION_KEYS = ("obs_mean", "obs_std", "act_mean", "act_std")


def near_constant_dimensions(std: np.ndarray) -> tuple[np.ndarray, float]:
    """Which dimensions did not vary in the data, and the reference spread they are judged by.

    The reference is the median standard deviation of the dimensions that vary, and a dimension
    is near-constant when its std is below :data:`NEGLIGIBLE_SPREAD` times the reference. The two
    definitions depend on each other, so they are solved from below: start from every dimension
    with a positive std, take the median, drop those under the threshold, and repeat until
    nothing is dropped (each round only raises the median, so it ends within ``len(std)``
    rounds). Constant and jittering dimensions therefore never drag the reference down: in the
    D4RL kitchen data, 30 goal dimensions are exactly constant and 8 object dimensions only
    jitter (std 3e-5 to 3e-4); they are all near-constant, and the reference is the median of
    the 22 dimensions that move (about 0.07). The rule is scale-free: multiplying every
    observation by ``c`` multiplies the reference by ``c`` and flags the same dimensions.

    Args:
        std: per-dimension standard deviations ``(d,)``; non-finite entries are neither
            near-constant nor part of the reference (the caller's range check reports them).

    Returns:
        ``(mask, reference)``: a boolean ``(d,)`` mask of the near-constant dimensions, and the
        reference spread (1.0, the data's own units, when no dimension varies).
    """
    std = np.asarray(std, dtype=np.float64)
    finite = np.isfinite(std)
    varies = finite & (std > 0)
    reference = 1.0
    while varies.any():
        reference = float(np.median(std[varies]))
        kept = varies & (std >= NEGLIGIBLE_SPREAD * reference)
        if np.array_equal(kept, varies):
            break
        varies = kept
    if not varies.any():
        reference = 1.0
    return finite & ~varies, reference


def robust_std(std: np.ndarray) -> np.ndarray:
    """Observation standard deviations for z-scoring: ``std`` with every near-constant dimension
    (:func:`near_constant_dimensions`) given the reference spread instead, as float64.

    Why: z-scoring divides by each dimension's own spread, and a dimension that did not vary
    has none, so a floor in absolute units (``1e-3``) used to stand in for it. Then a move of a
    few thousandths at run time became several standard deviations of an input the networks
    never saw change. That is what happened on the D4RL kitchen data: object dimensions that
    only jittered in the demonstrations (std 3e-5 to 3e-4) met the environment's observation
    noise (about 0.01) and SAQ-BC collapsed, while dividing those dimensions by 0.1 instead
    restored its score. Real robots have sensors that were constant in the demonstrations and
    move in deployment. The data give a near-constant dimension no scale of its own, and the
    only scale they do give is the typical spread of the dimensions that vary:
    with it, a run-time move of ``delta`` is an input of ``delta / reference``, no larger than
    the same move of a typical dimension, while the dimension's jitter in the data stays below
    1% of a unit, so the networks learn nothing from it. Every dimension that varies keeps its
    own spread, so data without near-constant dimensions are standardized exactly as before.
    Used by :meth:`Normalizer.fit` (observations) and by the d3rlpy presets' observation scaler
    (``saq_wrappers.integrations.d3rlpy.scalers``), so the quantizer, the score sampler and every
    preset see the same inputs' scales.
    """
    std = np.asarray(std, dtype=np.float64)
    near_constant, reference = near_constant_dimensions(std)
    return np.where(near_constant, reference, std)


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
    """float32 means and standard deviations of flat observations and actions (observation stds
    by :func:`robust_std`, every std floored; see :meth:`fit`)."""

    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray

    @classmethod
    def fit(cls, obs: np.ndarray, actions: np.ndarray, std_floor: float = STD_FLOOR) -> "Normalizer":
        """Statistics of ``obs (N, obs_dim)`` and ``actions (N, act_dim)``, computed in float64
        (float32 sums over millions of rows lose digits). Observation stds follow
        :func:`robust_std` (a near-constant dimension gets the typical spread of those that
        vary); then every std is floored at ``std_floor``. Actions get the floor alone: they are
        the decoder's outputs, reproduced in their own units, not inputs that move at run time.

        Raises:
            DataError: a statistic out of range (:func:`statistics_problem`).
        """

        def stats(x: np.ndarray, observations: bool) -> tuple[np.ndarray, np.ndarray]:
            x64 = x.astype(np.float64)
            std = x64.std(axis=0)
            if observations:
                std = robust_std(std)
            return x64.mean(axis=0).astype(np.float32), np.maximum(std, std_floor).astype(np.float32)

        obs_mean, obs_std = stats(obs, observations=True)
        act_mean, act_std = stats(actions, observations=False)
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
