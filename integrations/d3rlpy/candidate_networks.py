"""Networks of our discrete-code d3rlpy algorithms on candidate observations (issue 37).

A candidate observation is the state followed by the ``K`` actions ``g(s, k)`` its codes decode
to (:mod:`saq_wrappers.candidate_observations`). An algorithm whose policy is the action density
over codes, ``pi(k | s) ∝ p(g(s, k) | s)``
(:class:`~saq_wrappers.integrations.d3rlpy.torch.density_policy.ActionDensityPolicy`), needs the
candidates in its observations; its critics and value function do not, and read the state part
alone (:class:`StatePartEncoderFactory`), so each is the network it would be on plain states.

A config opts in with ``candidate_action_dim = D >= 1`` (the size of a decoded action; the last
``K * D`` entries of every observation are then the candidates) and ``n_components`` (the
density's Gaussians); ``candidate_action_dim = 0`` keeps plain observations and the index
classifier over codes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from d3rlpy.models.encoders import EncoderFactory
from d3rlpy.models.torch.encoders import compute_output_size
from d3rlpy.types import Shape

from saq_wrappers.errors import SpaceMismatchError
from saq_wrappers.integrations.d3rlpy.torch.density_policy import ActionDensityPolicy, StatePartEncoder
from saq_wrappers.validation import check_int

__all__ = ["StatePartEncoderFactory", "check_candidate_fields", "create_density_policy", "n_candidate_values",
           "observes_candidates", "refuse_ddp", "state_part_factory"]


def check_candidate_fields(config: Any, minimum_action_dim: int = 0) -> None:
    """Check ``candidate_action_dim`` (an integer >= ``minimum_action_dim``) and ``n_components``
    (an integer >= 1) of a config.

    Raises:
        DataError: naming the field, what was expected and the value given.
    """
    check_int("candidate_action_dim", config.candidate_action_dim, minimum_action_dim, 10_000)
    check_int("n_components", config.n_components, 1, 1_000)


def observes_candidates(algo: Any) -> bool:
    """Whether ``algo`` reads candidate observations (acts through
    ``SAQActionWrapper(..., observe_candidates=True)``)."""
    return int(getattr(getattr(algo, "config", None), "candidate_action_dim", 0) or 0) > 0


def n_candidate_values(algo_name: str, observation_shape: Shape, action_size: int, candidate_action_dim: int) -> int:
    """``K * D``, the candidate entries at the end of each observation (0 for plain observations).

    Raises:
        SpaceMismatchError: observations that cannot hold a state and ``K * D`` candidate values.
    """
    width = action_size * candidate_action_dim
    if width and (len(observation_shape) != 1 or int(observation_shape[0]) <= width):  # type: ignore[arg-type]
        raise SpaceMismatchError(
            f"{algo_name} reads candidate observations (the state, then {action_size} codes x "
            f"{candidate_action_dim} action values); got observations of shape {observation_shape}")
    return width


@dataclasses.dataclass()
class StatePartEncoderFactory(EncoderFactory):
    """``inner``'s encoder built for, and applied to, the state part of candidate observations
    (all but the last ``n_candidate_values`` entries). Made by the algorithms when they build their
    networks, never stored in a config: a saved model is rebuilt the same way from its config."""

    inner: EncoderFactory
    n_candidate_values: int

    def create(self, observation_shape: Shape) -> StatePartEncoder:
        state_shape = (int(observation_shape[0]) - self.n_candidate_values,)  # type: ignore[arg-type]
        return StatePartEncoder(self.inner.create(state_shape), self.n_candidate_values)

    @staticmethod
    def get_type() -> str:
        return "saq_state_part"


def state_part_factory(factory: EncoderFactory, n_values: int) -> EncoderFactory:
    """``factory`` itself for plain observations (``n_values == 0``), else its encoder on the
    state part of candidate observations."""
    return factory if n_values == 0 else StatePartEncoderFactory(inner=factory, n_candidate_values=n_values)


def refuse_ddp(enable_ddp: bool) -> None:
    """Raise ``ValueError`` for DDP training of an action-density policy: the policy is read
    through its own methods (``code_logits``), which a ``DistributedDataParallel`` wrapper does not
    pass on, so it is refused rather than trained unsynchronised."""
    if enable_ddp:
        raise ValueError("the action-density policy (candidate_action_dim > 0) does not support "
                         "enable_ddp=True; use the index policy (candidate_action_dim=0) for DDP training")


def create_density_policy(observation_shape: Shape, action_size: int, candidate_action_dim: int, n_components: int,
                          encoder_factory: EncoderFactory, device: Any, enable_ddp: bool = False) -> ActionDensityPolicy:
    """The action-density policy over ``action_size`` codes of candidate observations of
    ``observation_shape``, its torso built by ``encoder_factory`` on the state part.

    Raises:
        ValueError: ``enable_ddp`` (:func:`refuse_ddp`).
    """
    refuse_ddp(enable_ddp)
    width = action_size * candidate_action_dim
    state_shape = (int(observation_shape[0]) - width,)  # type: ignore[arg-type]
    encoder = encoder_factory.create(state_shape)
    policy = ActionDensityPolicy(encoder, compute_output_size([state_shape], encoder), action_size,
                                 candidate_action_dim, n_components)
    return policy.to(device)
