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

This module holds the config and the algorithm; the torch side (modules, impl, and the math of
eqs. 9-10: :func:`expectile_loss`, :func:`iql_policy_logits`) is in
:mod:`saq_wrappers.integrations.d3rlpy.torch.iql_impl` and re-exported here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
from d3rlpy.algos.qlearning.base import QLearningAlgoBase
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.models.builders import create_categorical_policy, create_value_function
from d3rlpy.models.encoders import EncoderFactory, make_encoder_field
from d3rlpy.optimizers.optimizers import OptimizerFactory, make_optimizer_field
from d3rlpy.types import Observation, Shape

from saq_wrappers.integrations.d3rlpy.discrete import (
    DiscreteActionSpaceError,
    DiscreteCodeAlgoMixin,
    policy_probabilities,
)
from saq_wrappers.integrations.d3rlpy.encoders import check_encoders_accept
from saq_wrappers.integrations.d3rlpy.torch.iql_impl import (
    DiscreteIQLImpl,
    DiscreteIQLModules,
    expectile_loss,
    iql_policy_logits,
    kl_constrained_temperature,
)
from saq_wrappers.integrations.d3rlpy.torch.kl_constraint import DEFAULT_KL_BUDGET, check_kl_budget

__all__ = [
    "DEFAULT_KL_BUDGET",
    "DiscreteActionSpaceError",
    "DiscreteIQL",
    "DiscreteIQLConfig",
    "DiscreteIQLImpl",
    "DiscreteIQLModules",
    "expectile_loss",
    "iql_policy_logits",
    "kl_constrained_temperature",
]


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

    Acting: ``pi*(k|s) ∝ exp((min_j Qbar_j(s,k) - V(s)) / lambda(s) + max(log pi_beta(k|s),
    log_behavior_min))`` (SAQ eq. 10). ``lambda(s)`` is eq. 9's Lagrange multiplier solved per
    state so that ``KL(pi* || pi_beta) <= kl_budget`` (never below ``temperature``); with
    ``kl_budget=None`` it is the constant ``temperature``, as in the authors' code. Why the
    budget is the default: the critics are trained only at each state's dataset code, so
    ``Q(s, k)`` at the codes a state never takes is an extrapolation, and with a constant
    ``lambda = 0.1`` an extrapolated advantage of one unit outweighs any ``log pi_beta``. On
    narrow data that policy follows the extrapolations and collapses (hopper-expert: normalized
    -0.2 with the constant, 24.5 with the budget, 25.4 for pi_beta's own argmax;
    ``benchmarks/diagnose_saq_iql.py``). The advantage uses the target critics because ``V``
    regresses on them, so ``A`` is measured on one scale. ``predict`` is its argmax, ``sample_action`` samples it, and
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
        temperature: ``lambda`` of SAQ eq. 10 (0.1 by default in the authors' code); with a
            ``kl_budget``, the smallest ``lambda`` used.
        log_behavior_min: lower clip of ``log pi_beta`` in eq. 10 (-8 in the authors' code).
        kl_budget: ``eps`` of SAQ eq. 9 in nats, enforced exactly at every state when acting
            (:func:`kl_constrained_temperature`); ``None`` for the authors' constant ``lambda``.
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
    kl_budget: Optional[float] = DEFAULT_KL_BUDGET

    def __post_init__(self) -> None:
        check_kl_budget(self.kl_budget)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> "DiscreteIQL":
        return DiscreteIQL(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "discrete_iql"


class DiscreteIQL(DiscreteCodeAlgoMixin, QLearningAlgoBase[DiscreteIQLImpl, DiscreteIQLConfig]):
    """Discrete IQL with the closed-form policy of SAQ eq. 10; see :class:`DiscreteIQLConfig`."""

    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        config = self._config
        check_encoders_accept(
            type(self).__name__,
            observation_shape,
            critic_encoder_factory=config.critic_encoder_factory,
            value_encoder_factory=config.value_encoder_factory,
            behavior_encoder_factory=config.behavior_encoder_factory,
        )
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
            kl_budget=config.kl_budget,
            compiled=self.compiled,
            device=self._device,
        )

    def predict_policy(self, x: Observation) -> np.ndarray:
        """Probabilities (B, K) of SAQ eq. 10 at observations ``x`` (observation scaler applied)."""
        return policy_probabilities(self, x)


register_learnable(DiscreteIQLConfig)
