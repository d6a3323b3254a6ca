"""Closed-form conditional Gaussian-mixture score models with exact marginal densities.

If ``x_0 | s ~ sum_k w_k N(mu_k(s), sigma_k^2 I)`` then under the VP-SDE
``x_t | s ~ sum_k w_k N(m(t) mu_k(s), (m(t)^2 sigma_k^2 + s(t)^2) I)``, so the score and the
log-density of every marginal are known exactly. These models implement
:class:`~saq_wrappers.score.network.ScoreFunction`, which lets the tests (and the benchmark's
accuracy column) check the samplers and the likelihood code against ground truth, with no
training error in the way. Narrow, well-separated components give the disjoint, multi-modal
supports of the paper's Figure A.1.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from saq_wrappers.score.sde import VPSDE

#: ``obs (B, obs_dim) -> means (B, K, d)``.
MeansFn = Callable[[torch.Tensor], torch.Tensor]


class GaussianMixtureScore:
    """A conditional isotropic Gaussian mixture; means may depend on the state.

    Args:
        means_fn: maps normalized states ``(B, obs_dim)`` to component means ``(B, K, d)``.
        stds: ``(K,)`` component standard deviations.
        weights: ``(K,)`` mixture weights (normalized here).
        sde: the VP-SDE.
    """

    def __init__(
        self,
        means_fn: MeansFn,
        stds: torch.Tensor | list[float],
        weights: torch.Tensor | list[float],
        action_dim: int,
        sde: VPSDE | None = None,
    ) -> None:
        self.means_fn = means_fn
        self.stds = torch.as_tensor(stds, dtype=torch.float32)
        w = torch.as_tensor(weights, dtype=torch.float32)
        self.log_weights = torch.log(w / w.sum())
        self.action_dim = int(action_dim)
        self.sde = sde or VPSDE()

    def condition(self, obs: torch.Tensor) -> torch.Tensor:
        return self.means_fn(obs)

    def log_prob_t(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Exact ``log p_t(x | s)`` for ``x (M, d)``, ``cond (M, K, d)``, ``t (M,)`` or ``(1,)``."""
        m, s = self.sde.marginal(t)
        m = m.reshape(-1, 1)
        var = m**2 * self.stds[None, :] ** 2 + s.reshape(-1, 1) ** 2  # (M or 1, K)
        diff = x[:, None, :] - m[:, :, None] * cond  # (M, K, d)
        d = self.action_dim
        comp = -0.5 * (diff**2).sum(-1) / var - 0.5 * d * torch.log(2.0 * math.pi * var)
        return torch.logsumexp(comp + self.log_weights[None, :], dim=-1)

    def log_prob(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Exact ``log p_0(x | s)`` of the data distribution."""
        return self.log_prob_t(x, cond, torch.zeros(1))

    def score(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m, s = self.sde.marginal(t)
        m = m.reshape(-1, 1)
        var = m**2 * self.stds[None, :] ** 2 + s.reshape(-1, 1) ** 2
        diff = x[:, None, :] - m[:, :, None] * cond
        d = self.action_dim
        comp = -0.5 * (diff**2).sum(-1) / var - 0.5 * d * torch.log(2.0 * math.pi * var)
        resp = torch.softmax(comp + self.log_weights[None, :], dim=-1)  # (M, K)
        return -(resp[:, :, None] * diff / var[:, :, None]).sum(1)

    def sample(self, cond: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact draws per state: ``(B, n, d)``."""
        B, K, d = cond.shape
        comp = torch.multinomial(self.log_weights.exp().expand(B, K), n, replacement=True, generator=generator)
        mu = torch.gather(cond, 1, comp[:, :, None].expand(B, n, d))
        noise = torch.randn(B, n, d, generator=generator)
        return mu + self.stds[comp][:, :, None] * noise
