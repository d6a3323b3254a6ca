"""Mode averaging removes the noise around a chosen code and keeps the choice of mode.

The simulation is the issue-37 setting in miniature: a noisy demonstrator's actions at one state,
64 codes placed on them (k-means, as a VQ-VAE's codebook settles), a classifier's code
probabilities (the mass of each code's cell) and its arg-max code as the agent's choice.
"""

from __future__ import annotations

import numpy as np
import pytest

from saq_wrappers.errors import DataError
from saq_wrappers.mode_acting import ModeAveraging

N_CODES = 64
NOISE = 0.3


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = points[rng.choice(len(points), k, replace=False)].copy()
    for _ in range(30):
        label = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if (label == j).any():
                centres[j] = points[label == j].mean(0)
    return centres


def _noisy_state(
    modes: np.ndarray, rng: np.random.Generator, n_samples: int = 300
) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes, cell masses and the arg-max code of noisy samples around ``modes`` (first 60%)."""
    share = np.array([0.6] + [0.4 / (len(modes) - 1)] * (len(modes) - 1)) if len(modes) > 1 else np.ones(1)
    which = rng.choice(len(modes), n_samples, p=share)
    samples = modes[which] + NOISE * rng.standard_normal((n_samples, modes.shape[1]))
    codes = _kmeans(samples, N_CODES, rng)
    cell = ((samples[:, None] - codes[None]) ** 2).sum(-1).argmin(1)
    mass = np.bincount(cell, minlength=N_CODES) / n_samples
    return codes, mass, int(mass.argmax())


def _error_to_nearest_mode(action: np.ndarray, modes: np.ndarray) -> tuple[float, int]:
    rms = np.sqrt(((modes - action) ** 2).mean(axis=1))
    return float(rms.min()), int(rms.argmin())


@pytest.mark.parametrize("dim", [3, 7])
def test_unimodal_noise_is_averaged_out_where_the_argmax_code_keeps_it(dim: int) -> None:
    rng = np.random.default_rng(dim)
    modes = np.zeros((1, dim))
    argmax_errors, averaged_errors = [], []
    for _ in range(12):
        codes, mass, best = _noisy_state(modes, rng)
        averaged = ModeAveraging().act(codes[None], mass[None], np.array([best]))[0]
        argmax_errors.append(_error_to_nearest_mode(codes[best], modes)[0])
        averaged_errors.append(_error_to_nearest_mode(averaged, modes)[0])
    # the arg-max cell lies ~0.2 from the centre (noise 0.3); the mode's mean within ~0.03
    assert np.mean(argmax_errors) > 0.12
    assert np.mean(averaged_errors) < 0.05


@pytest.mark.parametrize("dim", [3, 7])
def test_separate_modes_are_never_averaged_together(dim: int) -> None:
    rng = np.random.default_rng(10 + dim)
    modes = np.zeros((2, dim))
    modes[1, 0] = 2.0  # ~7 noise widths apart: two decisions, as Lift's two approach paths
    for _ in range(12):
        codes, mass, _ = _noisy_state(modes, rng)
        for start in (int(np.argmax(mass * (codes[:, 0] < 1))), int(np.argmax(mass * (codes[:, 0] > 1)))):
            averaged = ModeAveraging().act(codes[None], mass[None], np.array([start]))[0]
            error, mode = _error_to_nearest_mode(averaged, modes)
            assert mode == _error_to_nearest_mode(codes[start], modes)[1]  # the chosen mode
            assert error < 0.1  # its centre, not the midpoint (1.0 away) nor the chosen cell
    # the policy's global mean (regression's answer) sits between them, in neither mode
    assert 0.5 < (mass @ codes)[0] < 1.5


def test_result_is_a_convex_combination_inside_the_bounds() -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(20, 16, 4))
    weights = rng.dirichlet(np.ones(16), size=20)
    out = ModeAveraging(bandwidth_scale=50.0).act(actions, weights, rng.integers(0, 16, 20))
    assert out.dtype == np.float32 and out.shape == (20, 4)
    assert np.all(out >= actions.min(axis=1) - 1e-6) and np.all(out <= actions.max(axis=1) + 1e-6)
    # a kernel far wider than the codes: the climb ends at the policy's mean
    np.testing.assert_allclose(out, np.einsum("bn,bnd->bd", weights, actions), atol=5e-3)


def test_degenerate_weights() -> None:
    actions = np.array([[[0.0], [1.0], [5.0]]])
    # no weight at all: the chosen action itself
    assert ModeAveraging().act(actions, np.zeros((1, 3)), np.array([1]))[0, 0] == 1.0
    # all weight on one code: that code, wherever the choice was
    assert ModeAveraging().act(actions, np.array([[0.0, 0.0, 1.0]]), np.array([0]))[0, 0] == 5.0
    # one candidate only
    assert ModeAveraging().act(np.ones((2, 1, 2)), np.ones((2, 1)), np.zeros(2, int)).tolist() == [[1, 1]] * 2


def test_bad_inputs_are_refused() -> None:
    rule = ModeAveraging()
    actions = np.zeros((2, 4, 3))
    with pytest.raises(DataError, match="weights"):
        rule.act(actions, -np.ones((2, 4)), np.zeros(2, int))
    with pytest.raises(DataError, match="weights"):
        rule.act(actions, np.full((2, 4), np.nan), np.zeros(2, int))
    with pytest.raises(DataError, match="expected actions"):
        rule.act(actions, np.ones((2, 5)), np.zeros(2, int))
    with pytest.raises(DataError, match=r"indices must lie in \[0, 4\), got range \[0, 4\]"):
        rule.act(actions, np.ones((2, 4)), np.array([0, 4]))
    with pytest.raises(DataError, match="expected 2 indices"):
        rule.act(actions, np.ones((2, 4)), np.array([0]))
    for bad in ({"bandwidth_scale": 0.0}, {"max_iterations": 0}, {"tolerance": float("nan")}):
        with pytest.raises(DataError):
            ModeAveraging(**bad)


def test_settings_round_trip_and_unknown_keys_are_refused() -> None:
    rule = ModeAveraging(bandwidth_scale=3.0, max_iterations=7)
    assert ModeAveraging.from_dict(rule.to_dict()) == rule
    with pytest.raises(DataError, match="unknown mode-averaging settings"):
        ModeAveraging.from_dict({"bandwidth": 1.0})
    with pytest.raises(DataError, match="max_iterations"):
        ModeAveraging.from_dict({"max_iterations": 2.5})


def test_an_unweighted_candidate_far_closer_than_every_weighted_one_cannot_overflow() -> None:
    actions = np.array([[[0.0], [1e-4], [100.0], [100.1]]])
    weights = np.array([[0.0, 0.0, 0.5, 0.5]])
    out = ModeAveraging(bandwidth_scale=0.5).act(actions, weights, np.array([0]))
    assert np.isfinite(out).all() and 99.9 < out[0, 0] < 100.2
