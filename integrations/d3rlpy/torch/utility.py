"""Torch helpers shared by the impls of our discrete-code algorithms (DiscreteIQL, DiscreteBRAC).

The exact sums over the K codes (SAQ eqs. 3, 4 and 10) need every critic's K values at once
and the value of the dataset code picked out of them; the categorical behavior policy
``pi_beta`` (SAQ section 4.2) is fitted the same way by both algorithms.
"""

from __future__ import annotations

import torch
from d3rlpy.models.torch import CategoricalPolicy
from d3rlpy.optimizers.optimizers import OptimizerWrapper
from d3rlpy.torch_utility import TorchMiniBatch
from d3rlpy.types import TorchObservation
from torch import nn

__all__ = ["CategoricalBehaviorMixin", "pick_codes", "stack_q_values"]


def stack_q_values(q_funcs: nn.ModuleList, x: TorchObservation) -> torch.Tensor:
    """All K Q-values of every critic: (n_critics, B, K)."""
    return torch.stack([q_func(x).q_value for q_func in q_funcs], dim=0)


def pick_codes(values: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``values[..., b, codes[b]]`` for (..., B, K) values and (B,) or (B, 1) codes -> (..., B)."""
    index = codes.long().view(-1)
    expanded = index.view(*([1] * (values.dim() - 2)), -1, 1).expand(*values.shape[:-1], 1)
    return values.gather(-1, expanded).squeeze(-1)


class CategoricalBehaviorMixin:
    """Maximum-likelihood step of the categorical behavior policy ``pi_beta(k|s)``.

    Why a shared step: SAQ section 4.2 learns ``pi_beta`` on the codes by maximum likelihood for
    both SAQ-IQL (eq. 10's prior) and SAQ-BRAC (the KL of eqs. 3-4); the impl's modules must
    hold ``behavior_policy`` and ``behavior_optim``.
    """

    _modules: object

    def compute_behavior_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        """Maximum likelihood of the dataset codes under ``pi_beta`` (cross-entropy)."""
        behavior_policy: CategoricalPolicy = self._modules.behavior_policy  # type: ignore[attr-defined]
        behavior_optim: OptimizerWrapper = self._modules.behavior_optim  # type: ignore[attr-defined]
        behavior_optim.zero_grad()
        log_probs = behavior_policy(batch.observations).logits
        behavior_loss = -pick_codes(log_probs, batch.actions).mean()
        behavior_loss.backward()
        return {"behavior_loss": behavior_loss}
