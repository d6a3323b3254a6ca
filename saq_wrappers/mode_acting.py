"""Acting at a mode: choose a mode of the policy as SAQ does, average the noise inside it as
regression does.

An arg-max over codes finer than the data's action noise turns noise into decisions: with K = 64
codes at a state, a noisy demonstrator's recorded action falls in many neighbouring cells, the
classifier learns the mass of each cell, and its arg-max is the heaviest cell, not the centre
of the mode. Regression averages the noise but also the modes. :class:`ModeAveraging` keeps
the discrete choice and removes the noise around it:

1. The policy's code probabilities ``w_k(s)`` and the decoded actions ``a_k = g(s, k)`` (SAQ
   eq. 5's decoder) define a smoothed action density at ``s``,
   ``p(a) = sum_k w_k N(a; a_k, diag(h^2))``.
2. Starting at the chosen code's action ``a_{k*}``, mean-shift climbs that density to its nearest
   mode: ``x <- sum_k w_k K_h(x - a_k) a_k / sum_k w_k K_h(x - a_k)``. The fixed point is the
   policy-weighted mean of the decoded actions of the codes near the chosen one (near: within a
   few bandwidths), i.e. the mean of the mode the agent chose.
3. The bandwidth comes from the quantizer's geometry at ``s``, not from a constant tuned per
   dataset: per dimension, ``h_d = c * sqrt(sum_k w_k delta_kd^2)``, where ``delta_kd`` is the
   offset in dimension ``d`` from code ``k``'s action to the nearest other code's action, and
   ``c = 2``. A kernel narrower than the codes' spacing sees every code as its own bump (the
   smoothed density then has a mode at every cell and the climb goes nowhere); one about two
   spacings wide spans a code's neighbours, so cell sizes (what a classifier's arg-max reacts to)
   no longer matter, and it is still narrow wherever the codes are dense, i.e. inside a mode.

Why this is safe for both kinds of data: on unimodal noise every start climbs to the one mode,
once the kernel spans neighbouring codes (a Gaussian smoothed by a Gaussian keeps its mode), so
the action is the noise-free centre a regression would give; modes separated by a gap wider than
a few code spacings stay apart (two equal modes ``2m`` apart stay apart for ``h < m``), so the
climb stays in the mode the agent chose and nothing is averaged across modes. The simulation in
``tests/test_mode_acting.py`` (noisy samples, 64 k-means codes, cell masses as weights, the
arg-max cell as the start) checks both, in 3 and 7 dimensions. The result is a convex
combination of decoded actions, so it lies inside the action bounds whenever they do.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from saq_wrappers.action_set import check_indices
from saq_wrappers.errors import DataError
from saq_wrappers.validation import check_int, check_number

__all__ = ["ModeAveraging"]

#: Smallest bandwidth (in action units) used when the policy puts all its weight on one code
#: (zero spread): the climb then stays on that code's action.
MIN_BANDWIDTH = 1e-6
#: States climbed together: the bandwidth compares every pair of candidates (``n^2 * D`` numbers
#: per state), which bounds memory to tens of MB for ``n = 64``.
CHUNK_STATES = 128


@dataclasses.dataclass(frozen=True)
class ModeAveraging:
    """Act at the mode of the policy's smoothed action density nearest to the chosen code.

    Args:
        bandwidth_scale: ``c``, the kernel's width in code spacings (2.0: spans a code's
            neighbours; larger merges more, smaller keeps closer to the chosen code's action).
        max_iterations: mean-shift steps at most.
        tolerance: stop once no action moves by more than this fraction of its bandwidth.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> actions = (0.5 + 0.3 * rng.standard_normal((1, 64, 2))).astype(np.float32)
        >>> weights = np.full((1, 64), 1 / 64)
        >>> start = np.array([int(np.argmax(actions[0, :, 0]))])  # the code farthest out
        >>> bool(np.abs(ModeAveraging().act(actions, weights, start) - 0.5).max() < 0.15)
        True
    """

    bandwidth_scale: float = 2.0
    max_iterations: int = 50
    tolerance: float = 1e-3

    def __post_init__(self) -> None:
        check_number("bandwidth_scale", self.bandwidth_scale, 0.0, exclusive_minimum=True)
        check_int("max_iterations", self.max_iterations, 1, 10_000)
        check_number("tolerance", self.tolerance, 0.0, exclusive_minimum=True)

    def bandwidth(self, actions: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``(B, D)`` per-state, per-dimension bandwidths: ``c`` times the policy-weighted RMS
        offset from each candidate to its nearest other candidate (see the module docstring)."""
        n = actions.shape[1]
        if n < 2:
            return np.full((actions.shape[0], actions.shape[2]), MIN_BANDWIDTH)
        squares = np.einsum("bnd,bnd->bn", actions, actions)
        distance = squares[:, :, None] + squares[:, None, :] - 2.0 * np.matmul(actions, actions.transpose(0, 2, 1))
        distance[:, np.arange(n), np.arange(n)] = np.inf
        nearest = np.argmin(distance, axis=2)
        gap = actions - np.take_along_axis(actions, nearest[:, :, None], axis=1)
        spacing = np.sqrt(np.einsum("bn,bnd->bd", weights, gap**2))
        return np.maximum(self.bandwidth_scale * spacing, MIN_BANDWIDTH)

    def act(self, actions: np.ndarray, weights: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Climb from each state's chosen candidate to the mode of its weighted action density.

        Args:
            actions: ``(B, n, D)`` candidate actions per state (the decoded codes).
            weights: ``(B, n)`` non-negative policy weights per state (normalised here; a state
                whose weights are all zero keeps its chosen action).
            start: ``(B,)`` index of the chosen candidate per state.

        Returns:
            ``(B, D)`` float32 actions, each a convex combination of that state's candidates.

        Raises:
            DataError: shapes that do not match, negative or non-finite weights, an index
                outside ``[0, n)``.
        """
        cands = np.asarray(actions, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        if cands.ndim != 3 or w.shape != cands.shape[:2]:
            raise DataError(f"expected actions (B, n, D) and weights (B, n), got {cands.shape} and {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError("weights must be finite and non-negative")
        batch, n = w.shape
        index = check_indices(start, n, batch)
        out = np.empty((batch, cands.shape[2]), dtype=np.float32)
        for first in range(0, batch, CHUNK_STATES):
            part = slice(first, first + CHUNK_STATES)
            out[part] = self._climb(cands[part], w[part], index[part])
        return out

    def _climb(self, cands: np.ndarray, w: np.ndarray, index: np.ndarray) -> np.ndarray:
        chosen = cands[np.arange(len(index)), index]
        total = w.sum(axis=1)
        live = total > 0
        if not live.any():
            return chosen
        w, cands, x = w[live] / total[live, None], cands[live], chosen[live].copy()
        h = self.bandwidth(cands, w)
        # the climb runs in units of the bandwidth: y = x / h, candidates S = a / h
        scaled = cands / h[:, None, :]
        y = x / h
        unweighted = np.where(w > 0, 0.0, np.inf)  # never the reference distance below (and clamped
        # to exp(0) there, times its zero weight: a far closer unweighted candidate cannot overflow)
        for _ in range(self.max_iterations):
            sq = np.square(scaled - y[:, None, :]).sum(axis=2)
            # shift by the nearest weighted candidate's distance, so its kernel value is exp(0) = 1:
            # no underflow to an all-zero sum however far y is from the weighted candidates
            sq -= (sq + unweighted).min(axis=1, keepdims=True)
            np.maximum(sq, 0.0, out=sq)
            sq *= -0.5
            kernel = np.exp(sq, out=sq)
            kernel *= w
            moved = np.matmul(kernel[:, None, :], scaled)[:, 0, :] / kernel.sum(axis=1, keepdims=True)
            step = np.abs(moved - y).max()
            y = moved
            if step < self.tolerance:
                break
        x = y * h
        out = chosen.copy()
        out[live] = x
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings (saved with a quantizer, see ``VQVAEQuantizer.acting``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModeAveraging":
        """Inverse of :meth:`to_dict`; unknown keys and bad values raise :class:`DataError`."""
        if not isinstance(data, Mapping):
            raise DataError(f"mode-averaging settings must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"unknown mode-averaging settings {unknown}; expected some of {sorted(known)}")
        return cls(**dict(data))
