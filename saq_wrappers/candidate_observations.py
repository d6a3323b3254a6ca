"""Observations that carry the candidate actions: ``(s, g(s, 1), ..., g(s, n))``.

A policy over an action set's indices can be parametrized through the actions the indices stand
for at the state (the action-density policy of issue 37: ``pi(k | s) ∝ p(g(s, k) | s)``). With a
state-conditioned quantizer those actions change with every state (SAQ eq. 5's decoder), and
decoding all ``K`` codes for every minibatch row at every update would cost far more than the
update itself. So the candidates are decoded once per state, here, and appended to the
observation: a dataset's observations once before training, an env's observation once per step
(``SAQActionWrapper(..., observe_candidates=True)``). An agent then sees
``(B, obs_dim + n * act_dim)`` rows and splits them with :func:`split_candidate_observations`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from saq_wrappers.action_set import ActionSet, as_observation_batch
from saq_wrappers.errors import DataError, SpaceMismatchError
from saq_wrappers.transitions import Transitions

__all__ = ["candidate_observation_space", "candidate_observations", "split_candidate_observations",
           "with_candidate_observations"]

#: Observations decoded together when a dataset is extended: bounds the ``(rows, n, act_dim)``
#: candidates in memory to a few MB for ``n = 64``.
CHUNK_ROWS = 4096


def _flat_dim(action_set: ActionSet) -> int:
    shape = action_set.observation_space.shape
    if len(shape) != 1:
        raise SpaceMismatchError(f"candidate observations need flat (1-D) observations, got shape {shape}")
    return int(shape[0])


def candidate_observation_space(action_set: ActionSet) -> gym.spaces.Box:
    """The ``Box`` of :func:`candidate_observations`: the observation's bounds, then the action
    bounds once per candidate."""
    _flat_dim(action_set)
    obs, act = action_set.observation_space, action_set.action_space
    low = np.concatenate([obs.low.astype(np.float32), np.tile(act.low.astype(np.float32), action_set.n)])
    high = np.concatenate([obs.high.astype(np.float32), np.tile(act.high.astype(np.float32), action_set.n)])
    return gym.spaces.Box(low, high, dtype=np.float32)


def candidate_observations(action_set: ActionSet, obs: np.ndarray) -> np.ndarray:
    """``(B, obs_dim) -> (B, obs_dim + n * act_dim)`` float32: each observation followed by the
    ``n`` candidate actions at it, candidate by candidate.

    Raises:
        SpaceMismatchError: observations that are not flat or do not fit the action set's space.
        DataError: an action set with invalid candidates at some state (an agent would see
            actions it may not take; the action-density policy needs every candidate valid).
    """
    dim = _flat_dim(action_set)
    batch = as_observation_batch(obs, action_set.observation_space, "obs").reshape(-1, dim)
    actions, valid = action_set.candidates(batch)
    if not np.all(valid):
        raise DataError("some candidates are invalid at these observations: candidate observations need "
                        "an action set whose every candidate is valid (a quantizer's codes are)")
    actions = np.asarray(actions, dtype=np.float32)
    return np.concatenate([batch.astype(np.float32), actions.reshape(len(batch), -1)], axis=1)


def split_candidate_observations(x: np.ndarray, n: int, act_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`candidate_observations`: ``(B, obs_dim)`` observations and
    ``(B, n, act_dim)`` candidates (views)."""
    x = np.asarray(x)
    width = n * act_dim
    if x.ndim != 2 or x.shape[1] <= width:
        raise DataError(f"expected (B, obs_dim + {n} * {act_dim}) candidate observations, got shape {x.shape}")
    return x[:, :-width], x[:, -width:].reshape(len(x), n, act_dim)


def with_candidate_observations(transitions: Transitions, action_set: ActionSet) -> Transitions:
    """``transitions`` whose observations and next observations are candidate observations.

    Each distinct row is decoded once: a next observation equal to the following row's
    observation (every step inside an episode) reuses that row's candidates.
    """
    obs = candidate_observations_in_chunks(action_set, transitions.observations)
    nxt = transitions.next_observations
    follows = np.zeros(len(nxt), dtype=bool)
    follows[:-1] = np.all(nxt[:-1] == transitions.observations[1:], axis=1)
    next_obs = np.empty_like(obs)
    next_obs[follows] = obs[1:][follows[:-1]]
    if not follows.all():
        next_obs[~follows] = candidate_observations_in_chunks(action_set, nxt[~follows])
    return Transitions(observations=obs, actions=transitions.actions, rewards=transitions.rewards,
                       next_observations=next_obs, terminals=transitions.terminals, timeouts=transitions.timeouts)


def candidate_observations_in_chunks(action_set: ActionSet, obs: np.ndarray) -> np.ndarray:
    """:func:`candidate_observations` of many rows, :data:`CHUNK_ROWS` at a time."""
    parts = [candidate_observations(action_set, obs[i:i + CHUNK_ROWS]) for i in range(0, len(obs), CHUNK_ROWS)]
    return np.concatenate(parts) if parts else np.zeros((0, _flat_dim(action_set)), np.float32)
