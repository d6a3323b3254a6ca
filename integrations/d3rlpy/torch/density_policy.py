"""A policy over SAQ codes parametrized as an action density evaluated at the decoded codes.

SAQ-BC's policy ``pi(k | s)`` (SAQ eq. 8) is a classifier with one logit per code index. With a
state-conditioned quantizer a code index means a different action at every state
(``a_k = g(s, k)``, SAQ eq. 5's decoder), so the classifier has to learn how the codes are laid
out at each state on top of where the data's actions lie, and on noisy demonstrations its
arg-max lands about as far from the demonstrator's mean action as one noisy sample (issue 37).

Here the same distribution over codes is parametrized through the actions the codes decode to:

    pi(k | s) ∝ p_theta(g(s, k) | s),   p_theta(a | s) = sum_m w_m(s) N(a; mu_m(s), diag sigma_m(s)^2)

a mixture of ``M`` diagonal Gaussians over actions predicted from the state and evaluated at each
code's decoded action. It is still a categorical distribution over the K codes, trained by the
same cross-entropy on the code labels, so every exact sum over codes stays exact; but codes that
decode to nearby actions get nearby logits, whatever their indices, so the policy learns a
smooth density in action space (regression's averaging of noise) and keeps a mode per component
(SAQ's choice between modes).
"""

from __future__ import annotations

import torch
from d3rlpy.models.encoders import Encoder
from torch import nn
from torch.distributions import Categorical

__all__ = ["ActionDensityHead", "ActionDensityPolicy", "StatePartEncoder", "density_code_logits"]

#: Bounds of each component's log standard deviation (in action units): a component narrower
#: than e^-5 ~ 0.007 would make one code's logit dominate on float rounding alone; wider than
#: e^2 ~ 7 is wider than any normalized action range.
MIN_LOG_STD, MAX_LOG_STD = -5.0, 2.0


def density_code_logits(
    log_weights: torch.Tensor, means: torch.Tensor, log_stds: torch.Tensor, candidates: torch.Tensor
) -> torch.Tensor:
    """``(B, K)`` log-densities of the mixture at each state's K decoded actions, up to a constant
    per state (which a softmax over codes ignores).

    Args:
        log_weights: ``(B, M)`` unnormalized log mixture weights.
        means: ``(B, M, D)`` component means.
        log_stds: ``(B, M, D)`` component log standard deviations.
        candidates: ``(B, K, D)`` the decoded actions ``g(s, k)`` of every code at each state.
    """
    z = (candidates[:, None, :, :] - means[:, :, None, :]) * torch.exp(-log_stds)[:, :, None, :]
    component = -0.5 * z.square().sum(dim=3) - log_stds.sum(dim=2)[:, :, None]  # (B, M, K)
    return torch.logsumexp(torch.log_softmax(log_weights, dim=1)[:, :, None] + component, dim=1)


class ActionDensityHead(nn.Module):
    """State features ``(B, H)`` and candidates ``(B, K, D)`` -> code logits ``(B, K)``
    (:func:`density_code_logits` of a mixture predicted by one linear layer)."""

    def __init__(self, hidden_size: int, action_dim: int, n_components: int) -> None:
        super().__init__()
        if n_components < 1 or action_dim < 1:
            raise ValueError(f"need n_components >= 1 and action_dim >= 1, got {n_components} and {action_dim}")
        self.action_dim, self.n_components = action_dim, n_components
        self.fc = nn.Linear(hidden_size, n_components * (1 + 2 * action_dim))

    def forward(self, features: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        m, d = self.n_components, self.action_dim
        out = self.fc(features)
        means = out[:, m:m + m * d].reshape(-1, m, d)
        log_stds = out[:, m + m * d:].reshape(-1, m, d).clamp(MIN_LOG_STD, MAX_LOG_STD)
        return density_code_logits(out[:, :m], means, log_stds, candidates)


class ActionDensityPolicy(nn.Module):
    """The categorical policy over ``n_codes`` codes of a candidate observation
    (:mod:`saq_wrappers.candidate_observations`: the state, then the ``n_codes`` decoded actions):
    the state alone goes through ``encoder``, whose features :class:`ActionDensityHead` turns into
    a mixture evaluated at the candidates. Called like d3rlpy's ``CategoricalPolicy``
    (``policy(x).logits``), so d3rlpy's discrete BC trains and acts with it unchanged."""

    def __init__(self, encoder: Encoder, hidden_size: int, n_codes: int, action_dim: int, n_components: int) -> None:
        super().__init__()
        self._encoder = encoder
        self.n_codes, self.action_dim = n_codes, action_dim
        self.head = ActionDensityHead(hidden_size, action_dim, n_components)

    def code_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` unnormalized ``log pi(k | s)`` of candidate observations ``x``."""
        width = self.n_codes * self.action_dim
        state, candidates = x[:, :-width], x[:, -width:].reshape(-1, self.n_codes, self.action_dim)
        return self.head(self._encoder(state), candidates)

    def forward(self, x: torch.Tensor) -> Categorical:
        return Categorical(logits=self.code_logits(x), validate_args=False)


class StatePartEncoder(Encoder):
    """``inner`` applied to the state part of candidate observations (everything but the last
    ``n_candidate_values`` entries): the critics and value function of an algorithm whose policy
    reads candidates. The candidates are a function of the state, so they add nothing a critic
    could use; reading the state alone keeps each critic the network it is on plain states."""

    def __init__(self, inner: Encoder, n_candidate_values: int) -> None:
        super().__init__()
        if n_candidate_values < 1:
            raise ValueError(f"n_candidate_values must be >= 1, got {n_candidate_values}")
        self._inner = inner
        self.n_candidate_values = n_candidate_values

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._inner(x[:, :-self.n_candidate_values])
