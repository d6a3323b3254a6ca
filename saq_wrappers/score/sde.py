"""The variance-preserving SDE of ARQ's behavior model (ARQ appendix A.2, Song et al. 2021).

Forward process on normalized actions ``x`` (``t`` in ``[0, T]``, ``T = 1``)::

    dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw,    beta(t) = beta_min + t (beta_max - beta_min)

with marginal ``x_t | x_0 ~ N(m(t) x_0, s(t)^2 I)``, ``log m(t) = -t^2 (beta_max - beta_min)/4 -
t beta_min / 2`` and ``s(t)^2 = 1 - m(t)^2``. The probability-flow ODE shares these marginals::

    dx/dt = -1/2 beta(t) (x + score(x, t))

and by the instantaneous change of variables ``d log p_t(x(t)) / dt = -div(dx/dt)`` along it.
"""

from __future__ import annotations

import math

import torch


class VPSDE:
    """VP-SDE with ``beta_min = 0.1``, ``beta_max = 20`` and ``T = 1`` (ARQ appendix A, the authors' settings).

    All methods take ``t`` as a tensor broadcastable against the batch.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> None:
        if not 0.0 <= beta_min < beta_max:
            raise ValueError(f"expected 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.T = float(T)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(m(t), s(t))``: mean coefficient and standard deviation of ``x_t | x_0``."""
        lmc = self.log_mean_coeff(t)
        return torch.exp(lmc), torch.sqrt(-torch.expm1(2.0 * lmc))

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        return self.marginal(t)[1]

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log N(z; 0, I)`` summed over the last dimension (the ``t = T`` marginal)."""
        d = z.shape[-1]
        return -0.5 * d * math.log(2.0 * math.pi) - 0.5 * (z**2).sum(-1)

    def ode_drift(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """Probability-flow ODE drift ``-1/2 beta(t) (x + score)`` (Song et al. 2021, eq. 13)."""
        return -0.5 * self.beta(t) * (x + score)

    def ode_divergence(self, t: torch.Tensor, score_divergence: torch.Tensor, dim: int) -> torch.Tensor:
        """``div`` of :meth:`ode_drift` given ``div(score)``: ``-1/2 beta(t) (d + div score)``."""
        return -0.5 * self.beta(t) * (dim + score_divergence)

    def to_dict(self) -> dict[str, float]:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max, "T": self.T}
