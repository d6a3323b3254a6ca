"""The neutral dataset container every loader produces and every relabeler takes.

A :class:`Transitions` holds flat arrays, one row per transition, and is exact about episode ends:
``terminals`` (the MDP ended: no bootstrap) and ``timeouts`` (the episode was cut: bootstrap from
the real ``next_observations``) are kept apart, and the next observation of an episode's last step
is the real final observation, never the first observation of the next episode.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

from saq_wrappers.action_set import ActionSet, check_finite
from saq_wrappers.errors import DataError
from saq_wrappers.metrics import code_usage_stats, reconstruction_stats


@dataclasses.dataclass(frozen=True)
class Transitions:
    """Flat offline-RL transitions with exact episode boundaries.

    Arrays are copied on construction (inputs are never modified) and validated: equal lengths,
    at least one transition, finite values, boolean ``terminals``/``timeouts``. The dataset's last
    transition always ends an episode: if it is neither terminal nor timeout it is marked as a
    timeout (the data stopped; the episode was cut).

    Attributes:
        observations: ``(N, *obs_shape)`` float32.
        actions: ``(N, act_dim)`` float32 continuous actions.
        rewards: ``(N,)`` float32.
        next_observations: ``(N, *obs_shape)`` float32, the real next observation of every row.
        terminals: ``(N,)`` bool, the episode ended in a terminal state.
        timeouts: ``(N,)`` bool, the episode was truncated after this step.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray

    def __post_init__(self) -> None:
        obs = np.array(self.observations, dtype=np.float32, copy=True)
        n = len(obs)
        if n == 0:
            raise DataError("the dataset is empty: expected at least one transition")
        actions = np.array(self.actions, dtype=np.float32, copy=True)
        if actions.ndim == 1:
            actions = actions[:, None]
        if actions.ndim != 2:
            raise DataError(f"actions has shape {actions.shape}, expected (N, act_dim)")
        rewards = np.array(self.rewards, dtype=np.float32, copy=True).reshape(-1)
        next_obs = np.array(self.next_observations, dtype=np.float32, copy=True)
        terminals = _as_flags(self.terminals, "terminals")
        timeouts = _as_flags(self.timeouts, "timeouts")
        for name, array in (
            ("actions", actions),
            ("rewards", rewards),
            ("next_observations", next_obs),
            ("terminals", terminals),
            ("timeouts", timeouts),
        ):
            if len(array) != n:
                raise DataError(
                    f"{name} has {len(array)} rows but observations has {n}: expected equal lengths"
                )
        if next_obs.shape != obs.shape:
            raise DataError(
                f"next_observations has shape {next_obs.shape}, expected {obs.shape} "
                "(the shape of observations)"
            )
        for name, array in (
            ("observations", obs),
            ("actions", actions),
            ("rewards", rewards),
            ("next_observations", next_obs),
        ):
            check_finite(array, name)
        if not (terminals[-1] or timeouts[-1]):
            timeouts[-1] = True
        for name, array in (
            ("observations", obs),
            ("actions", actions),
            ("rewards", rewards),
            ("next_observations", next_obs),
            ("terminals", terminals),
            ("timeouts", timeouts),
        ):
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_episodes(cls, episodes: Sequence[dict[str, Any]]) -> "Transitions":
        """Build from Minari-style episodes.

        Each episode is a mapping with ``observations`` (``T + 1`` rows: the reset observation and
        every next observation), ``actions`` (``T``), ``rewards`` (``T``), and either
        ``terminated``/``truncated`` flags per step (``T``) or a single boolean ``terminated``.
        An episode that is not terminated is treated as cut (its last step is a timeout).
        """
        if len(episodes) == 0:
            raise DataError("no episodes given: expected at least one")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in _FIELDS}
        for number, episode in enumerate(episodes):
            obs = np.asarray(episode["observations"], dtype=np.float32)
            actions = np.asarray(episode["actions"], dtype=np.float32)
            steps = len(actions)
            if steps == 0:
                raise DataError(f"episode {number} has no steps: expected at least one action")
            if len(obs) != steps + 1:
                raise DataError(
                    f"episode {number} has {len(obs)} observations and {steps} actions: "
                    "expected T + 1 observations for T actions"
                )
            terminated = np.zeros(steps, dtype=bool)
            flag = np.asarray(episode.get("terminations", episode.get("terminated", False)))
            if flag.ndim == 0:
                terminated[-1] = bool(flag)
            else:
                terminated[:] = flag.astype(bool)
            timeouts = np.zeros(steps, dtype=bool)
            timeouts[-1] = not terminated[-1]
            parts["observations"].append(obs[:-1])
            parts["next_observations"].append(obs[1:])
            parts["actions"].append(actions.reshape(steps, -1))
            parts["rewards"].append(np.asarray(episode["rewards"], dtype=np.float32).reshape(-1))
            parts["terminals"].append(terminated)
            parts["timeouts"].append(timeouts)
        return cls(**{k: np.concatenate(v) for k, v in parts.items()})

    # ------------------------------------------------------------------ structure
    def __len__(self) -> int:
        return len(self.observations)

    @property
    def episode_ends(self) -> np.ndarray:
        """``(N,)`` bool: the episode ends after this transition (terminal or timeout)."""
        return self.terminals | self.timeouts

    @property
    def episode_starts(self) -> np.ndarray:
        """``(N,)`` bool: this transition is the first of its episode."""
        starts = np.zeros(len(self), dtype=bool)
        starts[0] = True
        starts[1:] = self.episode_ends[:-1]
        return starts

    @property
    def episode_ids(self) -> np.ndarray:
        """``(N,)`` int64: the index of the episode each transition belongs to."""
        return np.cumsum(self.episode_starts) - 1

    @property
    def n_episodes(self) -> int:
        return int(self.episode_ends.sum())

    def episode_slices(self) -> Iterator[slice]:
        """Yield one ``slice`` per episode, in order."""
        ends = np.flatnonzero(self.episode_ends) + 1
        start = 0
        for end in ends:
            yield slice(start, int(end))
            start = int(end)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode."""
        return np.array([float(self.rewards[s].sum()) for s in self.episode_slices()])

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    def select_episodes(self, episode_indices: Sequence[int]) -> "Transitions":
        """A new :class:`Transitions` holding only the given episodes, in the given order."""
        slices = list(self.episode_slices())
        rows = np.concatenate([np.arange(len(self))[slices[i]] for i in episode_indices])
        return Transitions(**{k: getattr(self, k)[rows] for k in _FIELDS})

    def to_dict(self) -> dict[str, np.ndarray]:
        """The six arrays by name (read-only views)."""
        return {k: getattr(self, k) for k in _FIELDS}


_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


def _as_flags(values: Any, name: str) -> np.ndarray:
    array = np.array(values, copy=True).reshape(-1)
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise DataError(f"{name} must hold booleans (or 0/1), got other values")
        array = array.astype(bool)
    return array


class ActionEncoder(ActionSet, Protocol):
    """An :class:`ActionSet` that can also map a continuous action to its index (SAQ)."""

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class Relabeled:
    """Result of :func:`relabel`: one code per transition plus reconstruction statistics.

    Attributes:
        codes: ``(N,)`` int64 code of every dataset action.
        n_codes: size of the discrete space (``K``), also when some codes are unused.
        stats: ``mse`` (summed over action dims), ``mse_per_dim``, ``max_abs_error``, ``usage``,
            ``perplexity``, ``dead_codes``, ``used_codes``.
    """

    codes: np.ndarray
    n_codes: int
    stats: dict[str, Any]


def relabel(
    transitions: Transitions,
    encoder: ActionEncoder,
    batch_size: int = 8192,
    progress: bool = True,
) -> Relabeled:
    """Encode every action of ``transitions`` to its discrete code, in batches.

    Reconstruction statistics compare each action with ``encoder.decode(obs, code)``, the action
    the agent would execute when it picks that code in the wrapped env.
    """
    if transitions.observation_shape != encoder.observation_space.shape:
        raise DataError(
            f"dataset observations have shape {transitions.observation_shape}, the quantizer "
            f"expects {encoder.observation_space.shape}"
        )
    if (transitions.action_dim,) != encoder.action_space.shape:
        raise DataError(
            f"dataset actions have dimension {transitions.action_dim}, the quantizer expects "
            f"{encoder.action_space.shape}"
        )
    codes = np.empty(len(transitions), dtype=np.int64)
    decoded = np.empty_like(transitions.actions)
    starts = range(0, len(transitions), batch_size)
    for start in tqdm(starts, desc="relabel", unit="batch", disable=not progress):
        rows = slice(start, start + batch_size)
        codes[rows] = encoder.encode(transitions.observations[rows], transitions.actions[rows])
        decoded[rows] = encoder.decode(transitions.observations[rows], codes[rows])
    stats = reconstruction_stats(transitions.actions, decoded)
    stats.update(code_usage_stats(codes, encoder.n))
    codes.setflags(write=False)
    return Relabeled(codes=codes, n_codes=int(encoder.n), stats=stats)
