"""Torch side of SAQ-IQL (SAQ section 4.2, eqs. 9-10): the losses, the target update and the
closed-form policy of eq. 10; the config and the algorithm class are in :mod:`..iql`."""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoImplBase
from d3rlpy.algos.qlearning.torch.utility import DiscreteQFunctionMixin
from d3rlpy.models.torch import CategoricalPolicy, DiscreteEnsembleQFunctionForwarder, ValueFunction
from d3rlpy.optimizers.optimizers import OptimizerWrapper
from d3rlpy.torch_utility import CudaGraphWrapper, Modules, TorchMiniBatch, eval_api, hard_sync, soft_sync
from d3rlpy.types import Shape, TorchObservation
from torch import nn
from torch.optim import Optimizer

from saq_wrappers.integrations.d3rlpy.torch.kl_constraint import kl_constrained_temperature
from saq_wrappers.integrations.d3rlpy.torch.utility import CategoricalBehaviorMixin, pick_codes, stack_q_values

__all__ = [
    "DiscreteIQLImpl",
    "DiscreteIQLModules",
    "expectile_loss",
    "iql_policy_logits",
    "kl_constrained_temperature",
]


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Mean asymmetric squared loss ``|tau - 1(u < 0)| u^2`` of ``u = diff`` (IQL, SAQ sec. 3).

    ``diff`` is ``target - prediction``; minimizing over a constant prediction gives the
    ``expectile``-expectile of the target distribution (0.5 = mean, -> 1 = max).
    """
    weight = torch.abs(expectile - (diff < 0.0).float())
    return (weight * diff.pow(2)).mean()


def iql_policy_logits(
    q_values: torch.Tensor,
    values: torch.Tensor,
    behavior_log_probs: torch.Tensor,
    temperature: float,
    log_behavior_min: float,
    kl_budget: float | None = None,
) -> torch.Tensor:
    """Unnormalized log-probabilities of SAQ eq. 10: ``A(s,k)/lambda + max(log pi_beta, min)``.

    ``q_values`` (B, K), ``values`` (B, 1) or (B,), ``behavior_log_probs`` (B, K). The clip of
    ``log pi_beta`` at ``log_behavior_min`` (-8 in the authors' code) keeps a code that the
    behavior net gives vanishing mass from being excluded outright by numerical noise.

    ``kl_budget=None`` uses ``lambda = temperature`` at every state (the authors' code). A budget
    ``eps`` solves eq. 9's constraint per state instead (:func:`kl_constrained_temperature`, with
    ``temperature`` as the smallest ``lambda``), against the clipped and renormalized ``pi_beta``
    that the logits use.
    """
    if values.dim() == 1:
        values = values.unsqueeze(1)
    advantages = q_values - values
    log_behavior = torch.log_softmax(behavior_log_probs.clamp(min=log_behavior_min), dim=1)
    if kl_budget is None:
        return advantages / temperature + log_behavior
    lam = kl_constrained_temperature(advantages, log_behavior, temperature, kl_budget)
    return advantages / lam + log_behavior


@dataclasses.dataclass(frozen=True)
class DiscreteIQLModules(Modules):
    """Every module and optimizer saved by ``save_model`` / ``save``."""

    q_funcs: nn.ModuleList
    targ_q_funcs: nn.ModuleList
    value_func: ValueFunction
    behavior_policy: CategoricalPolicy
    critic_optim: OptimizerWrapper
    behavior_optim: OptimizerWrapper


class DiscreteIQLImpl(CategoricalBehaviorMixin, DiscreteQFunctionMixin, QLearningAlgoImplBase):
    """Torch side of :class:`~saq_wrappers.integrations.d3rlpy.iql.DiscreteIQL` (losses, target
    update, SAQ eq. 10)."""

    _modules: DiscreteIQLModules
    _q_func_forwarder: DiscreteEnsembleQFunctionForwarder
    _compute_critic_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]
    _compute_behavior_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]

    def __init__(
        self,
        observation_shape: Shape,
        action_size: int,
        modules: DiscreteIQLModules,
        q_func_forwarder: DiscreteEnsembleQFunctionForwarder,
        gamma: float,
        tau: float,
        expectile: float,
        temperature: float,
        log_behavior_min: float,
        kl_budget: float | None,
        compiled: bool,
        device: str,
    ):
        super().__init__(
            observation_shape=observation_shape,
            action_size=action_size,
            modules=modules,
            device=device,
        )
        self._q_func_forwarder = q_func_forwarder
        self._gamma = gamma
        self._tau = tau
        self._expectile = expectile
        self._temperature = temperature
        self._log_behavior_min = log_behavior_min
        self._kl_budget = kl_budget
        self._compute_critic_grad = (
            CudaGraphWrapper(self.compute_critic_grad) if compiled else self.compute_critic_grad
        )
        self._compute_behavior_grad = (
            CudaGraphWrapper(self.compute_behavior_grad) if compiled else self.compute_behavior_grad
        )
        hard_sync(modules.targ_q_funcs, modules.q_funcs)

    # ---- losses -----------------------------------------------------------------------------

    def compute_target(self, batch: TorchMiniBatch) -> torch.Tensor:
        """``r + gamma^n (1 - d) V(s')`` as (B, 1), without gradient (IQL's ``L_Q`` target)."""
        with torch.no_grad():
            next_values = self._modules.value_func(batch.next_observations)
            gamma = self._gamma**batch.intervals
            return batch.rewards + gamma * (1.0 - batch.terminals) * next_values

    def compute_value_loss(self, batch: TorchMiniBatch) -> torch.Tensor:
        """Expectile regression of ``V(s)`` on ``min_j Qbar_j(s, k_data)`` (IQL's ``L_V``)."""
        with torch.no_grad():
            target_q = pick_codes(stack_q_values(self._modules.targ_q_funcs, batch.observations), batch.actions)
            target_q = target_q.min(dim=0).values
        values = self._modules.value_func(batch.observations).view(-1)
        return expectile_loss(target_q - values, self._expectile)

    def compute_critic_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        """IQL's ``L_Q + L_V`` (SAQ sec. 3): squared error of every critic at the dataset code
        to :meth:`compute_target`, plus :meth:`compute_value_loss`; backpropagated."""
        self._modules.critic_optim.zero_grad()
        target = self.compute_target(batch).view(1, -1)
        q_data = pick_codes(stack_q_values(self._modules.q_funcs, batch.observations), batch.actions)
        q_loss = (q_data - target).pow(2).mean(dim=1).sum()
        v_loss = self.compute_value_loss(batch)
        critic_loss = q_loss + v_loss
        critic_loss.backward()
        return {"critic_loss": critic_loss, "q_loss": q_loss, "v_loss": v_loss}

    def inner_update(self, batch: TorchMiniBatch, grad_step: int) -> dict[str, float]:
        critic = self._compute_critic_grad(batch)
        self._modules.critic_optim.step()
        behavior = self._compute_behavior_grad(batch)
        self._modules.behavior_optim.step()
        soft_sync(self._modules.targ_q_funcs, self._modules.q_funcs, self._tau)
        return {name: float(value.detach().cpu()) for name, value in {**critic, **behavior}.items()}

    # ---- SAQ eq. 10 -------------------------------------------------------------------------

    def policy_logits(self, x: TorchObservation) -> torch.Tensor:
        """Logits (B, K) of SAQ eq. 10 from the current networks (no gradient)."""
        with torch.no_grad():
            q_values = stack_q_values(self._modules.targ_q_funcs, x).min(dim=0).values
            values = self._modules.value_func(x)
            behavior_log_probs = self._modules.behavior_policy(x).logits
            return iql_policy_logits(
                q_values, values, behavior_log_probs, self._temperature, self._log_behavior_min, self._kl_budget
            )

    @eval_api
    def policy_log_probs(self, x: TorchObservation) -> torch.Tensor:
        """Normalized log-probabilities (B, K) of SAQ eq. 10."""
        return torch.log_softmax(self.policy_logits(x), dim=1)

    def inner_predict_best_action(self, x: TorchObservation) -> torch.Tensor:
        return self.policy_logits(x).argmax(dim=1)

    def inner_sample_action(self, x: TorchObservation) -> torch.Tensor:
        return torch.distributions.Categorical(logits=self.policy_logits(x)).sample()

    # ---- d3rlpy plumbing --------------------------------------------------------------------

    @property
    def q_function(self) -> nn.ModuleList:
        return self._modules.q_funcs

    @property
    def q_function_optim(self) -> Optimizer:
        return self._modules.critic_optim.optim
