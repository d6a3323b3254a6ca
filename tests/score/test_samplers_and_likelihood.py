"""Exact checks of the SDE, samplers and likelihoods on closed-form conditional mixtures.

The score model here is :class:`GaussianMixtureScore`, whose score and marginal densities are
known exactly, so every error measured is the solver's. Tolerances (nats, normalized space):

* fast path (RK4, 10 steps, exact divergence) vs exact ``log p_{t_end}``: median < 0.02,
  99th percentile < 0.15, max < 0.6 over all samples;
* slow path (RK45 at 1e-5, exact divergence) vs exact ``log p_0``: max < 0.05;
* fast vs slow on the same samples: 99th percentile < 0.15.
"""

from __future__ import annotations

import pytest
import torch

from saq_wrappers.score import GaussianMixtureScore, VPSDE, ode_log_likelihood, ode_sample, pc_sample
from saq_wrappers.score.probability_flow import score_and_divergence

SDE = VPSDE()
T_END = 1e-3


def _means_1d(obs: torch.Tensor) -> torch.Tensor:
    # Figure A.1-like: two disjoint narrow modes whose location depends on the state.
    s = obs[:, :1]
    return torch.stack([-1.0 + 0.5 * s, 1.5 + 0.0 * s], dim=1)  # (B, 2, 1)


def _means_2d(obs: torch.Tensor) -> torch.Tensor:
    base = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]])
    return base[None] + 0.3 * obs[:, :1, None]  # (B, 3, 2)


MIXTURES = {
    "1d": lambda: GaussianMixtureScore(_means_1d, [0.1, 0.2], [0.3, 0.7], 1, SDE),
    "2d": lambda: GaussianMixtureScore(_means_2d, [0.05, 0.15, 0.1], [1.0, 1.0, 1.0], 2, SDE),
}


def _setup(name: str) -> tuple[GaussianMixtureScore, torch.Tensor]:
    model = MIXTURES[name]()
    obs = torch.linspace(-1.0, 1.0, 16)[:, None]
    return model, model.condition(obs)


def _in_support(model: GaussianMixtureScore, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """Within 5 component stds of some component mean."""
    dist = (x[:, None, :] - cond).norm(dim=-1) / model.stds[None, :]
    return dist.min(dim=1).values < 5.0


def test_analytic_score_is_gradient_of_its_log_density() -> None:
    model, cond = _setup("2d")
    x = torch.randn(len(cond), 2, requires_grad=True)
    t = torch.full((1,), 0.3)
    (grad,) = torch.autograd.grad(model.log_prob_t(x, cond, t).sum(), x)
    torch.testing.assert_close(model.score(x.detach(), cond, t), grad, rtol=1e-4, atol=1e-4)


def test_exact_divergence_matches_jacobian_trace() -> None:
    model, cond = _setup("2d")
    x = torch.randn(len(cond), 2)
    t = torch.full((1,), 0.05)
    _, div = score_and_divergence(model, x, cond, t)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda z: model.score(z[None], cond[i : i + 1], t)[0], x[i])
        assert div[i].item() == pytest.approx(torch.trace(jac).item(), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("name", ["1d", "2d"])
def test_fast_path_log_likelihood_matches_true_density(name: str) -> None:
    model, cond = _setup(name)
    x, log_lik = ode_sample(model, SDE, cond, 64, generator=torch.Generator().manual_seed(0))
    d = model.action_dim
    rows = cond.repeat_interleave(64, dim=0)
    flat = x.reshape(-1, d)
    true = model.log_prob_t(flat, rows, torch.full((1,), T_END))
    err = (log_lik.reshape(-1) - true).abs()
    assert err.median() < 0.02
    assert err.quantile(0.99) < 0.15
    assert err.max() < 0.6
    # Samples fall in the (disjoint) support and the modes keep their weights.
    assert _in_support(model, flat, rows).float().mean() > 0.99
    nearest = (flat[:, None, :] - rows).norm(dim=-1).argmin(dim=1)
    freq = torch.bincount(nearest, minlength=len(model.stds)).float() / len(nearest)
    torch.testing.assert_close(freq, model.log_weights.exp(), atol=0.05, rtol=0)
    # eps = e^-5 keeps (almost exactly) the samples the true density keeps.
    agree = ((log_lik.reshape(-1) > -5.0) == (true > -5.0)).float().mean()
    assert agree > 0.99


def test_fast_path_hutchinson_is_unbiased() -> None:
    model, cond = _setup("2d")
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(len(cond), 32, 2, generator=gen)
    _, exact = ode_sample(model, SDE, cond, 32, noise=noise, divergence="exact")
    _, hutch = ode_sample(model, SDE, cond, 32, noise=noise, divergence="hutchinson", n_probes=4, generator=gen)
    diff = hutch - exact
    assert diff.mean().abs() < 0.05
    assert diff.abs().median() < 0.3


@pytest.mark.parametrize("name", ["1d", "2d"])
def test_slow_path_pc_samples_and_rk45_likelihood(name: str) -> None:
    model, cond = _setup(name)
    cond = cond[::4]
    n = 16
    x = pc_sample(model, SDE, cond, n, steps=200, generator=torch.Generator().manual_seed(2))
    d = model.action_dim
    rows = cond.repeat_interleave(n, dim=0)
    flat = x.reshape(-1, d)
    assert _in_support(model, flat, rows).float().mean() > 0.97
    log_lik, nfe = ode_log_likelihood(model, SDE, flat, rows, divergence="exact")
    true = model.log_prob(flat, rows)
    assert (log_lik - true).abs().max() < 0.05
    assert nfe > 20


@pytest.mark.parametrize("name", ["1d", "2d"])
def test_fast_and_slow_likelihoods_agree_on_the_same_samples(name: str) -> None:
    model, cond = _setup(name)
    x, fast = ode_sample(model, SDE, cond, 16, generator=torch.Generator().manual_seed(3))
    d = model.action_dim
    rows = cond.repeat_interleave(16, dim=0)
    slow, _ = ode_log_likelihood(model, SDE, x.reshape(-1, d), rows, t_eps=T_END, divergence="exact")
    diff = (fast.reshape(-1) - slow).abs()
    assert diff.quantile(0.99) < 0.15
    assert diff.median() < 0.02


def test_samplers_reject_bad_n() -> None:
    model, cond = _setup("1d")
    with pytest.raises(ValueError, match="n must be >= 1"):
        ode_sample(model, SDE, cond, 0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        pc_sample(model, SDE, cond, 0)


# --- exponential multistep predictor-corrector (the ScoreSupportSampler default) ---------------
# Same tolerances as the RK4 fast path above; 28 steps is the sampler's default.
MULTISTEP = dict(method="multistep", steps=28, order=2)


def test_forward_mode_divergence_matches_autograd() -> None:
    from saq_wrappers.score import EnsembleScore, ScoreNet

    torch.manual_seed(0)
    nets = [ScoreNet(3, 4, hidden=32, n_blocks=2) for _ in range(2)]
    for model in (nets[0], EnsembleScore(nets)):
        obs = torch.randn(10, 3)
        cond = model.condition(obs).detach()
        x = torch.randn(10, 4)
        t = torch.full((1,), 0.2)
        ref_s, ref_div = score_and_divergence(model, x, cond, t)
        with torch.no_grad():
            s, div = model.score_and_divergence(x, cond, t)
            torch.testing.assert_close(s, model.score(x, cond, t))
            bf_s, bf_div = model.score_and_divergence(x, cond, t, torch.bfloat16)
        torch.testing.assert_close(s, ref_s, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(div, ref_div, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(bf_s, ref_s, rtol=1e-5, atol=1e-5)  # primal stays float32
        assert (bf_div - ref_div).abs().max() < 0.02 * ref_div.abs().max() + 1e-3


@pytest.mark.parametrize("name", ["1d", "2d"])
def test_multistep_log_likelihood_matches_true_density(name: str) -> None:
    model, cond = _setup(name)
    x, log_lik = ode_sample(model, SDE, cond, 64, generator=torch.Generator().manual_seed(0), **MULTISTEP)
    d = model.action_dim
    rows = cond.repeat_interleave(64, dim=0)
    flat = x.reshape(-1, d)
    true = model.log_prob_t(flat, rows, torch.full((1,), T_END))
    err = (log_lik.reshape(-1) - true).abs()
    assert err.median() < 0.02
    assert err.quantile(0.99) < 0.15
    assert err.max() < 0.6
    assert _in_support(model, flat, rows).float().mean() > 0.99
    nearest = (flat[:, None, :] - rows).norm(dim=-1).argmin(dim=1)
    freq = torch.bincount(nearest, minlength=len(model.stds)).float() / len(nearest)
    torch.testing.assert_close(freq, model.log_weights.exp(), atol=0.05, rtol=0)
    agree = ((log_lik.reshape(-1) > -5.0) == (true > -5.0)).float().mean()
    assert agree > 0.99


@pytest.mark.parametrize("name", ["1d", "2d"])
def test_multistep_and_slow_likelihoods_agree_on_the_same_samples(name: str) -> None:
    model, cond = _setup(name)
    x, fast = ode_sample(model, SDE, cond, 16, generator=torch.Generator().manual_seed(3), **MULTISTEP)
    d = model.action_dim
    rows = cond.repeat_interleave(16, dim=0)
    slow, _ = ode_log_likelihood(model, SDE, x.reshape(-1, d), rows, t_eps=T_END, divergence="exact")
    diff = (fast.reshape(-1) - slow).abs()
    assert diff.quantile(0.99) < 0.15
    assert diff.median() < 0.02


def test_multistep_samples_agree_with_rk4_and_hutchinson_is_unbiased() -> None:
    model, cond = _setup("2d")
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(len(cond), 32, 2, generator=gen)
    x_rk4, _ = ode_sample(model, SDE, cond, 32, noise=noise)
    x_ms, exact = ode_sample(model, SDE, cond, 32, noise=noise, **MULTISTEP)
    # Same prior draws -> (nearly) the same PF-ODE endpoints.
    assert (x_ms - x_rk4).norm(dim=-1).median() < 0.01
    _, hutch = ode_sample(model, SDE, cond, 32, noise=noise, divergence="hutchinson", n_probes=4,
                          generator=gen, **MULTISTEP)
    diff = hutch - exact
    assert diff.mean().abs() < 0.05
    assert diff.abs().median() < 0.3


def test_multistep_rejects_bad_order() -> None:
    model, cond = _setup("1d")
    with pytest.raises(ValueError, match="order"):
        ode_sample(model, SDE, cond, 4, method="multistep", order=0)
