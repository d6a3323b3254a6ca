"""SAQ-BC with the action-density policy over codes, as a d3rlpy algorithm (issue 37's candidate).

SAQ eq. 8's behavior cloning over codes, ``max E_D[log pi(k | s)]``, with the policy parametrized
through the decoded actions instead of one logit per code index:

    pi(k | s) ∝ p_theta(g(s, k) | s),   p_theta = a mixture of M diagonal Gaussians over actions

(:mod:`saq_wrappers.integrations.d3rlpy.torch.density_policy` says why).

What the density is fitted to (``likelihood``):

* ``"codes"`` (SAQ eq. 8 as written): the log-probability of the label code among the K codes,
  ``log p(g(s, k_D) | s) - log sum_k p(g(s, k) | s)``. Its gradient in a component's mean is
  ``(g(s, k_D) - E_pi[g(s, k)]) / sigma^2``: it matches the policy's mean over codes to the labels,
  and the density itself moves only through that softmax;
* ``"actions"``: the density's log-likelihood of the label's decoded action,
  ``log p(g(s, k_D) | s)``, a mixture density network fitted to the demonstrations (as decoded
  from their codes), the codes serving only to turn it into a policy. Its gradient in a mean is
  ``(g(s, k_D) - mu(s)) / sigma^2``, a regression's, so the density's mean learns the
  demonstrator's mean action as directly as BC does; with ``M > 1`` components each takes the
  actions it is responsible for, so distinct modes keep apart.

The algorithm sees candidate observations, the state followed by the ``K`` decoded actions at it
(:func:`saq_wrappers.candidate_observations.with_candidate_observations` for a dataset,
``SAQActionWrapper(env, quantizer, observe_candidates=True)`` for an env), and is otherwise
d3rlpy's ``DiscreteBC``: the same impl (with ``"codes"``, the same loss: the cross-entropy of the
code labels, no logit penalty), ``predict`` (the arg-max code) and save / load.

Usage::

    from saq_wrappers.candidate_observations import with_candidate_observations
    from saq_wrappers.integrations.d3rlpy import saq_density_bc_config, to_discrete_dataset

    dataset = to_discrete_dataset(with_candidate_observations(transitions, quantizer),
                                  relabel(transitions, quantizer))
    algo = saq_density_bc_config(quantizer).create(device="cpu:0")
    algo.fit(dataset, n_steps=20_000)
    env = SAQActionWrapper(env, quantizer, observe_candidates=True)   # acts on what it was trained on
"""

from __future__ import annotations

import dataclasses
from typing import Any

from d3rlpy.algos.qlearning.base import QLearningAlgoBase
from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCModules
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.constants import ActionSpace
from d3rlpy.models.encoders import EncoderFactory, make_encoder_field
from d3rlpy.optimizers.optimizers import OptimizerFactory, make_optimizer_field
from d3rlpy.types import Shape

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy._config_checks import check_common_fields
from saq_wrappers.integrations.d3rlpy.candidate_networks import (
    check_candidate_fields,
    create_density_policy,
    n_candidate_values,
)
from saq_wrappers.integrations.d3rlpy.torch.density_bc_impl import DensityBCImpl
from saq_wrappers.validation import check_int

__all__ = ["DENSITY_LIKELIHOODS", "DensityBC", "DensityBCConfig"]

#: What the density policy is fitted to (the module docstring): the label codes among the K codes
#: (SAQ eq. 8), or the labels' decoded actions.
DENSITY_LIKELIHOODS = ("codes", "actions")


@dataclasses.dataclass()
class DensityBCConfig(LearnableConfig):
    """Config of SAQ-BC with the action-density policy (see the module docstring).

    Args:
        candidate_action_dim: ``D``, the size of a decoded action (the quantizer's action space);
            the last ``K * D`` entries of every observation are the candidates.
        n_components: ``M``, the Gaussians of the density (1: one mode per state, where
            regression would act; more for demonstrations with several ways to act).
        likelihood: ``"codes"`` (SAQ eq. 8: the label among the codes) or ``"actions"`` (the
            density of the label's decoded action); see the module docstring.
        learning_rate, batch_size, optim_factory, encoder_factory: as d3rlpy's ``DiscreteBC``
            (the encoder is the torso on the state part).
    """

    candidate_action_dim: int = 1
    n_components: int = 1
    likelihood: str = "codes"
    batch_size: int = 256
    learning_rate: float = 3e-4
    optim_factory: OptimizerFactory = make_optimizer_field()
    encoder_factory: EncoderFactory = make_encoder_field()

    def __post_init__(self) -> None:
        check_common_fields(self)
        check_int("batch_size", self.batch_size, 1, 10**7)
        check_candidate_fields(self, minimum_action_dim=1)
        if self.likelihood not in DENSITY_LIKELIHOODS:
            raise DataError(f"likelihood must be one of {', '.join(DENSITY_LIKELIHOODS)}, got {self.likelihood!r}")

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> "DensityBC":
        return DensityBC(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "saq_density_bc"


class DensityBC(QLearningAlgoBase[DensityBCImpl, DensityBCConfig]):
    """d3rlpy's ``DiscreteBC`` whose imitator is an :class:`ActionDensityPolicy`."""

    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        config = self.config
        n_candidate_values(type(self).__name__, observation_shape, action_size, config.candidate_action_dim)
        policy = create_density_policy(observation_shape, action_size, config.candidate_action_dim,
                                       config.n_components, config.encoder_factory, self._device,
                                       enable_ddp=self._enable_ddp)
        optim = config.optim_factory.create(policy.named_modules(), lr=config.learning_rate, compiled=self.compiled)
        self._impl = DensityBCImpl(observation_shape=observation_shape, action_size=action_size,
                                   modules=DiscreteBCModules(optim=optim, imitator=policy),  # type: ignore[arg-type]
                                   compiled=self.compiled, device=self._device, likelihood=config.likelihood)

    def get_action_type(self) -> ActionSpace:
        return ActionSpace.DISCRETE


register_learnable(DensityBCConfig)

