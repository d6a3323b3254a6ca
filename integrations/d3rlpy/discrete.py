"""Algorithm-side machinery shared by our discrete-code d3rlpy algorithms (DiscreteIQL, DiscreteBRAC).

A clear action-space check that runs before anything is built, twin discrete critics with their
target copies, the policies over codes (the index classifier, or the action density on candidate
observations where the config asks for it: :mod:`.candidate_networks`), and the policy
probabilities as numpy. The torch helpers of the exact sums over the
K codes are in :mod:`saq_wrappers.integrations.d3rlpy.torch.utility`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoBase
from d3rlpy.constants import IMPL_NOT_INITIALIZED_ERROR, ActionSpace
from d3rlpy.dataset import DatasetInfo, ReplayBufferBase
from d3rlpy.models.builders import create_categorical_policy, create_discrete_q_function
from d3rlpy.models.encoders import EncoderFactory
from d3rlpy.models.q_functions import MeanQFunctionFactory
from d3rlpy.models.torch import CategoricalPolicy, DiscreteEnsembleQFunctionForwarder
from d3rlpy.optimizers.optimizers import OptimizerFactory, OptimizerWrapper
from d3rlpy.torch_utility import convert_to_torch_recursively
from d3rlpy.types import GymEnv, Observation, Shape
from torch import nn

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy.candidate_networks import (
    create_density_policy,
    n_candidate_values,
    refuse_ddp,
    state_part_factory,
)
from saq_wrappers.integrations.d3rlpy.torch.density_policy import ActionDensityPolicy


class DiscreteActionSpaceError(DataError, AssertionError):
    """A continuous-action dataset or env was given to a discrete-code algorithm.

    It is an ``AssertionError`` like d3rlpy's own action-space check (so code that catches
    d3rlpy's errors keeps working) and a ``ValueError`` like every saq-wrappers data error.
    """


def _mismatch_message(algo_name: str, what: str, action_space: Any, action_size: Any) -> str:
    return (
        f"{algo_name} is a discrete-action algorithm: it needs a dataset whose actions are "
        f"integer SAQ codes 0..K-1 (d3rlpy ActionSpace.DISCRETE, action_size=K), but the given "
        f"{what} has action space {action_space} with action_size={action_size}. Quantize the "
        "continuous actions first (e.g. saq_wrappers.integrations.d3rlpy.to_discrete_dataset("
        "transitions, quantizer)), or train a continuous algorithm such as "
        "d3rlpy.algos.IQLConfig / d3rlpy.algos.CQLConfig on this data."
    )


def check_discrete_dataset(algo_name: str, dataset_info: DatasetInfo) -> None:
    """Raise :class:`DiscreteActionSpaceError` unless the dataset holds discrete actions.

    d3rlpy's own check (``assert_action_space_with_dataset``) only says "Please use
    continuous action-space algorithms"; this one says what was wrong and how to fix it.
    """
    if dataset_info.action_space != ActionSpace.DISCRETE:
        raise DiscreteActionSpaceError(
            _mismatch_message(algo_name, "dataset", dataset_info.action_space, dataset_info.action_size)
        )


class DiscreteCodeAlgoMixin:
    """Front-loads a clear action-space check into ``fit``/``fitter``/``build_with_*``."""

    def fitter(self, dataset: ReplayBufferBase, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        # A plain function (not a generator) so the check runs when fitter/fit is called.
        check_discrete_dataset(type(self).__name__, dataset.dataset_info)
        return super().fitter(dataset, *args, **kwargs)  # type: ignore[misc]

    def build_with_dataset(self, dataset: ReplayBufferBase) -> None:
        check_discrete_dataset(type(self).__name__, dataset.dataset_info)
        super().build_with_dataset(dataset)  # type: ignore[misc]

    def build_with_env(self, env: GymEnv) -> None:
        import gymnasium

        if not isinstance(env.action_space, gymnasium.spaces.Discrete):
            shape = getattr(env.action_space, "shape", None)
            raise DiscreteActionSpaceError(
                _mismatch_message(type(self).__name__, "env", type(env.action_space).__name__, shape)
                + " For an env, wrap it first: SAQActionWrapper(env, quantizer)."
            )
        super().build_with_env(env)  # type: ignore[misc]

    def get_action_type(self) -> ActionSpace:
        return ActionSpace.DISCRETE

    def candidate_values(self, observation_shape: Shape, action_size: int) -> int:
        """``K * D`` candidate values at the end of each observation where the config's
        ``candidate_action_dim`` is ``D >= 1`` (the policies are then action densities), else 0.

        Raises:
            ValueError: DDP training with the density policies (:func:`refuse_ddp`); every
                network's construction asks this first, so nothing is built before the refusal.
        """
        dim = int(getattr(self._config, "candidate_action_dim", 0))  # type: ignore[attr-defined]
        values = n_candidate_values(type(self).__name__, observation_shape, action_size, dim)
        if values:
            refuse_ddp(self._enable_ddp)  # type: ignore[attr-defined]
        return values

    def state_encoder_factory(
        self, observation_shape: Shape, action_size: int, encoder_factory: EncoderFactory
    ) -> EncoderFactory:
        """``encoder_factory``, reading the state part alone of candidate observations (critics and
        value functions never read the candidates)."""
        return state_part_factory(encoder_factory, self.candidate_values(observation_shape, action_size))

    def create_twin_critics(
        self, observation_shape: Shape, action_size: int, encoder_factory: EncoderFactory, n_critics: int
    ) -> tuple[nn.ModuleList, DiscreteEnsembleQFunctionForwarder, nn.ModuleList]:
        """``n_critics`` discrete critics ``Q(s) -> K`` values, their forwarder, and target copies."""
        encoder_factory = self.state_encoder_factory(observation_shape, action_size, encoder_factory)
        created = [
            create_discrete_q_function(
                observation_shape,
                action_size,
                encoder_factory,
                MeanQFunctionFactory(),
                n_ensembles=n_critics,
                device=self._device,  # type: ignore[attr-defined]
                enable_ddp=self._enable_ddp,  # type: ignore[attr-defined]
            )
            for _ in range(2)
        ]
        (q_funcs, forwarder), (targ_q_funcs, _) = created
        return q_funcs, forwarder, targ_q_funcs

    def create_code_policy_with_optim(
        self,
        observation_shape: Shape,
        action_size: int,
        encoder_factory: EncoderFactory,
        optim_factory: OptimizerFactory,
        learning_rate: float,
    ) -> tuple[CategoricalPolicy | ActionDensityPolicy, OptimizerWrapper]:
        """A categorical policy over the K codes (``pi_beta`` or an actor) and its optimizer: one
        logit per code index (d3rlpy's ``CategoricalPolicy``), or with ``candidate_action_dim``
        the action density evaluated at the codes' decoded actions (issue 37)."""
        policy: CategoricalPolicy | ActionDensityPolicy
        if self.candidate_values(observation_shape, action_size):
            config = self._config  # type: ignore[attr-defined]
            policy = create_density_policy(observation_shape, action_size, config.candidate_action_dim,
                                           config.n_components, encoder_factory, self._device,  # type: ignore[attr-defined]
                                           enable_ddp=self._enable_ddp)  # type: ignore[attr-defined]
        else:
            policy = create_categorical_policy(
                observation_shape,
                action_size,
                encoder_factory,
                device=self._device,  # type: ignore[attr-defined]
                enable_ddp=self._enable_ddp,  # type: ignore[attr-defined]
            )
        optim = optim_factory.create(
            policy.named_modules(), lr=learning_rate, compiled=self.compiled  # type: ignore[attr-defined]
        )
        return policy, optim


def policy_probabilities(algo: QLearningAlgoBase[Any, Any], x: Observation) -> np.ndarray:
    """(B, K) action probabilities of a discrete algorithm whose impl has ``policy_log_probs``."""
    assert algo.impl is not None, IMPL_NOT_INITIALIZED_ERROR
    torch_x = convert_to_torch_recursively(x, algo._device)  # noqa: SLF001 - d3rlpy's own pattern
    with torch.no_grad():
        if algo.config.observation_scaler:
            torch_x = algo.config.observation_scaler.transform(torch_x)
        log_probs = algo.impl.policy_log_probs(torch_x)
    return log_probs.exp().cpu().numpy()
