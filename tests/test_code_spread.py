"""The code-spread diagnosis measures the geometry its docstring promises.

A fake quantizer with a known decoder (code k at a state decodes to ``k * step`` in every action
dimension) makes every number computable by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.diagnostics.code_spread import code_geometry, label_state_spread, perplexity


class _LineQuantizer:
    """Codes 0..3 decode to ``k * step`` in both action dimensions, at every state."""

    n_codes = 4

    def __init__(self, step: float) -> None:
        self.step = step

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actions = np.arange(self.n_codes, dtype=np.float32) * self.step
        decoded = np.broadcast_to(actions[None, :, None], (len(obs), self.n_codes, 2)).copy()
        return decoded, np.ones((len(obs), self.n_codes), bool)


def test_spread_nearest_and_within_are_the_codes_geometry_around_the_mean_action() -> None:
    obs = np.zeros((2, 3), np.float32)
    means = np.array([[0.0, 0.0], [0.25, 0.25]], np.float32)
    geometry = code_geometry(_LineQuantizer(0.2), obs, means)  # type: ignore[arg-type]
    # codes decode to 0, 0.2, 0.4, 0.6: standard deviation 0.2 * sqrt(1.25) in each dimension
    assert geometry["spread"] == pytest.approx(0.2 * math.sqrt(1.25), rel=1e-5)
    # nearest: 0 at the first state, 0.05 (code 1) at the second
    assert geometry["nearest"] == pytest.approx(math.sqrt(0.05**2 / 2), rel=1e-4)
    # within 0.1: code 0 at the first state; codes 1 (0.05) and 2 (0.15: no) at the second
    assert geometry["within"] == pytest.approx(2 / 8)


def test_codes_that_collapse_onto_the_action_are_all_within() -> None:
    obs = np.zeros((3, 3), np.float32)
    geometry = code_geometry(_LineQuantizer(0.0), obs, np.zeros((3, 2), np.float32))  # type: ignore[arg-type]
    assert geometry == {"spread": 0.0, "nearest": 0.0, "within": 1.0}


def test_perplexity_counts_the_codes_in_use() -> None:
    assert perplexity(np.array([0, 1, 2, 3] * 5), 64) == pytest.approx(4.0)
    assert perplexity(np.array([7] * 9), 64) == pytest.approx(1.0)


def test_label_state_spread_tells_codes_that_split_actions_from_codes_that_split_states() -> None:
    rng = np.random.default_rng(0)
    states = rng.normal(size=(400, 3))
    everywhere = rng.integers(0, 8, 400)  # every code labels states all over the data
    by_region = (states > 0) @ np.array([1, 2, 4])  # each code labels an octant of its own
    assert label_state_spread(states, everywhere) == pytest.approx(1.0, abs=0.05)
    # within an octant each coordinate keeps 1 - 2/pi of its variance
    assert label_state_spread(states, by_region) == pytest.approx(np.sqrt(1 - 2 / np.pi), abs=0.05)
    assert label_state_spread(states, np.zeros(400, int)) == pytest.approx(1.0)
