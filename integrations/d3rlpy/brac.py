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
``E_pi[Qbar] - beta KL`` exactly when ``alpha == beta``. That is the default (BRAC-v's target);
``entropy_in_target=False`` follows eq. 3 as printed. By default ``pi_beta`` trains jointly with
the critics and the actor; an optional first phase learns it alone (see the config).

This module holds the config, the algorithm and the length of the optional ``pi_beta`` phase; the torch
side (modules, impl, and the math: :func:`categorical_kl`, :func:`brac_soft_value`,
:func:`brac_critic_target`) is in :mod:`saq_wrappers.integrations.d3rlpy.torch.brac_impl` and
re-exported here.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Optional

import numpy as np
from d3rlpy.algos.qlearning.base import QLearningAlgoBase
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.dataset import ReplayBufferBase
from d3rlpy.models.encoders import EncoderFactory, make_encoder_field
from d3rlpy.optimizers.optimizers import OptimizerFactory, make_optimizer_field
from d3rlpy.types import Observation, Shape

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy._config_checks import check_common_fields
from saq_wrappers.integrations.d3rlpy.candidate_networks import check_candidate_fields
from saq_wrappers.integrations.d3rlpy.discrete import (
    DiscreteCodeAlgoMixin,
    check_discrete_dataset,
    policy_probabilities,
)
from saq_wrappers.integrations.d3rlpy.encoders import check_encoders_accept
from saq_wrappers.integrations.d3rlpy.torch.brac_impl import (
    DiscreteBRACImpl,
    DiscreteBRACModules,
    brac_critic_target,
    brac_soft_value,
    categorical_kl,
)
from saq_wrappers.integrations.d3rlpy.torch.kl_constraint import DEFAULT_KL_BUDGET, check_kl_budget

__all__ = [
    "DiscreteBRAC",
    "DiscreteBRACConfig",
    "DiscreteBRACImpl",
    "DiscreteBRACModules",
    "behavior_phase_steps",
    "brac_critic_target",
    "brac_soft_value",
    "categorical_kl",
]


@dataclasses.dataclass()
class DiscreteBRACConfig(LearnableConfig):
    r"""Config of discrete BRAC-v with the KL divergence, exact over K codes (SAQ eqs. 2-4).

    Per gradient step on a batch ``(s, k, r, s', d)`` of codes:

    - critics ``Q_j(s) -> R^K`` (``n_critics``, min over targets), squared error to the eq. 3
      target ``r + gamma^n (1-d) sum_k pi_phi(k|s')[min_j Qbar_j(s',k) + beta log pi_beta(k|s')]``
      (plus ``- alpha log pi_phi(k|s')`` inside the sum when ``entropy_in_target``, the default);
    - actor ``pi_phi`` (categorical) maximizes eq. 4,
      ``sum_k pi_phi(k|s)[min_j Q_j(s,k) + beta log pi_beta(k|s) - alpha log pi_phi(k|s)]``,
      with the critics and ``pi_beta`` held fixed;
    - target critics soft-updated with ``tau``.

    See the module docstring for how these signs relate to ``- beta KL(pi_phi || pi_beta)``:
    with ``alpha == beta`` the actor objective is exactly ``E_pi[Q] - beta KL``.

    **The KL budget** (``kl_budget``, default 0.01 nats). A constant ``beta`` is a Lagrange
    multiplier fixed in advance, and the critics are trained only at the dataset's code of each
    state: wherever the extrapolated ``Q(s, k)`` of codes the data never takes spreads by more
    than a few ``beta``, eq. 4's optimum ``pi ∝ pi_beta exp(Q / beta)`` moves onto them, eq. 3
    then bootstraps from them, and the values diverge (on narrow expert data the KL grew to
    several nats, Q far past any return in the data, and the score fell to zero). With a budget the actor's weight
    at each state is raised to the smallest ``beta(s) >= beta`` whose optimum satisfies
    ``KL(pi || pi_beta) <= kl_budget`` (solved exactly over the K codes,
    :func:`~saq_wrappers.integrations.d3rlpy.torch.kl_constraint.kl_constrained_temperature`),
    and ``alpha`` is scaled by the same factor, so eq. 4 keeps its form with a per-state
    multiplier: BRAC's penalty read as the Lagrangian of its KL constraint, enforced exactly as
    SAQ argues discrete actions allow. The critic target keeps the constant ``beta``: it sums over
    ``pi_phi``, which the budget already keeps on the data's codes. ``None`` restores the
    constant ``beta`` everywhere. Why 0.01 and not 0.1: on narrow data ``pi_beta`` spreads over
    many near-tied codes at a state (its cross-entropy on expert codes is a few nats), so 0.1
    nats is enough to re-rank them by the critics' extrapolation error.

    **The defaults, and why.** Each departure from eq. 3 as printed, a 0.1-nat budget and a
    ``pi_beta`` phase raised the score on the narrow expert data they were chosen on, together
    to SAQ-BC's level there (the runs, and how the defaults fare on held-out data, are in the
    design note ``docs/notes/saq-brac.md``). So the
    defaults are ``entropy_in_target=True`` (the critic target is exactly BRAC-v's
    ``E_pi[Qbar] - beta KL(pi || pi_beta)`` with ``alpha == beta``; eq. 3 as printed also
    subtracts ``beta H(pi)``, which on raw locomotion rewards of a few units per step is as large
    as the reward), ``kl_budget=0.01`` and joint ``pi_beta`` training
    (``behavior_pretrain_fraction=0``).

    ``pi_beta`` is trained by maximum likelihood on the codes. By default it trains jointly with
    the critics and the actor for the whole run. SAQ sec. 4.2 learns it first ("we first learn a
    categorical ... behavior policy"); ``behavior_pretrain_fraction > 0`` does that: the first
    steps of each ``fit`` / ``fitter`` call (that fraction of its ``n_steps``, see
    :func:`behavior_phase_steps`: at least one step of each phase once ``n_steps >= 2``) update
    only ``pi_beta``, which is then frozen while the critics and actor train;
    ``behavior_pretrain_steps`` fixes the phase's length instead (needed for runs stopped by a
    time budget, whose ``n_steps`` is only a cap). Joint training is the default because at an
    equal update budget a phase takes its updates from ``pi_beta``: a 10% phase left ``pi_beta``
    far less trained than SAQ-BC's and cost a large part of the score; the actor regularizes
    toward a still-improving ``pi_beta`` early on, which the measured runs did not suffer from.

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
        entropy_in_target: also put ``- alpha log pi_phi(k|s')`` in the critic target (default
            ``True``: BRAC-v's ``E_pi[Qbar] - beta KL``; ``False`` is eq. 3 as printed).
        kl_budget: per-state bound on ``KL(pi || pi_beta)`` that sets the actor's weight at each
            state (see above); ``None`` for the constant ``beta`` of eq. 4. Needs ``beta > 0``.
        behavior_pretrain_fraction: length of an optional ``pi_beta``-only first phase as a
            fraction of the ``n_steps`` of each ``fit``, in ``[0, 1)`` (default 0: joint training).
        behavior_pretrain_steps: a fixed length of that phase in gradient steps, overriding
            ``behavior_pretrain_fraction`` (``None``: use the fraction).
        candidate_action_dim: ``0`` (default): plain observations and policies with one logit per
            code. ``D >= 1``: candidate observations (the state, then the K codes' decoded actions
            of size ``D``); the actor and ``pi_beta`` are the action density over codes,
            ``pi(k|s) ∝ p(g(s,k)|s)`` (issue 37), with every sum over codes above unchanged, and
            the critics read the state alone
            (:mod:`~saq_wrappers.integrations.d3rlpy.candidate_networks`).
        n_components: Gaussians of that density (``M``).
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
    entropy_in_target: bool = True
    behavior_pretrain_fraction: float = 0.0
    behavior_pretrain_steps: Optional[int] = None
    kl_budget: Optional[float] = DEFAULT_KL_BUDGET
    candidate_action_dim: int = 0
    n_components: int = 1

    def __post_init__(self) -> None:
        check_common_fields(self)
        check_candidate_fields(self)
        check_kl_budget(self.kl_budget)
        if self.kl_budget is not None and not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a finite number > 0 with a kl_budget, got {self.beta!r}")

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> "DiscreteBRAC":
        return DiscreteBRAC(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "discrete_brac"


def behavior_phase_steps(n_steps: int, fraction: float, override: Optional[int] = None) -> int:
    """Length of SAQ-BRAC's ``pi_beta``-only first phase in a run of ``n_steps`` updates.

    ``override`` (``behavior_pretrain_steps``) is returned as is. Otherwise
    ``round(fraction * n_steps)``, kept within ``[1, n_steps - 1]`` when ``fraction > 0`` so that a
    run of two or more steps trains ``pi_beta`` and then the critics and actor; 0 (joint
    training) when ``fraction == 0`` or ``n_steps == 1``.
    """
    if override is not None:
        if override < 0:
            raise DataError(f"behavior_pretrain_steps must be >= 0 or None, got {override}")
        return override
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"behavior_pretrain_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0 or n_steps < 2:
        return 0
    return min(max(1, round(fraction * n_steps)), n_steps - 1)


class DiscreteBRAC(DiscreteCodeAlgoMixin, QLearningAlgoBase[DiscreteBRACImpl, DiscreteBRACConfig]):
    """Discrete BRAC-v (KL) with exact sums over the codes; see :class:`DiscreteBRACConfig`."""

    def __init__(self, config: DiscreteBRACConfig, device: DeviceArg = False, enable_ddp: bool = False) -> None:
        super().__init__(config, device, enable_ddp)
        # Outside fit only the override is known: a phase from grad step 0, else joint training.
        override = config.behavior_pretrain_steps
        self._behavior_phase_end: Optional[int] = override if override else None

    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        config = self._config
        check_encoders_accept(
            type(self).__name__,
            observation_shape,
            actor_encoder_factory=config.actor_encoder_factory,
            critic_encoder_factory=config.critic_encoder_factory,
            behavior_encoder_factory=config.behavior_encoder_factory,
        )
        q_funcs, q_func_forwarder, targ_q_funcs = self.create_twin_critics(
            observation_shape, action_size, config.critic_encoder_factory, config.n_critics
        )
        policy, actor_optim = self.create_code_policy_with_optim(
            observation_shape,
            action_size,
            config.actor_encoder_factory,
            config.actor_optim_factory,
            config.actor_learning_rate,
        )
        behavior_policy, behavior_optim = self.create_code_policy_with_optim(
            observation_shape,
            action_size,
            config.behavior_encoder_factory,
            config.behavior_optim_factory,
            config.behavior_learning_rate,
        )
        modules = DiscreteBRACModules(
            policy=policy,
            q_funcs=q_funcs,
            targ_q_funcs=targ_q_funcs,
            behavior_policy=behavior_policy,
            actor_optim=actor_optim,
            critic_optim=config.critic_optim_factory.create(
                q_funcs.named_modules(), lr=config.critic_learning_rate, compiled=self.compiled
            ),
            behavior_optim=behavior_optim,
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
            kl_budget=config.kl_budget,
            behavior_phase_end=self._behavior_phase_end,
            compiled=self.compiled,
            device=self._device,
        )

    def fitter(self, dataset: ReplayBufferBase, n_steps: int, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """d3rlpy's ``fitter``, whose first :func:`behavior_phase_steps` steps train only ``pi_beta``.

        ``fit`` runs through here too. A plain function (not a generator), so the phase is set,
        and the checks run, when it is called.
        """
        check_discrete_dataset(type(self).__name__, dataset.dataset_info)  # before any warning
        config = self._config
        phase = behavior_phase_steps(n_steps, config.behavior_pretrain_fraction, config.behavior_pretrain_steps)
        if phase >= n_steps:
            warnings.warn(
                f"DiscreteBRAC: fit(n_steps={n_steps}) ends inside the pi_beta first phase "
                f"(behavior_pretrain_steps={phase}), so the critics and the actor will not "
                "be trained; leave behavior_pretrain_steps=None to use behavior_pretrain_fraction",
                stacklevel=3,
            )
        self._behavior_phase_end = self.grad_step + phase if phase else None
        if self._impl is not None:
            self._impl.behavior_phase_end = self._behavior_phase_end
        return super().fitter(dataset, n_steps, *args, **kwargs)

    def predict_policy(self, x: Observation) -> np.ndarray:
        """Probabilities (B, K) of the actor ``pi_phi`` at ``x`` (observation scaler applied)."""
        return policy_probabilities(self, x)


register_learnable(DiscreteBRACConfig)
