"""Conversions between :class:`~saq_wrappers.Transitions` and d3rlpy datasets.

d3rlpy stores an episode as ``T`` observations and takes the next observation of step ``t`` from
row ``t + 1``; the last step of an episode that was *not* terminal therefore has no next
observation and d3rlpy drops it. To keep every transition and its exact next observation, an
episode that ends in a timeout is written with one extra row holding the real final observation
(its action repeats the last one and its reward is 0; d3rlpy never samples that row as a
transition, because a non-terminal episode of ``T + 1`` rows has ``T`` transitions). A terminal
episode is written as is: d3rlpy never bootstraps from a terminal step and gives it a zero next
observation.

d3rlpy infers a discrete action count as ``max(action) + 1``; :func:`to_discrete_dataset` always
passes ``action_size=K`` so unused trailing codes keep their place.
"""

from __future__ import annotations

from typing import Union

import d3rlpy
import numpy as np
from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import MDPDataset, ReplayBufferBase

from saq_wrappers.errors import DataError
from saq_wrappers.transitions import ActionEncoder, Relabeled, Transitions, relabel

CodeSource = Union[ActionEncoder, Relabeled, np.ndarray]


def to_discrete_dataset(
    transitions: Transitions,
    codes: CodeSource,
    n_codes: int | None = None,
    progress: bool = True,
) -> MDPDataset:
    """A d3rlpy ``MDPDataset`` whose actions are SAQ codes.

    Args:
        transitions: the continuous dataset.
        codes: a fitted quantizer (its ``encode`` relabels the data), a :class:`Relabeled`, or an
            ``(N,)`` integer array of codes.
        n_codes: the size ``K`` of the discrete space; taken from the quantizer or
            :class:`Relabeled` when omitted. Required with a plain array.
        progress: show a progress bar while encoding.

    Returns:
        ``MDPDataset`` with ``ActionSpace.DISCRETE`` and ``action_size = K`` (also when some
        codes are unused), terminals and timeouts kept apart, every transition's next
        observation exact.
    """
    if isinstance(codes, Relabeled):
        labels, size = codes.codes, codes.n_codes
    elif isinstance(codes, np.ndarray):
        labels, size = codes, n_codes
    else:
        result = relabel(transitions, codes, progress=progress)
        labels, size = result.codes, result.n_codes
    if n_codes is not None and size is not None and n_codes != size:
        raise DataError(f"n_codes={n_codes} differs from the quantizer's K={size}")
    if size is None:
        raise DataError("n_codes is required when codes is a plain array")
    if size < 2:
        raise DataError(f"the number of codes K must be >= 2, got {size}")
    labels = np.asarray(labels)
    if labels.shape != (len(transitions),):
        raise DataError(
            f"codes has shape {labels.shape}, expected ({len(transitions)},): one per transition"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"codes must be integers, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= size:
        raise DataError(
            f"codes must lie in [0, {size}), got range [{labels.min()}, {labels.max()}]"
        )
    actions = labels.astype(np.int64)[:, None]
    return _build(transitions, actions, ActionSpace.DISCRETE, int(size))


def to_continuous_dataset(transitions: Transitions) -> MDPDataset:
    """A continuous-action d3rlpy ``MDPDataset`` of the same transitions (for the baselines)."""
    return _build(
        transitions, transitions.actions, ActionSpace.CONTINUOUS, transitions.action_dim
    )


def _build(
    transitions: Transitions, actions: np.ndarray, action_space: ActionSpace, action_size: int
) -> MDPDataset:
    ends = np.flatnonzero(transitions.episode_ends)
    cut = ends[~transitions.terminals[ends]]  # episodes that end in a timeout gain a row
    # Row r of the output is transition r shifted by the number of extra rows inserted before it.
    shift = np.searchsorted(cut, np.arange(len(transitions)), side="left")
    total = len(transitions) + len(cut)
    rows = np.arange(len(transitions)) + shift
    extra_rows = cut + np.arange(1, len(cut) + 1)

    observations = np.empty((total, *transitions.observation_shape), dtype=np.float32)
    observations[rows] = transitions.observations
    observations[extra_rows] = transitions.next_observations[cut]
    out_actions = np.empty((total, actions.shape[1]), dtype=actions.dtype)
    out_actions[rows] = actions
    out_actions[extra_rows] = actions[cut]
    rewards = np.zeros((total, 1), dtype=np.float32)
    rewards[rows, 0] = transitions.rewards
    terminals = np.zeros(total, dtype=np.float32)
    terminals[rows] = transitions.terminals
    timeouts = np.zeros(total, dtype=np.float32)
    timeouts[extra_rows] = 1.0
    return MDPDataset(
        observations=observations,
        actions=out_actions,
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        action_space=action_space,
        action_size=action_size,
    )


def from_d3rlpy(dataset: ReplayBufferBase) -> Transitions:
    """Read a d3rlpy ``MDPDataset`` / ``ReplayBuffer`` back into :class:`Transitions`.

    A non-terminal episode of ``T`` rows gives ``T - 1`` transitions whose last next observation
    is the episode's final row (the layout :func:`to_discrete_dataset` writes). A terminal episode
    gives ``T`` transitions; d3rlpy does not store the observation after a terminal step, so that
    next observation is zeros, as d3rlpy itself uses. Discrete actions come back as a column of
    integer indices (float32).
    """
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    }
    for number, episode in enumerate(dataset.episodes):
        obs = np.asarray(episode.observations, dtype=np.float32)
        if not isinstance(episode.observations, np.ndarray):
            raise DataError("tuple observations are not supported: expected one array per episode")
        acts = np.asarray(episode.actions, dtype=np.float32).reshape(len(obs), -1)
        rews = np.asarray(episode.rewards, dtype=np.float32).reshape(-1)
        count = episode.transition_count
        if count == 0:
            continue
        if episode.terminated:
            next_obs = np.concatenate([obs[1:], np.zeros_like(obs[:1])])
        else:
            next_obs = obs[1:]
        terminal = np.zeros(count, dtype=bool)
        timeout = np.zeros(count, dtype=bool)
        if episode.terminated:
            terminal[-1] = True
        else:
            timeout[-1] = True
        parts["observations"].append(obs[:count])
        parts["actions"].append(acts[:count])
        parts["rewards"].append(rews[:count])
        parts["next_observations"].append(next_obs[:count])
        parts["terminals"].append(terminal)
        parts["timeouts"].append(timeout)
    if not parts["observations"]:
        raise DataError("the d3rlpy dataset holds no transitions: expected at least one")
    return Transitions(**{k: np.concatenate(v) for k, v in parts.items()})


def is_discrete(dataset: ReplayBufferBase) -> bool:
    """True if ``dataset`` holds discrete actions."""
    return bool(dataset.dataset_info.action_space == d3rlpy.ActionSpace.DISCRETE)
