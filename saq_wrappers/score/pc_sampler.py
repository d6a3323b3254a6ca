"""The paper's predictor-corrector sampler of the behavior model (ARQ appendix A.2).

Reverse-SDE predictor-corrector: an Euler-Maruyama predictor and one Langevin corrector step with
signal-to-noise ratio 0.16 per predictor step, 500 steps on ``[1e-3, 1]``. It returns samples
only; their likelihood needs a separate PF-ODE solve
(:func:`saq_wrappers.score.likelihood.ode_log_likelihood`), which is why
:func:`~saq_wrappers.score.probability_flow.ode_sample` is the default path. Batched like it:
``cond`` holds per-state features, each state gets ``n`` samples.
"""

from __future__ import annotations

import torch

from saq_wrappers.score.network import ScoreFunction
from saq_wrappers.score.sde import VPSDE


@torch.no_grad()
def pc_sample(
    model: ScoreFunction,
    sde: VPSDE,
    cond: torch.Tensor,
    n: int,
    *,
    steps: int = 500,
    snr: float = 0.16,
    t_end: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ARQ appendix A.2: predictor-corrector sampling of the reverse SDE, ``(B, n, d)``.

    ``steps`` Euler-Maruyama predictor steps on a uniform grid from ``T`` to ``t_end``, each
    preceded by one Langevin corrector step whose step size is set from the score norm so that
    the signal-to-noise ratio is ``snr`` (per sample; Song et al. 2021, Algorithm 5 for VP).
    The last predictor step returns its mean (no noise), as in the authors' code.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    d = model.action_dim
    B = cond.shape[0]
    rows = cond.repeat_interleave(n, dim=0)
    x = torch.randn(B * n, d, generator=generator)
    times = torch.linspace(sde.T, t_end, steps)
    dt = -(sde.T - t_end) / steps
    x_mean = x
    for i in range(steps):
        t = times[i : i + 1]
        beta = sde.beta(t)
        # Langevin corrector: alpha = 1 - beta_i of the discretized VP chain.
        alpha = 1.0 - beta / steps
        grad = model.score(x, rows, t)
        z = torch.randn(x.shape, generator=generator)
        # Norms averaged over the n samples of each state (Song et al. average over the batch,
        # which is one state's samples in the authors' conditional code): a per-sample norm
        # would explode the step where the score vanishes between modes.
        grad_norm = grad.norm(dim=-1).reshape(B, n).mean(1).clamp_min(1e-12)
        noise_norm = z.norm(dim=-1).reshape(B, n).mean(1)
        step = (2.0 * alpha * (snr * noise_norm / grad_norm) ** 2).repeat_interleave(n)[:, None]
        x = x + step * grad + torch.sqrt(2.0 * step) * z
        # Euler-Maruyama predictor on the reverse SDE dx = [f - g^2 score] dt + g dw.
        score = model.score(x, rows, t)
        drift = -0.5 * beta * x - beta * score
        z = torch.randn(x.shape, generator=generator)
        x_mean = x + drift * dt
        x = x_mean + torch.sqrt(beta * (-dt)) * z
    return x_mean.reshape(B, n, d)
