"""Codebook-health and reconstruction statistics shared by fitting and relabeling.

SAQ reports none of these; we do, because a VQ-VAE whose codes collapse onto a few entries
(low perplexity, many dead codes) silently shrinks the discrete action space the offline RL
algorithm sees (SAQ eq. 5 maps every action to its nearest used code).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def code_usage_from_counts(counts: np.ndarray) -> dict[str, Any]:
    """Usage statistics of a codebook from the number of times each code was chosen.

    ``counts`` is ``(n_codes,)``, one non-negative count per code (e.g. a ``bincount`` of the
    codes of a dataset, or of a window of training minibatches). Returns ``usage`` (fraction per
    code, sums to 1; all zeros when nothing was counted), ``perplexity`` (``exp`` of the usage
    entropy: ``n_codes`` when usage is uniform, 1 when one code takes everything), ``dead_codes``
    (codes never chosen) and ``used_codes`` (codes chosen at least once).
    """
    counts = np.asarray(counts)
    total = max(int(counts.sum()), 1)
    usage = counts / total
    nonzero = usage[usage > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum())
    return {
        "usage": usage.tolist(),
        "perplexity": float(np.exp(entropy)),
        "dead_codes": int((counts == 0).sum()),
        "used_codes": int((counts > 0).sum()),
    }


def code_usage_stats(codes: np.ndarray, n_codes: int) -> dict[str, Any]:
    """Usage of each of ``n_codes`` codes in the integer array ``codes``.

    The statistics of :func:`code_usage_from_counts` on the per-code counts of ``codes``.
    """
    counts = np.bincount(np.asarray(codes, dtype=np.int64).ravel(), minlength=n_codes)[:n_codes]
    return code_usage_from_counts(counts)


def reconstruction_stats(actions: np.ndarray, reconstructed: np.ndarray) -> dict[str, Any]:
    """Error of ``reconstructed`` against ``actions``: MSE (summed over dims, as the
    reconstruction term of SAQ eq. 7, and per dim) and the largest absolute error."""
    diff = np.asarray(reconstructed, dtype=np.float64) - np.asarray(actions, dtype=np.float64)
    return {
        "mse": float((diff**2).sum(axis=1).mean()),
        "mse_per_dim": (diff**2).mean(axis=0).tolist(),
        "max_abs_error": float(np.abs(diff).max()) if diff.size else 0.0,
    }
