"""Codebook-health and reconstruction statistics shared by fitting and relabeling."""

from __future__ import annotations

from typing import Any

import numpy as np


def code_usage_stats(codes: np.ndarray, n_codes: int) -> dict[str, Any]:
    """Usage of each of ``n_codes`` codes in ``codes``.

    Returns ``usage`` (fraction per code, sums to 1), ``perplexity`` (``exp`` of the usage
    entropy: ``n_codes`` when usage is uniform, 1 when one code takes everything) and
    ``dead_codes`` (codes never used).
    """
    counts = np.bincount(np.asarray(codes, dtype=np.int64).ravel(), minlength=n_codes)[:n_codes]
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


def reconstruction_stats(actions: np.ndarray, reconstructed: np.ndarray) -> dict[str, Any]:
    """Error of ``reconstructed`` against ``actions``: MSE (summed over dims, as SAQ's loss,
    and per dim) and the largest absolute error."""
    diff = np.asarray(reconstructed, dtype=np.float64) - np.asarray(actions, dtype=np.float64)
    return {
        "mse": float((diff**2).sum(axis=1).mean()),
        "mse_per_dim": (diff**2).mean(axis=0).tolist(),
        "max_abs_error": float(np.abs(diff).max()) if diff.size else 0.0,
    }
