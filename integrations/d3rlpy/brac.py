"""SAQ-BRAC: discrete BRAC-v with a KL penalty over SAQ codes, as a first-class d3rlpy algorithm.

SAQ section 4.2 ("SAQ-BRAC"): learn a categorical behavior policy ``pi_beta(k|s)`` on the codes
by maximum likelihood, then follow SAQ eqs. 3 and 4 with every expectation over the policy an
exact sum over the K codes (no sampled actions, no sampled KL):

    critic (eq. 3):  y = r + gamma (1 - d) sum_k pi_phi(k|s') [Qbar(s',k) + beta log pi_beta(k|s')]
    actor  (eq. 4):  max_phi sum_k pi_phi(k|s) [Q(s,k) + beta log pi_beta(k|s) - alpha log pi_phi(k|s)]

Sign conventions against SAQ eq. 2 (``KL(pi||pi_beta) = E_pi[log pi - log pi_beta]``) and the
entropy ``H(pi) = -E_pi[log pi]``:

    sum_k pi(k) [Q(k) + beta log pi_beta(k)] = E_pi[Q] - beta KL(pi||pi_beta) - beta H(pi)

so eq. 3 as written subtracts ``beta * KL`` (BRAC-v's value penalty) *and* an extra
``beta * H(pi)``; eq. 4 equals ``E_pi[Q] - beta KL + (alpha - beta) H(pi)``, i.e. exactly
BRAC-v's KL-regularized policy objective when ``alpha == beta``. ``entropy_in_target=True``
adds ``-alpha log pi_phi(k|s')`` inside the critic's sum too, which makes the target
``E_pi[Qbar] - beta KL`` exactly when ``alpha == beta``. The default follows eq. 3 literally.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from d3rlpy.algos.qlearning.base import QLearningAlgoBase, QLearningAlgoImplBase
from d3rlpy.algos.qlearning.torch.utility import DiscreteQFunctionMixin
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.models.builders import create_categorical_policy
from d3rlpy.models.encoders import EncoderFactory, make_encoder_field
from d3rlpy.models.torch import CategoricalPolicy, DiscreteEnsembleQFunctionForwarder
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
    DiscreteCodeAlgoMixin,
    check_discrete_dataset,
    pick_codes,
    policy_probabilities,
    stack_q_values,
)

__all__ = [
    "DiscreteBRAC",
    "DiscreteBRACConfig",
    "DiscreteBRACImpl",
    "DiscreteBRACModules",
    "brac_critic_target",
    "brac_soft_value",
    "categorical_kl",
]


# --------------------------------------------------------------------------------------------
# The math, as plain functions (tested against explicit sums)
# --------------------------------------------------------------------------------------------


def categorical_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(p || q) = sum_k p_k (log p_k - log q_k)`` over the last axis (SAQ eq. 2)."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def brac_soft_value(
    q_values: torch.Tensor,
    log_pi: torch.Tensor,
    log_pi_beta: torch.Tensor,
    beta: float,
    alpha: float,
) -> torch.Tensor:
    """``sum_k pi(k|s) [Q(s,k) + beta log pi_beta(k|s) - alpha log pi(k|s)]`` -> (B,).

    The inside of SAQ eq. 4 (and of eq. 3 with ``alpha = 0``), summed exactly over the K codes.
    ``q_values``, ``log_pi`` and ``log_pi_beta`` are (B, K); ``log_pi`` must be normalized.
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


# --------------------------------------------------------------------------------------------
# Config + algorithm
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass()
class DiscreteBRACConfig(LearnableConfig):
    r"""Config of discrete BRAC-v with the KL divergence, exact over K codes (SAQ eqs. 2-4).

    Per gradient step on a batch ``(s, k, r, s', d)`` of codes:

    - critics ``Q_j(s) -> R^K`` (``n_critics``, min over targets), squared error to the eq. 3
      target ``r + gamma^n (1-d) sum_k pi_phi(k|s')[min_j Qbar_j(s',k) + beta log pi_beta(k|s')]``
      (plus ``- alpha log pi_phi(k|s')`` inside the sum when ``entropy_in_target``);
    - actor ``pi_phi`` (categorical) maximizes eq. 4,
      ``sum_k pi_phi(k|s)[min_j Q_j(s,k) + beta log pi_beta(k|s) - alpha log pi_phi(k|s)]``,
      with the critics and ``pi_beta`` held fixed;
    - target critics soft-updated with ``tau``.

    See the module docstring for how these signs relate to ``- beta KL(pi_phi || pi_beta)``:
    with ``alpha == beta`` the actor objective is exactly ``E_pi[Q] - beta KL``.

    ``pi_beta`` is trained by maximum likelihood on the codes as a **first phase** (SAQ sec. 4.2
    "we first learn a categorical ... behavior policy"): the first ``behavior_pretrain_steps``
    gradient steps of ``fit`` update only ``pi_beta``; afterwards it is frozen and the critics
    and actor train. Unlike IQL, ``log pi_beta`` enters both the critic target and the actor
    loss, so fitting them to an untrained (near-uniform) ``pi_beta`` would regularize toward the
    wrong distribution and make the critic chase a moving target. With
    ``behavior_pretrain_steps=0`` there is no phase and ``pi_beta`` trains jointly throughout.

    ``predict`` is the argmax of ``pi_phi``, ``sample_action`` samples it, and
    ``predict_value(x, k)`` returns ``Q(s, k)`` (mean of the critics), as in d3rlpy.

    Args:
        actor_learning_rate / critic_learning_rate / behavior_learning_rate: learning rates.
        actor_optim_factory / critic_optim_factory / behavior_optim_factory: optimizers.
        actor_encoder_factory / critic_encoder_factory / behavior_encoder_factory: torsos.
        batch_size: mini-batch size.
        gamma: discount factor.
        tau: soft target update rate.
        n_critics: number of critics.
        beta: weight of ``log pi_beta`` in eqs. 3 and 4 (the KL weight).
        alpha: weight of ``- log pi_phi`` in eq. 4 (``alpha == beta`` gives the exact KL).
        entropy_in_target: also put ``- alpha log pi_phi(k|s')`` in the critic target.
        behavior_pretrain_steps: length of the ``pi_beta``-only first phase.
        compile_graph: d3rlpy's torch.compile + CUDAGraph flag (CUDA only).
    """

    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    behavior_learning_rate: float = 3e-4
    actor_optim_factory: OptimizerFactory = make_optimizer_field()
    critic_optim_factory: OptimizerFactory = make_optimizer_field()
    behavior_optim_factory: OptimizerFactory = make_optimizer_field()
    actor_encoder_factory: EncoderFactory = make_encoder_field()
    critic_encoder_factory: EncoderFactory = make_encoder_field()
    behavior_encoder_factory: EncoderFactory = make_encoder_field()
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    n_critics: int = 2
    beta: float = 1.0
    alpha: float = 1.0
    entropy_in_target: bool = False
    behavior_pretrain_steps: int = 10_000

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> "DiscreteBRAC":
        return DiscreteBRAC(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "discrete_brac"


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


class DiscreteBRACImpl(DiscreteQFunctionMixin, QLearningAlgoImplBase):
    """Torch side of :class:`DiscreteBRAC` (exact eq. 3 target, exact eq. 4 actor loss)."""

    _modules: DiscreteBRACModules
    _q_func_forwarder: DiscreteEnsembleQFunctionForwarder
    _compute_critic_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]
    _compute_actor_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]
    _compute_behavior_grad: Callable[[TorchMiniBatch], dict[str, torch.Tensor]]

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
        behavior_pretrain_steps: int,
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
        self._behavior_pretrain_steps = behavior_pretrain_steps

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
            next_q = stack_q_values(self._modules.targ_q_funcs, batch.next_observations).min(dim=0).values
            next_log_pi = self._modules.policy(batch.next_observations).logits
            next_log_pi_beta = self._modules.behavior_policy(batch.next_observations).logits
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
        self._modules.critic_optim.zero_grad()
        target = self.compute_target(batch).view(1, -1)
        q_data = pick_codes(stack_q_values(self._modules.q_funcs, batch.observations), batch.actions)
        critic_loss = (q_data - target).pow(2).mean(dim=1).sum()
        critic_loss.backward()
        return {"critic_loss": critic_loss}

    def compute_actor_loss(self, observations: TorchObservation) -> dict[str, torch.Tensor]:
        """Negative SAQ eq. 4 objective, exact over the K codes, plus the logged KL."""
        with torch.no_grad():
            q_values = stack_q_values(self._modules.q_funcs, observations).min(dim=0).values
            log_pi_beta = self._modules.behavior_policy(observations).logits
        log_pi = self._modules.policy(observations).logits
        objective = brac_soft_value(q_values, log_pi, log_pi_beta, self._beta, self._alpha)
        return {
            "actor_loss": -objective.mean(),
            "kl": categorical_kl(log_pi.detach(), log_pi_beta).mean(),
        }

    def compute_actor_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        self._modules.actor_optim.zero_grad()
        losses = self.compute_actor_loss(batch.observations)
        losses["actor_loss"].backward()
        return losses

    def compute_behavior_grad(self, batch: TorchMiniBatch) -> dict[str, torch.Tensor]:
        """Maximum likelihood of the dataset codes under ``pi_beta`` (cross-entropy)."""
        self._modules.behavior_optim.zero_grad()
        log_probs = self._modules.behavior_policy(batch.observations).logits
        behavior_loss = -pick_codes(log_probs, batch.actions).mean()
        behavior_loss.backward()
        return {"behavior_loss": behavior_loss}

    def inner_update(self, batch: TorchMiniBatch, grad_step: int) -> dict[str, float]:
        losses: dict[str, torch.Tensor] = {}
        pretraining = grad_step < self._behavior_pretrain_steps
        if pretraining or self._behavior_pretrain_steps == 0:
            losses.update(self._compute_behavior_grad(batch))
            self._modules.behavior_optim.step()
        if not pretraining:
            losses.update(self._compute_critic_grad(batch))
            self._modules.critic_optim.step()
            losses.update(self._compute_actor_grad(batch))
            self._modules.actor_optim.step()
            soft_sync(self._modules.targ_q_funcs, self._modules.q_funcs, self._tau)
        return {name: float(value.detach().cpu()) for name, value in losses.items()}

    # ---- acting -----------------------------------------------------------------------------

    @eval_api
    def policy_log_probs(self, x: TorchObservation) -> torch.Tensor:
        with torch.no_grad():
            return self._modules.policy(x).logits

    def inner_predict_best_action(self, x: TorchObservation) -> torch.Tensor:
        return self._modules.policy(x).logits.argmax(dim=1)

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


class DiscreteBRAC(DiscreteCodeAlgoMixin, QLearningAlgoBase[DiscreteBRACImpl, DiscreteBRACConfig]):
    """Discrete BRAC-v (KL) with exact sums over the codes; see :class:`DiscreteBRACConfig`."""

    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        config = self._config
        q_funcs, q_func_forwarder, targ_q_funcs = self.create_twin_critics(
            observation_shape, action_size, config.critic_encoder_factory, config.n_critics
        )
        policy = create_categorical_policy(
            observation_shape, action_size, config.actor_encoder_factory, device=self._device, enable_ddp=self._enable_ddp
        )
        behavior_policy = create_categorical_policy(
            observation_shape,
            action_size,
            config.behavior_encoder_factory,
            device=self._device,
            enable_ddp=self._enable_ddp,
        )
        modules = DiscreteBRACModules(
            policy=policy,
            q_funcs=q_funcs,
            targ_q_funcs=targ_q_funcs,
            behavior_policy=behavior_policy,
            actor_optim=config.actor_optim_factory.create(
                policy.named_modules(), lr=config.actor_learning_rate, compiled=self.compiled
            ),
            critic_optim=config.critic_optim_factory.create(
                q_funcs.named_modules(), lr=config.critic_learning_rate, compiled=self.compiled
            ),
            behavior_optim=config.behavior_optim_factory.create(
                behavior_policy.named_modules(), lr=config.behavior_learning_rate, compiled=self.compiled
            ),
        )
        self._impl = DiscreteBRACImpl(
            observation_shape=observation_shape,
            action_size=action_size,
            modules=modules,
            q_func_forwarder=q_func_forwarder,
            gamma=config.gamma,
            tau=config.tau,
            beta=config.beta,
            alpha=config.alpha,
            entropy_in_target=config.entropy_in_target,
            behavior_pretrain_steps=config.behavior_pretrain_steps,
            compiled=self.compiled,
            device=self._device,
        )

    def fitter(self, dataset: Any, n_steps: int, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        check_discrete_dataset(type(self).__name__, dataset.dataset_info)  # before any warning
        remaining = self._config.behavior_pretrain_steps - self.grad_step
        if n_steps <= remaining:
            warnings.warn(
                f"DiscreteBRAC: fit(n_steps={n_steps}) ends inside the pi_beta first phase "
                f"({remaining} more steps of behavior_pretrain_steps="
                f"{self._config.behavior_pretrain_steps}), so the critics and the actor will not "
                "be trained; lower behavior_pretrain_steps (e.g. 10-20% of n_steps)",
                stacklevel=3,
            )
        return super().fitter(dataset, n_steps, *args, **kwargs)

    def predict_policy(self, x: Observation) -> np.ndarray:
        """Probabilities (B, K) of the actor ``pi_phi`` at ``x`` (observation scaler applied)."""
        return policy_probabilities(self, x)


register_learnable(DiscreteBRACConfig)
