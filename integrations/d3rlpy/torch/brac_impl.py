"""Torch side of SAQ-BRAC (SAQ section 4.2, eqs. 2-4 with exact sums over the K codes): the KL,
the critic target, the actor objective and the update; the config and the algorithm class are
in :mod:`..brac`, whose module docstring works out the sign conventions."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoImplBase
from d3rlpy.algos.qlearning.torch.utility import DiscreteQFunctionMixin
from d3rlpy.models.torch import CategoricalPolicy, DiscreteEnsembleQFunctionForwarder
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
    min_q_values,
    soft_update,
)

__all__ = [
    "DiscreteBRACImpl",
    "DiscreteBRACModules",
    "brac_critic_target",
    "brac_soft_value",
    "categorical_kl",
]


def categorical_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(p || q) = sum_k p_k (log p_k - log q_k)`` over the last axis (SAQ eq. 2)."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def brac_soft_value(
    q_values: torch.Tensor,
    log_pi: torch.Tensor,
    log_pi_beta: torch.Tensor,
    beta: float | torch.Tensor,
    alpha: float | torch.Tensor,
) -> torch.Tensor:
    """``sum_k pi(k|s) [Q(s,k) + beta log pi_beta(k|s) - alpha log pi(k|s)]`` -> (B,).

    The inside of SAQ eq. 4 (and of eq. 3 with ``alpha = 0``), summed exactly over the K codes.
    ``q_values``, ``log_pi`` and ``log_pi_beta`` are (B, K); ``log_pi`` must be normalized.
    ``beta`` and ``alpha`` are numbers or per-state (B, 1) weights (the KL budget's).
    """
    return (log_pi.exp() * (q_values + beta * log_pi_beta - alpha * log_pi)).sum(dim=-1)


def brac_critic_target(
    rewards: torch.Tensor,
    terminals: torch.Tensor,
    gamma: torch.Tensor | float,
    next_q_values: torch.Tensor,
    next_log_pi: torch.Tensor,
    next_log_pi_beta: torch.Tensor,
    beta: float,
    alpha: float = 0.0,
) -> torch.Tensor:
    """SAQ eq. 3 target ``r + gamma (1 - d) sum_k pi(k|s')[Qbar(s',k) + beta log pi_beta(k|s')
    - alpha log pi(k|s')]`` -> (B,); ``alpha = 0`` is eq. 3 as printed."""
    soft = brac_soft_value(next_q_values, next_log_pi, next_log_pi_beta, beta, alpha)
    rewards = rewards.reshape(-1)
    terminals = terminals.reshape(-1)
    if isinstance(gamma, torch.Tensor):
        gamma = gamma.reshape(-1)
    return rewards + gamma * (1.0 - terminals) * soft


@dataclasses.dataclass(frozen=True)
class DiscreteBRACModules(Modules):
    """Every module and optimizer saved by ``save_model`` / ``save``."""

    policy: CategoricalPolicy
    q_funcs: nn.ModuleList
    targ_q_funcs: nn.ModuleList
    behavior_policy: CategoricalPolicy
    actor_optim: OptimizerWrapper
    critic_optim: OptimizerWrapper
    behavior_optim: OptimizerWrapper


class DiscreteBRACImpl(CategoricalBehaviorMixin, DiscreteQFunctionMixin, QLearningAlgoImplBase):
    """Torch side of :class:`~saq_wrappers.integrations.d3rlpy.brac.DiscreteBRAC` (exact eq. 3
    target, exact eq. 4 actor loss).

    ``behavior_phase_end`` is the gradient step at which the ``pi_beta``-only first phase ends
    (the algorithm sets it from the ``n_steps`` of each ``fit``); ``None`` means no phase:
    ``pi_beta`` trains jointly with the critics and the actor.
    """

    _modules: DiscreteBRACModules
    _q_func_forwarder: DiscreteEnsembleQFunctionForwarder
    _compute_critic_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]
    _compute_actor_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]
    _compute_behavior_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]
    behavior_phase_end: Optional[int]

    def __init__(
        self,
        observation_shape: Shape,
        action_size: int,
        modules: DiscreteBRACModules,
        q_func_forwarder: DiscreteEnsembleQFunctionForwarder,
        gamma: float,
        tau: float,
        beta: float,
        alpha: float,
        entropy_in_target: bool,
        kl_budget: Optional[float],
        behavior_phase_end: Optional[int],
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
        self._beta = beta
        self._alpha = alpha
        self._entropy_in_target = entropy_in_target
        self._kl_budget = kl_budget
        self.behavior_phase_end = behavior_phase_end

        def wrap(func: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]) -> Any:
            return CudaGraphWrapper(func) if compiled else func

        self._compute_critic_grad = wrap(self.compute_critic_grad)
        self._compute_actor_grad = wrap(self.compute_actor_grad)
        self._compute_behavior_grad = wrap(self.compute_behavior_grad)
        hard_sync(modules.targ_q_funcs, modules.q_funcs)

    # ---- losses -----------------------------------------------------------------------------

    def compute_target(self, batch: TorchMiniBatch) -> torch.Tensor:
        """SAQ eq. 3 target (B,), an exact sum over the K codes at ``s'``; no gradient."""
        with torch.no_grad():
            next_q = min_q_values(self._modules.targ_q_funcs, batch.next_observations)
            next_log_pi = categorical_log_probs(self._modules.policy, batch.next_observations)
            next_log_pi_beta = categorical_log_probs(self._modules.behavior_policy, batch.next_observations)
            return brac_critic_target(
                rewards=batch.rewards,
                terminals=batch.terminals,
                gamma=self._gamma**batch.intervals,
                next_q_values=next_q,
                next_log_pi=next_log_pi,
                next_log_pi_beta=next_log_pi_beta,
                beta=self._beta,
                alpha=self._alpha if self._entropy_in_target else 0.0,
            )

    def compute_critic_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        """Squared error of every critic at the dataset code to the SAQ eq. 3 target."""
        self._modules.critic_optim.zero_grad()
        target = self.compute_target(batch).view(1, -1)
        q_data = dataset_code_q_values(self._modules.q_funcs, batch.observations, batch.actions)
        critic_loss = (q_data - target).pow(2).mean(dim=1).sum()
        critic_loss.backward()
        return {"critic_loss": critic_loss}

    def actor_weights(
        self, q_values: torch.Tensor, log_pi_beta: torch.Tensor
    ) -> tuple[float | torch.Tensor, float | torch.Tensor]:
        """Eq. 4's ``(beta, alpha)`` at each state: the config's, or with a KL budget ``beta(s)``
        (B, 1) from :func:`kl_constrained_temperature` and ``alpha`` scaled by ``beta(s) / beta``."""
        if self._kl_budget is None:
            return self._beta, self._alpha
        beta = kl_constrained_temperature(q_values, log_pi_beta, self._beta, self._kl_budget)
        return beta, self._alpha * beta / self._beta

    def compute_actor_loss(self, observations: TorchObservation) -> dict[str, torch.Tensor]:
        """Negative SAQ eq. 4 objective, exact over the K codes, plus the logged KL and weight."""
        with torch.no_grad():
            q_values = min_q_values(self._modules.q_funcs, observations)
            log_pi_beta = categorical_log_probs(self._modules.behavior_policy, observations)
            beta, alpha = self.actor_weights(q_values, log_pi_beta)
        log_pi = categorical_log_probs(self._modules.policy, observations)
        objective = brac_soft_value(q_values, log_pi, log_pi_beta, beta, alpha)
        return {
            "actor_loss": -objective.mean(),
            "kl": categorical_kl(log_pi.detach(), log_pi_beta).mean(),
            "kl_weight": torch.as_tensor(beta, dtype=q_values.dtype).mean(),
        }

    def compute_actor_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        self._modules.actor_optim.zero_grad()
        losses = self.compute_actor_loss(batch.observations)
        losses["actor_loss"].backward()
        return losses

    def inner_update(self, batch: TorchMiniBatch, grad_step: int) -> dict[str, float]:
        losses: dict[str, torch.Tensor] = {}
        pretraining = self.behavior_phase_end is not None and grad_step < self.behavior_phase_end
        if pretraining or self.behavior_phase_end is None:
            losses.update(self._compute_behavior_grad(batch))
            self._modules.behavior_optim.step()
        if not pretraining:
            losses.update(self._compute_critic_grad(batch))
            self._modules.critic_optim.step()
            losses.update(self._compute_actor_grad(batch))
            self._modules.actor_optim.step()
            soft_update(self._modules.targ_q_funcs, self._modules.q_funcs, self._tau)
        return {name: float(value.detach().cpu()) for name, value in losses.items()}

    # ---- acting -----------------------------------------------------------------------------

    @eval_api
    def policy_log_probs(self, x: TorchObservation) -> torch.Tensor:
        """Normalized log-probabilities (B, K) of the actor ``pi_phi``."""
        with torch.no_grad():
            return categorical_log_probs(self._modules.policy, x)

    def inner_predict_best_action(self, x: TorchObservation) -> torch.Tensor:
        return categorical_log_probs(self._modules.policy, x).argmax(dim=1)

    def inner_sample_action(self, x: TorchObservation) -> torch.Tensor:
        return self._modules.policy(x).sample()

    # ---- d3rlpy plumbing --------------------------------------------------------------------

    @property
    def policy(self) -> CategoricalPolicy:  # type: ignore[override]
        return self._modules.policy

    @property
    def policy_optim(self) -> Optimizer:
        return self._modules.actor_optim.optim

    @property
    def q_function(self) -> nn.ModuleList:
        return self._modules.q_funcs

    @property
    def q_function_optim(self) -> Optimizer:
        return self._modules.critic_optim.optim
