"""Exact log-likelihood of given actions through the probability-flow ODE (ARQ appendix A.2).

``log p_{t_eps}(x) = log p_T(x(T)) + int_{t_eps}^T div f(x(t), t) dt`` where ``x(t)`` solves the
PF-ODE ``dx/dt = f(x, t)`` forward from ``x(t_eps) = x`` (Song et al. 2021, appendix D.2). The
paper solves it with scipy's RK45 at ``rtol = atol = 1e-5`` and Hutchinson's estimator with
Rademacher probes; :func:`ode_log_likelihood` does the same with a torch Dormand-Prince solver on
the flattened batch (probes fixed for the whole solve), or with the exact divergence.
"""

from __future__ import annotations

import torch

from saq_wrappers.score.network import ScoreFunction
from saq_wrappers.score.ode_solvers import rk45_solve
from saq_wrappers.score.probability_flow import Divergence, augmented_ode_rhs, rademacher, resolve_divergence
from saq_wrappers.score.sde import VPSDE


@torch.no_grad()
def ode_log_likelihood(
    model: ScoreFunction,
    sde: VPSDE,
    x: torch.Tensor,
    cond: torch.Tensor,
    *,
    t_eps: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    divergence: Divergence = "hutchinson",
    n_probes: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int]:
    """``log p(x | s)`` in the normalized action space for ``x (M, d)`` and ``cond (M, ...)``.

    Returns the log-likelihoods ``(M,)`` and the number of score evaluations. Defaults are the
    paper's (RK45 at 1e-5, 10 Rademacher probes); ``divergence="exact"`` removes the estimator's
    noise for small ``d``.
    """
    d = model.action_dim
    mode = resolve_divergence(divergence, d)
    probes = rademacher((n_probes, *x.shape), generator, torch.float32) if mode == "hutchinson" else None
    f = augmented_ode_rhs(model, sde, cond, mode, fixed_probes=probes)
    y0 = torch.cat([x.to(torch.float32), torch.zeros(x.shape[0], 1)], dim=1)
    y, nfe = rk45_solve(f, y0, t_eps, sde.T, rtol=rtol, atol=atol)
    return sde.prior_log_prob(y[:, :d]) + y[:, d], nfe
