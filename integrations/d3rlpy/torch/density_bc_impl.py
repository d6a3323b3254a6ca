"""Torch side of SAQ-BC with the action-density policy: d3rlpy's ``DiscreteBCImpl`` with the
density's own likelihood as an alternative loss; the config and the algorithm are in
:mod:`..density_bc`, which says what each loss fits."""

from __future__ import annotations

import torch
from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCImpl, DiscreteBCModules
from d3rlpy.models.torch.imitators import DiscreteImitationLoss
from d3rlpy.types import Shape, TorchObservation

from saq_wrappers.integrations.d3rlpy.torch.density_policy import ActionDensityPolicy

__all__ = ["DensityBCImpl"]


class DensityBCImpl(DiscreteBCImpl):
    """d3rlpy's ``DiscreteBCImpl`` whose loss is, with ``likelihood="actions"``, the density's
    negative log-likelihood of the label's decoded action, ``-log p(g(s, k_D) | s)``; with
    ``"codes"`` it is d3rlpy's cross-entropy of the label code (SAQ eq. 8). Acting and saving are
    d3rlpy's."""

    def __init__(self, observation_shape: Shape, action_size: int, modules: DiscreteBCModules, compiled: bool,
                 device: str, likelihood: str) -> None:
        super().__init__(observation_shape=observation_shape, action_size=action_size, modules=modules, beta=0.0,
                         compiled=compiled, device=device)
        self._likelihood = likelihood

    def compute_loss(self, obs_t: TorchObservation, act_t: torch.Tensor) -> DiscreteImitationLoss:
        if self._likelihood == "codes":
            return super().compute_loss(obs_t, act_t)
        policy = self._modules.imitator
        assert isinstance(policy, ActionDensityPolicy)
        # code_logits are log p(g(s, k) | s) up to one constant (-D/2 log 2 pi): not normalized over codes
        nll = -policy.code_logits(obs_t).gather(1, act_t.long().view(-1, 1)).mean()
        return DiscreteImitationLoss(loss=nll, imitation_loss=nll, regularization_loss=torch.zeros_like(nll))
