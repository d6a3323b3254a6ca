"""Q of N candidate actions per state (ARQ eq. 5's bootstrap, its AWR baseline and eq. 6), at
the cost of the actions alone.

ARQ reads its critics at ``B x N`` (state, candidate) pairs per update, 30 candidates per state
in the paper: with ``B = 256`` that is 7,680 rows through each critic, several times the rows the
rest of the update trains on, so these forward passes are most of ARQ's time. d3rlpy's critic
concatenates ``(s, a)`` and multiplies by its first layer, so the state's share of that layer,
``W_s s``, would be recomputed N times for the same state. :func:`min_q_of_candidates` computes
it once per state and adds ``W_a a`` per candidate -- the same sum, in another order, so equal
to floating-point rounding -- and runs the remaining layers with in-place activations (no
gradient is ever needed here). The saving is the state's share of the first layer: large for
high-dimensional states (60 of 69 inputs on D4RL kitchen), small for locomotion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from d3rlpy.models.torch import ContinuousEnsembleQFunctionForwarder, ContinuousMeanQFunction, VectorEncoderWithAction
from d3rlpy.torch_utility import expand_and_repeat_recursively, flatten_left_recursively, get_batch_size
from d3rlpy.types import TorchObservation
from torch import nn

from saq_wrappers.integrations.d3rlpy.torch.utility import elementwise_min

__all__ = ["min_q_of_candidates"]


def _plain_mlp_critic(q_func: nn.Module) -> bool:
    """A mean-Q critic on d3rlpy's vector encoder whose layers are only ``Linear`` and ``ReLU``
    (no normalization or dropout, continuous actions): the form the split evaluation covers."""
    if type(q_func) is not ContinuousMeanQFunction:
        return False
    encoder = q_func.encoder
    if type(encoder) is not VectorEncoderWithAction or encoder._discrete_action:  # noqa: SLF001
        return False
    layers = list(encoder._layers)  # noqa: SLF001
    return (bool(layers) and type(layers[0]) is nn.Linear
            and all(type(layer) in (nn.Linear, nn.ReLU) for layer in layers))


def _split_q(q_func: ContinuousMeanQFunction, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``Q(s_b, a_bn)`` (B, N) of one critic, the first layer split into its state and action parts."""
    layers = list(q_func.encoder._layers)  # noqa: SLF001
    first = layers[0]
    n_obs = observations.shape[1]
    hidden = F.linear(observations, first.weight[:, :n_obs], first.bias).unsqueeze(1)
    hidden = hidden + F.linear(actions, first.weight[:, n_obs:])
    for layer in layers[1:]:
        hidden = F.linear(hidden, layer.weight, layer.bias) if isinstance(layer, nn.Linear) else hidden.relu_()
    return F.linear(hidden, q_func._fc.weight, q_func._fc.bias).squeeze(-1)  # noqa: SLF001


@torch.no_grad()
def min_q_of_candidates(
    q_funcs: nn.ModuleList,
    forwarder: ContinuousEnsembleQFunctionForwarder,
    observations: TorchObservation,
    actions: torch.Tensor,
) -> torch.Tensor:
    """Minimum over the critics ``q_funcs`` of ``Q(s_b, a_bn)``: ``(B, N)`` for observations
    ``(B, ...)`` (or a tuple of parts) and candidate actions ``(B, N, d)``, without gradient.

    Plain-MLP critics on vector observations take the split evaluation of the module
    docstring; any other critic (tuple observations, normalized or dropout layers) goes through
    ``forwarder`` on the ``B x N`` repeated states.
    """
    batch, n_candidates, action_size = actions.shape
    if get_batch_size(observations) != batch:
        raise ValueError(f"{get_batch_size(observations)} observations for {batch} candidate sets")
    if isinstance(observations, torch.Tensor) and observations.dim() == 2 and all(map(_plain_mlp_critic, q_funcs)):
        return elementwise_min([_split_q(q_func, observations, actions) for q_func in q_funcs])
    repeated = flatten_left_recursively(expand_and_repeat_recursively(observations, n_candidates), dim=1)
    flat_actions = actions.reshape(batch * n_candidates, action_size)
    return forwarder.compute_expected_q(repeated, flat_actions, "min").reshape(batch, n_candidates)
