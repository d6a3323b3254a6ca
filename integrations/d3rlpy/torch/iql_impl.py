"""Torch side of SAQ-IQL (SAQ section 4.2, eqs. 9-10): the losses, the target update and the
policy of eq. 10 (its weighted-likelihood fit and its closed form); the config and the
algorithm class are in :mod:`..iql`."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Union

import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoImplBase
from d3rlpy.algos.qlearning.torch.utility import DiscreteQFunctionMixin
from d3rlpy.models.torch import CategoricalPolicy, DiscreteEnsembleQFunctionForwarder, ValueFunction
from d3rlpy.optimizers.optimizers import OptimizerWrapper
from d3rlpy.torch_utility import CudaGraphWrapper, Modules, TorchMiniBatch, eval_api, hard_sync
from d3rlpy.types import Shape, TorchObservation
from torch import nn
from torch.optim import Optimizer

from saq_wrappers.integrations.d3rlpy.torch.kl_constraint import kl_constrained_temperature
from saq_wrappers.integrations.d3rlpy.torch.utility import (
    CategoricalBehaviorMixin,
    categorical_log_probs,
    dataset_code_q_values,
    elementwise_min,
    min_q_values,
    pick_codes,
    soft_update,
)

__all__ = [
    "CLOSED_FORM",
    "POLICY_EXTRACTIONS",
    "WEIGHTED_LIKELIHOOD",
    "DiscreteIQLImpl",
    "DiscreteIQLModules",
    "advantage_weights",
    "batch_kl_temperature",
    "expectile_loss",
    "iql_policy_logits",
    "kl_constrained_temperature",
]

#: Eq. 10 evaluated at acting time from the critics' values at every code (the authors' code).
CLOSED_FORM = "closed_form"
#: Eq. 10 fitted by advantage-weighted maximum likelihood of the dataset codes (IQL's extraction).
WEIGHTED_LIKELIHOOD = "weighted_likelihood"
#: The accepted values of ``DiscreteIQLConfig.policy_extraction``.
POLICY_EXTRACTIONS: tuple[str, ...] = (WEIGHTED_LIKELIHOOD, CLOSED_FORM)


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


def advantage_weights(
    advantages: torch.Tensor, temperature: Union[float, torch.Tensor], max_weight: float
) -> torch.Tensor:
    """``min(exp(A / lambda), max_weight)``: the weights whose weighted maximum likelihood has SAQ
    eq. 10 as its solution.

    Why this fits eq. 10: for a state's codes drawn from ``pi_beta``, maximizing
    ``E_{k ~ pi_beta}[exp(A(s,k)/lambda) log pi(k|s)]`` over distributions gives
    ``pi(k|s) ∝ pi_beta(k|s) exp(A(s,k)/lambda)``, eq. 10 itself (IQL's policy extraction, with its
    clip of the weights at 100). It reads ``A`` only at the codes the data takes, which are the
    only codes where IQL's critics are trained.
    """
    return torch.exp(advantages / temperature).clamp(max=max_weight)


def batch_kl_temperature(advantages: torch.Tensor, min_temperature: float, kl_budget: float) -> torch.Tensor:
    """``lambda`` (1, 1) at which the advantage-weighted batch stays within eq. 9's KL budget.

    Eq. 9 bounds ``E_s KL(pi(.|s) || pi_beta(.|s))``; its multiplier ``lambda`` is one number for
    the whole expectation. Measured on a batch of dataset pairs ``(s, k)``, the weighted
    distribution ``q ∝ exp(A / lambda)`` over the batch has ``KL(q || uniform) = KL(q(s) || p(s)) +
    E_{q(s)} KL(q(k|s) || p(k|s)) >=`` the expected per-state KL, so ``KL(q || uniform) <= eps`` is
    a conservative form of eq. 9's constraint that reads ``A`` only at dataset codes. Solved as one
    row of :func:`kl_constrained_temperature` (``lambda >= min_temperature``).

    Why: with a fixed ``lambda`` the weights' spread follows the critic's error, and on narrow
    expert data a fixed lambda of 0.1 or 1/3 put the weighted fit far below ``pi_beta`` itself
    (design note ``docs/notes/saq-iql.md``).
    """
    row = advantages.reshape(1, -1)
    uniform = torch.full_like(row, -math.log(max(row.shape[1], 1)))
    return kl_constrained_temperature(row, uniform, min_temperature, kl_budget)


@dataclasses.dataclass(frozen=True)
class DiscreteIQLModules(Modules):
    """Every module and optimizer saved by ``save_model`` / ``save``; ``policy`` and
    ``policy_optim`` exist only with the weighted-likelihood extraction, ``behavior_policy`` and
    ``behavior_optim`` with the closed form or ``fit_behavior_policy=True``."""

    q_funcs: nn.ModuleList
    targ_q_funcs: nn.ModuleList
    value_func: ValueFunction
    behavior_policy: Optional[CategoricalPolicy]
    critic_optim: OptimizerWrapper
    behavior_optim: Optional[OptimizerWrapper]
    policy: Optional[CategoricalPolicy] = None
    policy_optim: Optional[OptimizerWrapper] = None


class DiscreteIQLImpl(CategoricalBehaviorMixin, DiscreteQFunctionMixin, QLearningAlgoImplBase):
    """Torch side of :class:`~saq_wrappers.integrations.d3rlpy.iql.DiscreteIQL` (losses, target
    update, SAQ eq. 10)."""

    _modules: DiscreteIQLModules
    _q_func_forwarder: DiscreteEnsembleQFunctionForwarder
    _compute_critic_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]
    _compute_behavior_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]
    _compute_policy_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]

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
        max_weight: float,
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
        self._max_weight = max_weight
        self._compute_critic_grad = (
            CudaGraphWrapper(self.compute_critic_grad) if compiled else self.compute_critic_grad
        )
        self._compute_behavior_grad = (
            CudaGraphWrapper(self.compute_behavior_grad) if compiled else self.compute_behavior_grad
        )
        self._compute_policy_grad = (
            CudaGraphWrapper(self.compute_policy_grad) if compiled else self.compute_policy_grad
        )
        #: The critic step's :meth:`dataset_target_q`, read by the policy step of the same update.
        self._dataset_target_q: Optional[torch.Tensor] = None
        hard_sync(modules.targ_q_funcs, modules.q_funcs)

    # ---- losses -----------------------------------------------------------------------------

    def compute_target(self, batch: TorchMiniBatch) -> torch.Tensor:
        """``r + gamma^n (1 - d) V(s')`` as (B, 1), without gradient (IQL's ``L_Q`` target)."""
        with torch.no_grad():
            next_values = self._modules.value_func(batch.next_observations)
            gamma = self._gamma**batch.intervals
            return batch.rewards + gamma * (1.0 - batch.terminals) * next_values

    def dataset_target_q(self, batch: TorchMiniBatch) -> torch.Tensor:
        """``min_j Qbar_j(s, k_data)`` (B,), without gradient: ``V``'s regression target and the
        first term of the policy's advantage."""
        with torch.no_grad():
            return elementwise_min([pick_codes(q_func(batch.observations).q_value, batch.actions)
                                    for q_func in self._modules.targ_q_funcs])

    def compute_value_loss(self, batch: TorchMiniBatch, target_q: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Expectile regression of ``V(s)`` on ``min_j Qbar_j(s, k_data)`` (IQL's ``L_V``;
        ``target_q`` if given, else :meth:`dataset_target_q`)."""
        if target_q is None:
            target_q = self.dataset_target_q(batch)
        values = self._modules.value_func(batch.observations).view(-1)
        return expectile_loss(target_q - values, self._expectile)

    def compute_critic_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        """IQL's ``L_Q + L_V`` (SAQ sec. 3): squared error of every critic at the dataset code
        to :meth:`compute_target`, plus :meth:`compute_value_loss`; backpropagated. Also returns
        the :meth:`dataset_target_q` it used, for the policy step of the same update."""
        self._modules.critic_optim.zero_grad()
        target = self.compute_target(batch).view(1, -1)
        q_data = dataset_code_q_values(self._modules.q_funcs, batch.observations, batch.actions)
        q_loss = (q_data - target).pow(2).mean(dim=1).sum()
        target_q = self.dataset_target_q(batch)
        v_loss = self.compute_value_loss(batch, target_q)
        critic_loss = q_loss + v_loss
        critic_loss.backward()
        return {"critic_loss": critic_loss, "q_loss": q_loss, "v_loss": v_loss, "dataset_target_q": target_q}

    def compute_policy_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        """Advantage-weighted maximum likelihood of the dataset codes (:func:`advantage_weights`),
        ``A = min_j Qbar_j(s, k) - V(s)`` at the dataset code only, with ``lambda`` the constant
        ``temperature`` or, under a ``kl_budget``, :func:`batch_kl_temperature`; backpropagated."""
        policy = self._modules.policy
        policy_optim = self._modules.policy_optim
        assert policy is not None and policy_optim is not None
        policy_optim.zero_grad()
        with torch.no_grad():
            # the critic step's dataset_target_q: the target critics move only at the update's end
            target_q = self._dataset_target_q if self._dataset_target_q is not None else self.dataset_target_q(batch)
            advantages = target_q - self._modules.value_func(batch.observations).view(-1)
            if self._kl_budget is None:
                temperature = torch.full((1, 1), self._temperature, device=advantages.device)
            else:
                temperature = batch_kl_temperature(advantages, self._temperature, self._kl_budget)
            weights = advantage_weights(advantages, temperature.view(()), self._max_weight)
        log_probs = categorical_log_probs(policy, batch.observations)
        policy_loss = -(weights * pick_codes(log_probs, batch.actions)).mean()
        policy_loss.backward()
        return {"policy_loss": policy_loss, "mean_weight": weights.mean(), "temperature": temperature.view(())}

    def inner_update(self, batch: TorchMiniBatch, grad_step: int) -> dict[str, float]:
        metrics = dict(self._compute_critic_grad(batch))
        self._dataset_target_q = metrics.pop("dataset_target_q")
        self._modules.critic_optim.step()
        if self._modules.behavior_optim is not None:
            metrics.update(self._compute_behavior_grad(batch))
            self._modules.behavior_optim.step()
        if self._modules.policy_optim is not None:
            metrics.update(self._compute_policy_grad(batch))
            self._modules.policy_optim.step()
        self._dataset_target_q = None  # it belongs to this batch only
        soft_update(self._modules.targ_q_funcs, self._modules.q_funcs, self._tau)
        return {name: float(value.detach().cpu()) for name, value in metrics.items()}

    # ---- SAQ eq. 10 -------------------------------------------------------------------------

    def policy_logits(self, x: TorchObservation) -> torch.Tensor:
        """Logits (B, K) of SAQ eq. 10 from the current networks (no gradient): the fitted policy's
        (weighted likelihood), or eq. 10 evaluated from the critics at every code (closed form)."""
        with torch.no_grad():
            if self._modules.policy is not None:
                return categorical_log_probs(self._modules.policy, x)
            q_values = min_q_values(self._modules.targ_q_funcs, x)
            values = self._modules.value_func(x)
            assert self._modules.behavior_policy is not None, "the closed form always fits pi_beta"
            behavior_log_probs = categorical_log_probs(self._modules.behavior_policy, x)
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
