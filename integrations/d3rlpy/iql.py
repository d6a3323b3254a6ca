"""SAQ-IQL: discrete Implicit Q-Learning over SAQ codes, as a first-class d3rlpy algorithm.

SAQ section 4.2 (eqs. 9-10, appendix A). With K discrete codes the IQL policy-extraction problem

    max_pi E_{k ~ pi(.|s)} [A(s, k)]   s.t.  KL(pi(.|s) || pi_beta(.|s)) <= eps        (SAQ eq. 9)

has the closed-form solution

    pi*(k|s) ∝ exp(A(s, k) / lambda + log pi_beta(k|s))                                (SAQ eq. 10)

so no actor network (and no advantage-weighted regression) is needed: acting evaluates eq. 10
exactly over the K codes.

Usage, exactly like a d3rlpy algorithm::

    import saq_wrappers.integrations.d3rlpy  # registers "discrete_iql" with d3rlpy.load_learnable
    from saq_wrappers.integrations.d3rlpy import DiscreteIQLConfig

    iql = DiscreteIQLConfig(expectile=0.8, temperature=0.1).create(device="cpu:0")
    iql.fit(discrete_dataset, n_steps=100_000)
    codes = iql.predict(observations)          # argmax of SAQ eq. 10
    iql.save("iql.d3"); iql2 = d3rlpy.load_learnable("iql.d3")

The module also holds the action-space check shared with :mod:`.brac`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from d3rlpy.algos.qlearning.base import QLearningAlgoBase, QLearningAlgoImplBase
from d3rlpy.algos.qlearning.torch.utility import DiscreteQFunctionMixin
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.models.builders import (
    create_categorical_policy,
    create_value_function,
)
from d3rlpy.models.encoders import EncoderFactory, make_encoder_field
from d3rlpy.models.torch import CategoricalPolicy, DiscreteEnsembleQFunctionForwarder, ValueFunction
from d3rlpy.optimizers.optimizers import OptimizerFactory, OptimizerWrapper, make_optimizer_field
from d3rlpy.torch_utility import (
    CudaGraphWrapper,
    Modules,
    TorchMiniBatch,
    eval_api,
    hard_sync,
    soft_sync,
)
from d3rlpy.types import Observation, Shape, TorchObservation

from saq_wrappers.integrations.d3rlpy.discrete import (
    DiscreteActionSpaceError,
    DiscreteCodeAlgoMixin,
    pick_codes,
    policy_probabilities,
    stack_q_values,
)

__all__ = [
    "DiscreteActionSpaceError",
    "DiscreteIQL",
    "DiscreteIQLConfig",
    "DiscreteIQLImpl",
    "DiscreteIQLModules",
    "expectile_loss",
    "iql_policy_logits",
]


# --------------------------------------------------------------------------------------------
# Input checks shared by DiscreteIQL and DiscreteBRAC
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The math, as plain functions (tested against brute force)
# --------------------------------------------------------------------------------------------


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
) -> torch.Tensor:
    """Unnormalized log-probabilities of SAQ eq. 10: ``A(s,k)/lambda + max(log pi_beta, min)``.

    ``q_values`` (B, K), ``values`` (B, 1) or (B,), ``behavior_log_probs`` (B, K). The clip of
    ``log pi_beta`` at ``log_behavior_min`` (-8 in the authors' code) keeps a code that the
    behavior net gives vanishing mass from being excluded outright by numerical noise.
    """
    if values.dim() == 1:
        values = values.unsqueeze(1)
    advantages = q_values - values
    return advantages / temperature + behavior_log_probs.clamp(min=log_behavior_min)


# --------------------------------------------------------------------------------------------
# Config + algorithm
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass()
class DiscreteIQLConfig(LearnableConfig):
    r"""Config of discrete Implicit Q-Learning with the closed-form SAQ policy (SAQ eq. 10).

    Training, per gradient step on a batch ``(s, k, r, s', d)`` of codes ``k``:

    - two critics ``Q_j(s) -> R^K``; target ``y = r + gamma^n (1 - d) V(s')`` and loss
      ``sum_j (Q_j(s, k) - y)^2`` (IQL's ``L_Q``, SAQ sec. 3);
    - ``V(s)`` by expectile regression on ``min_j Qbar_j(s, k)``, the minimum of the *target*
      critics at the dataset code (IQL's ``L_V``);
    - target critics soft-updated with ``tau``;
    - a categorical behavior policy ``pi_beta(k|s)`` by maximum likelihood (cross-entropy on the
      codes), trained **jointly**, on the same batches. Why jointly and not as a first phase:
      in IQL nothing in the Q / V losses ever queries a policy, so ``pi_beta`` has no effect on
      critic training; it only enters the acting-time policy. Its maximum-likelihood target is
      stationary, so by the end of ``fit`` it is as trained as a separate phase of the same
      length would make it, and one ``fit(n_steps)`` call stays the whole recipe.

    Acting: ``pi*(k|s) ∝ exp((min_j Qbar_j(s,k) - V(s)) / temperature + max(log pi_beta(k|s),
    log_behavior_min))`` (SAQ eq. 10; ``temperature`` is the Lagrange multiplier ``lambda``).
    The advantage uses the target critics because ``V`` regresses on them, so ``A`` is measured
    on one scale. ``predict`` is its argmax, ``sample_action`` samples it, and
    ``predict_value(x, k)`` returns ``Q(s, k)`` (mean of the critics), as in d3rlpy.

    Args:
        observation_scaler: observation preprocessor.
        reward_scaler: reward preprocessor.
        critic_learning_rate: learning rate of the critics and the value function.
        behavior_learning_rate: learning rate of ``pi_beta``.
        critic_optim_factory: optimizer of the critics and ``V``.
        behavior_optim_factory: optimizer of ``pi_beta``.
        critic_encoder_factory: torso of each critic.
        value_encoder_factory: torso of ``V``.
        behavior_encoder_factory: torso of ``pi_beta``.
        batch_size: mini-batch size.
        gamma: discount factor.
        tau: soft target update rate.
        n_critics: number of critics (min over their targets).
        expectile: expectile of ``V`` (0.7-0.9 in SAQ's runs).
        temperature: ``lambda`` of SAQ eq. 10 (0.1 by default in the authors' code).
        log_behavior_min: lower clip of ``log pi_beta`` in eq. 10 (-8 in the authors' code).
        compile_graph: d3rlpy's torch.compile + CUDAGraph flag (CUDA only).
    """

    critic_learning_rate: float = 3e-4
    behavior_learning_rate: float = 3e-4
    critic_optim_factory: OptimizerFactory = make_optimizer_field()
    behavior_optim_factory: OptimizerFactory = make_optimizer_field()
    critic_encoder_factory: EncoderFactory = make_encoder_field()
    value_encoder_factory: EncoderFactory = make_encoder_field()
    behavior_encoder_factory: EncoderFactory = make_encoder_field()
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    n_critics: int = 2
    expectile: float = 0.7
    temperature: float = 0.1
    log_behavior_min: float = -8.0

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> "DiscreteIQL":
        return DiscreteIQL(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "discrete_iql"


@dataclasses.dataclass(frozen=True)
class DiscreteIQLModules(Modules):
    """Every module and optimizer saved by ``save_model`` / ``save``."""

    q_funcs: nn.ModuleList
    targ_q_funcs: nn.ModuleList
    value_func: ValueFunction
    behavior_policy: CategoricalPolicy
    critic_optim: OptimizerWrapper
    behavior_optim: OptimizerWrapper


class DiscreteIQLImpl(DiscreteQFunctionMixin, QLearningAlgoImplBase):
    """Torch side of :class:`DiscreteIQL` (losses, target update, SAQ eq. 10)."""

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
        self._modules.critic_optim.zero_grad()
        target = self.compute_target(batch).view(1, -1)
        q_data = pick_codes(stack_q_values(self._modules.q_funcs, batch.observations), batch.actions)
        q_loss = (q_data - target).pow(2).mean(dim=1).sum()
        v_loss = self.compute_value_loss(batch)
        critic_loss = q_loss + v_loss
        critic_loss.backward()
        return {"critic_loss": critic_loss, "q_loss": q_loss, "v_loss": v_loss}

    def compute_behavior_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        """Maximum likelihood of the dataset codes under ``pi_beta`` (cross-entropy)."""
        self._modules.behavior_optim.zero_grad()
        log_probs = self._modules.behavior_policy(batch.observations).logits
        behavior_loss = -pick_codes(log_probs, batch.actions).mean()
        behavior_loss.backward()
        return {"behavior_loss": behavior_loss}

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
                q_values, values, behavior_log_probs, self._temperature, self._log_behavior_min
            )

    @eval_api
    def policy_log_probs(self, x: TorchObservation) -> torch.Tensor:
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


class DiscreteIQL(DiscreteCodeAlgoMixin, QLearningAlgoBase[DiscreteIQLImpl, DiscreteIQLConfig]):
    """Discrete IQL with the closed-form policy of SAQ eq. 10; see :class:`DiscreteIQLConfig`."""

    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        config = self._config
        q_funcs, q_func_forwarder, targ_q_funcs = self.create_twin_critics(
            observation_shape, action_size, config.critic_encoder_factory, config.n_critics
        )
        value_func = create_value_function(
            observation_shape, config.value_encoder_factory, device=self._device, enable_ddp=self._enable_ddp
        )
        behavior_policy = create_categorical_policy(
            observation_shape,
            action_size,
            config.behavior_encoder_factory,
            device=self._device,
            enable_ddp=self._enable_ddp,
        )
        critic_optim = config.critic_optim_factory.create(
            list(q_funcs.named_modules()) + list(value_func.named_modules()),
            lr=config.critic_learning_rate,
            compiled=self.compiled,
        )
        behavior_optim = config.behavior_optim_factory.create(
            behavior_policy.named_modules(), lr=config.behavior_learning_rate, compiled=self.compiled
        )
        modules = DiscreteIQLModules(
            q_funcs=q_funcs,
            targ_q_funcs=targ_q_funcs,
            value_func=value_func,
            behavior_policy=behavior_policy,
            critic_optim=critic_optim,
            behavior_optim=behavior_optim,
        )
        self._impl = DiscreteIQLImpl(
            observation_shape=observation_shape,
            action_size=action_size,
            modules=modules,
            q_func_forwarder=q_func_forwarder,
            gamma=config.gamma,
            tau=config.tau,
            expectile=config.expectile,
            temperature=config.temperature,
            log_behavior_min=config.log_behavior_min,
            compiled=self.compiled,
            device=self._device,
        )

    def predict_policy(self, x: Observation) -> np.ndarray:
        """Probabilities (B, K) of SAQ eq. 10 at observations ``x`` (observation scaler applied)."""
        return policy_probabilities(self, x)


register_learnable(DiscreteIQLConfig)
