"""SAQ-IQL: discrete Implicit Q-Learning over SAQ codes, as a first-class d3rlpy algorithm.

SAQ section 4.2 (eqs. 9-10, appendix A). With K discrete codes the IQL policy-extraction problem

    max_pi E_{k ~ pi(.|s)} [A(s, k)]   s.t.  KL(pi(.|s) || pi_beta(.|s)) <= eps        (SAQ eq. 9)

has the closed-form solution

    pi*(k|s) ∝ exp(A(s, k) / lambda + log pi_beta(k|s))                                (SAQ eq. 10)

The policy is eq. 10, obtained one of two ways (``policy_extraction``):

* ``"weighted_likelihood"`` (default): a categorical policy fitted by advantage-weighted maximum
  likelihood of the dataset codes, whose optimum is eq. 10 (IQL's own extraction). It reads the
  critics only at the codes the data takes, the only codes where IQL trains them.
* ``"closed_form"``: eq. 10 evaluated at acting time over all K codes from the critics, as the
  authors' code does; it reads ``Q(s, k)`` at codes a state never takes (extrapolations).

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
from typing import Optional

import numpy as np
from d3rlpy.algos.qlearning.base import QLearningAlgoBase
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.models.builders import create_value_function
from d3rlpy.models.encoders import EncoderFactory, make_encoder_field
from d3rlpy.optimizers.optimizers import OptimizerFactory, make_optimizer_field
from d3rlpy.types import Observation, Shape

from saq_wrappers.integrations.d3rlpy._config_checks import check_common_fields
from saq_wrappers.integrations.d3rlpy.candidate_networks import check_candidate_fields
from saq_wrappers.integrations.d3rlpy.discrete import (
    DiscreteActionSpaceError,
    DiscreteCodeAlgoMixin,
    policy_probabilities,
)
from saq_wrappers.integrations.d3rlpy.encoders import check_encoders_accept
from saq_wrappers.integrations.d3rlpy.torch.iql_impl import (
    CLOSED_FORM,
    POLICY_EXTRACTIONS,
    WEIGHTED_LIKELIHOOD,
    DiscreteIQLImpl,
    DiscreteIQLModules,
    advantage_weights,
    batch_kl_temperature,
    expectile_loss,
    iql_policy_logits,
    kl_constrained_temperature,
)
from saq_wrappers.integrations.d3rlpy.torch.kl_constraint import DEFAULT_KL_BUDGET, check_kl_budget
from saq_wrappers.validation import check_bool, check_number

__all__ = [
    "CLOSED_FORM",
    "POLICY_EXTRACTIONS",
    "WEIGHTED_LIKELIHOOD",
    "DiscreteActionSpaceError",
    "DiscreteIQL",
    "DiscreteIQLConfig",
    "DiscreteIQLImpl",
    "DiscreteIQLModules",
    "advantage_weights",
    "batch_kl_temperature",
    "expectile_loss",
    "iql_policy_logits",
    "kl_constrained_temperature",
]


@dataclasses.dataclass()
class DiscreteIQLConfig(LearnableConfig):
    r"""Config of discrete Implicit Q-Learning with the SAQ policy of eq. 10.

    Training, per gradient step on a batch ``(s, k, r, s', d)`` of codes ``k``:

    - two critics ``Q_j(s) -> R^K``; target ``y = r + gamma^n (1 - d) V(s')`` and loss
      ``sum_j (Q_j(s, k) - y)^2`` (IQL's ``L_Q``, SAQ sec. 3);
    - ``V(s)`` by expectile regression on ``min_j Qbar_j(s, k)``, the minimum of the *target*
      critics at the dataset code (IQL's ``L_V``);
    - target critics soft-updated with ``tau``;
    - with ``policy_extraction="closed_form"`` (or ``fit_behavior_policy=True``), a categorical
      behavior policy ``pi_beta(k|s)`` by maximum likelihood (cross-entropy on the codes),
      trained **jointly**, on the same batches. Why jointly and not as a first phase:
      in IQL nothing in the Q / V losses ever queries a policy, so ``pi_beta`` has no effect on
      critic training; it only enters the acting-time policy. Its maximum-likelihood target is
      stationary, so by the end of ``fit`` it is as trained as a separate phase of the same
      length would make it, and one ``fit(n_steps)`` call stays the whole recipe.

    - with ``policy_extraction="weighted_likelihood"``, a categorical policy ``pi`` by maximum
      likelihood of the dataset codes weighted by ``min(exp(A(s,k) / lambda), max_weight)``,
      ``A = min_j Qbar_j(s, k) - V(s)`` at the dataset code (IQL's extraction): its optimum is
      ``pi ∝ pi_beta exp(A / lambda)``, SAQ eq. 10. ``lambda`` is eq. 9's multiplier, solved on
      each batch so that the weighted batch is within ``kl_budget`` nats of the batch (an upper
      bound of eq. 9's expected per-state KL; never below ``temperature``), or the constant
      ``temperature`` with ``kl_budget=None`` (IQL's fixed inverse temperature).

    Acting (``predict`` is the argmax, ``sample_action`` samples): the fitted ``pi``; or, with
    ``policy_extraction="closed_form"``, ``pi*(k|s) ∝ exp((min_j Qbar_j(s,k) - V(s)) /
    lambda(s) + max(log pi_beta(k|s), log_behavior_min))`` over all K codes, ``lambda(s)`` solved
    per state so that ``KL(pi* || pi_beta) <= kl_budget`` (the constant ``temperature``, as in the
    authors' code, with ``kl_budget=None``). ``predict_value(x, k)`` returns ``Q(s, k)`` (mean of
    the critics), as in d3rlpy.

    Why weighted likelihood and a budget are the defaults. The critics are trained only at each
    state's dataset code, so ``Q(s, k)`` at the codes a state never takes is an extrapolation;
    the closed form reads it at every code, and on narrow expert data its policy fell away from
    ``pi_beta`` as the critics trained. The weighted likelihood reads the critics only at dataset
    codes, but with a constant lambda its weights follow the critics' error there and the fit
    collapsed too; a KL budget on the weighted batch keeps the tilt small. The target critics
    give ``A`` because ``V`` regresses on them.

    Why the budget is 0.01 nats, not 0.1. On narrow data a state has one dataset code, so the
    dataset advantage is mostly the critics' error: with 0.1 nats (lambda near 2) the greedy
    policy at near-identical start states moved onto one bad code, while 0.01 (lambda several to
    tens of times larger) lost nothing measurable. The runs behind both choices are in the
    design note ``docs/notes/saq-iql.md``.

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
        log_behavior_min: lower clip of ``log pi_beta`` in the closed form (-8 in the authors'
            code).
        kl_budget: ``eps`` of SAQ eq. 9 in nats: per batch for the weighted likelihood
            (:func:`~saq_wrappers.integrations.d3rlpy.torch.iql_impl.batch_kl_temperature`),
            per state for the closed form (:func:`kl_constrained_temperature`); ``None`` for a
            constant ``lambda = temperature``.
        policy_extraction: ``"weighted_likelihood"`` (default) or ``"closed_form"``, see above.
        max_weight: clip of the likelihood weights (100, IQL's).
        actor_learning_rate: learning rate of the fitted policy.
        actor_optim_factory: optimizer of the fitted policy.
        actor_encoder_factory: torso of the fitted policy.
        fit_behavior_policy: also fit ``pi_beta`` with the weighted-likelihood extraction, which
            never reads it (for diagnostics that compare against it). Off by default: it is a
            fifth network, about a fifth of each update's time. Its initial weights are drawn
            either way, so this switch leaves every other network's initial weights as they are.
        candidate_action_dim: ``0`` (default): plain observations and policies with one logit per
            code. ``D >= 1``: observations are candidate observations (the state, then the K codes'
            decoded actions of size ``D``), the fitted policy and ``pi_beta`` are the action density
            over codes, ``pi(k|s) ∝ p(g(s,k)|s)`` (issue 37;
            :class:`~saq_wrappers.integrations.d3rlpy.torch.density_policy.ActionDensityPolicy`),
            trained by the same (weighted) likelihood, and the critics and ``V`` read the state
            alone (:mod:`~saq_wrappers.integrations.d3rlpy.candidate_networks`).
        n_components: Gaussians of that density (``M``).
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
    policy_extraction: str = WEIGHTED_LIKELIHOOD
    max_weight: float = 100.0
    actor_learning_rate: float = 3e-4
    actor_optim_factory: OptimizerFactory = make_optimizer_field()
    actor_encoder_factory: EncoderFactory = make_encoder_field()
    fit_behavior_policy: bool = False
    candidate_action_dim: int = 0
    n_components: int = 1

    def __post_init__(self) -> None:
        check_common_fields(self)
        check_candidate_fields(self)
        check_kl_budget(self.kl_budget)
        if self.policy_extraction not in POLICY_EXTRACTIONS:
            raise ValueError(
                f"policy_extraction must be one of {', '.join(POLICY_EXTRACTIONS)}, got {self.policy_extraction!r}"
            )
        check_number("max_weight", self.max_weight, 0, exclusive_minimum=True)
        check_number("temperature", self.temperature, 0, exclusive_minimum=True)
        check_bool("fit_behavior_policy", self.fit_behavior_policy)

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> "DiscreteIQL":
        return DiscreteIQL(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "discrete_iql"


class DiscreteIQL(DiscreteCodeAlgoMixin, QLearningAlgoBase[DiscreteIQLImpl, DiscreteIQLConfig]):
    """Discrete IQL with the policy of SAQ eq. 10 (weighted likelihood or closed form); see
    :class:`DiscreteIQLConfig`."""

    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        config = self._config
        weighted = config.policy_extraction == WEIGHTED_LIKELIHOOD
        check_encoders_accept(
            type(self).__name__,
            observation_shape,
            critic_encoder_factory=config.critic_encoder_factory,
            value_encoder_factory=config.value_encoder_factory,
            behavior_encoder_factory=config.behavior_encoder_factory,
            **({"actor_encoder_factory": config.actor_encoder_factory} if weighted else {}),
        )
        q_funcs, q_func_forwarder, targ_q_funcs = self.create_twin_critics(
            observation_shape, action_size, config.critic_encoder_factory, config.n_critics
        )
        value_func = create_value_function(
            observation_shape,
            self.state_encoder_factory(observation_shape, action_size, config.value_encoder_factory),
            device=self._device,
            enable_ddp=self._enable_ddp,
        )
        behavior_policy, behavior_optim = self.create_code_policy_with_optim(
            observation_shape,
            action_size,
            config.behavior_encoder_factory,
            config.behavior_optim_factory,
            config.behavior_learning_rate,
        )
        if weighted and not config.fit_behavior_policy:
            # The weighted fit of eq. 10 never reads pi_beta. Its initial weights were drawn
            # above all the same, so the networks built after it start from the same weights
            # whether or not it is fitted.
            behavior_policy, behavior_optim = None, None
        critic_optim = config.critic_optim_factory.create(
            list(q_funcs.named_modules()) + list(value_func.named_modules()),
            lr=config.critic_learning_rate,
            compiled=self.compiled,
        )
        policy, policy_optim = None, None
        if weighted:
            policy, policy_optim = self.create_code_policy_with_optim(
                observation_shape,
                action_size,
                config.actor_encoder_factory,
                config.actor_optim_factory,
                config.actor_learning_rate,
            )
        modules = DiscreteIQLModules(
            q_funcs=q_funcs,
            targ_q_funcs=targ_q_funcs,
            value_func=value_func,
            behavior_policy=behavior_policy,
            critic_optim=critic_optim,
            behavior_optim=behavior_optim,
            policy=policy,
            policy_optim=policy_optim,
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
            max_weight=config.max_weight,
            compiled=self.compiled,
            device=self._device,
        )

    def predict_policy(self, x: Observation) -> np.ndarray:
        """Probabilities (B, K) of SAQ eq. 10 at observations ``x`` (observation scaler applied)."""
        return policy_probabilities(self, x)


register_learnable(DiscreteIQLConfig)
