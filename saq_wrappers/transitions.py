"""The neutral dataset container every loader produces and every relabeler takes.

A :class:`Transitions` holds flat arrays, one row per transition, and is exact about episode ends:
``terminals`` (the MDP ended: no bootstrap) and ``timeouts`` (the episode was cut: bootstrap from
the real ``next_observations``) are kept apart, and the next observation of an episode's last step
is the real final observation, never the first observation of the next episode.

Next to it live what every format reader shares to build one (:func:`check_numeric`,
:func:`as_bool_flags`, :func:`flatten_rows`, :func:`derive_next_observations`), so every reader
refuses the same values with the same message, and what every relabeled-copy writer
shares to add codes (:func:`encode_in_batches`, :func:`quantizer_identity`), so the Minari,
robomimic and D4RL integrations treat episode ends and codes the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

from saq_wrappers.action_set import ActionSet, check_finite
from saq_wrappers.errors import DataError
from saq_wrappers.io import file_sha256
from saq_wrappers.metrics import code_usage_stats, reconstruction_stats


@dataclasses.dataclass(frozen=True)
class Transitions:
    """Flat offline-RL transitions with exact episode boundaries.

    Arrays are copied on construction (inputs are never modified) and validated: numbers (not
    strings or records), equal lengths, at least one transition with at least one observation
    value and one action dimension, finite values, boolean ``terminals``/``timeouts`` (bools or
    0/1 values, see :func:`as_bool_flags`). The dataset's last
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
        obs, actions, rewards, next_obs = (
            _float32_copy(getattr(self, name), name)
            for name in ("observations", "actions", "rewards", "next_observations")
        )
        n = len(obs)
        if n == 0:
            raise DataError("the dataset is empty: expected at least one transition")
        if obs[0].size == 0:
            raise DataError(f"observations has shape {obs.shape}, expected at least one value per row")
        if actions.ndim == 1:
            actions = actions[:, None]
        if actions.ndim != 2 or actions.shape[1] == 0:
            raise DataError(f"actions has shape {actions.shape}, expected (N, act_dim) with act_dim >= 1")
        rewards = rewards.reshape(-1)
        terminals = as_bool_flags(self.terminals, "terminals")
        timeouts = as_bool_flags(self.timeouts, "timeouts")
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
        ``terminations`` (one flag per step, ``T``) or a single ``terminated`` flag. Flags are
        bools or 0/1 numbers, as in every reader (:func:`as_bool_flags`): a 0.5 or a 2 is refused,
        never read as ``True``. An episode that is not terminated is treated as cut (its last
        step is a timeout).
        """
        if len(episodes) == 0:
            raise DataError("no episodes given: expected at least one")
        parts: dict[str, list[np.ndarray]] = {k: [] for k in _FIELDS}
        for number, episode in enumerate(episodes):
            where = f"episode {number}"
            obs, actions, rewards = (
                np.asarray(episode[key]) for key in ("observations", "actions", "rewards")
            )
            for key, array in (("observations", obs), ("actions", actions), ("rewards", rewards)):
                check_numeric(array.dtype, f"{where}: {key}")
            steps = len(actions)
            if steps == 0:
                raise DataError(f"{where} has no steps: expected at least one action")
            if len(obs) != steps + 1:
                raise DataError(
                    f"{where} has {len(obs)} observations and {steps} actions: "
                    "expected T + 1 observations for T actions"
                )
            key = "terminations" if "terminations" in episode else "terminated"
            raw = episode.get(key, False)
            flags = as_bool_flags(raw, f"{where}: {key}")
            terminated = np.zeros(steps, dtype=bool)
            if np.ndim(raw) == 0:
                terminated[-1] = flags[0]
            elif len(flags) == steps:
                terminated[:] = flags
            else:
                raise DataError(f"{where}: {key} has {len(flags)} values, expected {steps} (one per step)")
            timeouts = np.zeros(steps, dtype=bool)
            timeouts[-1] = not terminated[-1]
            parts["observations"].append(obs[:-1])
            parts["next_observations"].append(obs[1:])
            parts["actions"].append(actions.reshape(steps, -1))
            parts["rewards"].append(rewards.reshape(-1))
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

    def content_sha256(self) -> str:
        """SHA-256 over the six arrays (names, dtypes, shapes and bytes): results made from
        the same name and recipe but different episodes never share it, so a run record can
        say which data it was trained on."""
        digest = hashlib.sha256()
        for name in _FIELDS:
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()


_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


# ------------------------------------------------------------------ loader helpers
def check_numeric(dtype: np.dtype[Any] | type, name: str) -> None:
    """Refuse values that are not numbers (booleans, integers or floats), naming ``name``.

    Strings would otherwise be parsed silently (``b"1.5"`` casts to ``1.5``) or fail deep inside
    numpy, and compound, complex or object (e.g. hdf5 reference) values have no single number.
    Every reader calls this on what a file holds before converting it, and :class:`Transitions`
    on what it is given.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise DataError(f"{name} holds {dtype} values, expected numbers (booleans, integers or floats)")


def _float32_copy(values: Any, name: str) -> np.ndarray:
    """``values`` as a new float32 array once :func:`check_numeric` accepts them."""
    array = np.asarray(values)
    check_numeric(array.dtype, name)
    return np.array(array, dtype=np.float32, copy=True)


def as_bool_flags(values: Any, name: str, file: str | None = None) -> np.ndarray:
    """``values`` as a new 1-D bool array; 0/1 numbers are accepted, anything else is a DataError.

    The one rule for episode flags (terminals, timeouts, dones, terminations) in every reader and
    in :meth:`Transitions.from_episodes`. Flags arrive as bools or as 0/1 integers or floats
    depending on the writer; a 2, a 0.5 or a NaN means the data is not what it claims, so it is
    refused rather than cast. ``name`` (and ``file``, when the flags come from one) locate the
    offending key in the message, which shows the first bad value.
    """
    where = f"{file}: {name!r}" if file is not None else name
    array = np.array(values, copy=True).reshape(-1)
    check_numeric(array.dtype, where)
    if array.dtype == bool:
        return array
    bad = ~np.isin(array, (0, 1))
    if bad.any():
        value = array[bad][0].item()
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise DataError(f"{where} must hold booleans (or 0/1 values), found {shown}")
    return array.astype(bool)


def flatten_rows(array: np.ndarray, name: str = "array") -> np.ndarray:
    """``(T, ...)`` -> ``(T, prod(...))`` float32 (a ``(T,)`` array becomes ``(T, 1)``).

    ``T`` may be 0 (the caller says why that is wrong). Non-numbers, scalars and rows without a
    single value are a DataError naming ``name``.
    """
    array = np.asarray(array)
    check_numeric(array.dtype, name)
    if array.ndim == 0:
        raise DataError(f"{name} is a scalar, expected an array of shape (T, ...)")
    width = math.prod(array.shape[1:])
    if width == 0:
        raise DataError(f"{name} has shape {array.shape}, expected at least one value per row")
    return array.reshape(len(array), width).astype(np.float32, copy=False)


def derive_next_observations(
    observations: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Next observations of flat episodes stored without them, and the rows that can be kept.

    Within an episode the next observation of row ``i`` is row ``i + 1``. The last row of an
    episode has no stored successor (the following row is the next episode's reset):

    * a **terminal** last row is kept; its next observation is set to its own observation, a
      placeholder that learning never reads because terminals do not bootstrap;
    * a **timeout** last row (or a final row that is neither) is dropped, and the row before it
      becomes the episode's (timeout) end, whose next observation (the dropped row's
      observation) is real. This is what D4RL's ``qlearning_dataset`` does, minus its treating
      timeouts as terminals. An episode of one timeout row disappears.

    Returns ``(next_observations, terminals, timeouts, keep)``, all of length ``N``; index them
    with ``keep``. Every kept non-terminal row then has its real next observation, as
    :class:`Transitions` requires.
    """
    terminals = np.asarray(terminals, dtype=bool).copy()
    timeouts = np.asarray(timeouts, dtype=bool).copy()
    timeouts &= ~terminals
    ends = terminals | timeouts
    ends[-1] = True  # the data stops here: the episode ended or was cut
    next_obs = np.empty_like(observations)
    next_obs[:-1] = observations[1:]
    next_obs[ends] = observations[ends]
    keep = ~(ends & ~terminals)
    for row in np.flatnonzero(~keep):
        if row > 0 and not ends[row - 1]:
            timeouts[row - 1] = True  # same episode: it is now cut one step earlier
    timeouts[~keep] = False
    return next_obs, terminals, timeouts, keep


# ------------------------------------------------------------------ relabeling
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


def encode_in_batches(
    quantizer: Any, observations: np.ndarray, actions: np.ndarray, batch_size: int = 8192
) -> np.ndarray:
    """``quantizer.encode`` over large arrays in batches; checks the codes it returns.

    The codes-only counterpart of :func:`relabel`, for writers that store codes next to the
    source data (a relabeled Minari or robomimic copy) and need no reconstruction statistics.
    A code outside ``[0, n)`` would silently index a wrong action downstream, so it is an error.
    """
    n = len(observations)
    codes = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        part = np.asarray(quantizer.encode(observations[rows], actions[rows])).reshape(-1)
        codes[rows] = part
    k = int(quantizer.n)
    if n and (codes.min() < 0 or codes.max() >= k):
        raise DataError(
            f"the quantizer returned codes outside [0, {k}): expected integers below its n={k}"
        )
    return codes


def quantizer_identity(quantizer: Any, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A JSON-friendly record of which quantizer produced a set of codes.

    Codes mean nothing without the quantizer that made them, so relabeled files carry this.
    Holds the class, ``n`` and the observation/action shapes; ``weights_sha256`` hashes the
    quantizer's torch weights when it has a ``model`` module (so two different fits never share
    an identity); ``file`` and ``file_sha256`` name the checkpoint when ``path`` is given.
    """
    identity: dict[str, Any] = {
        "class": f"{type(quantizer).__module__}.{type(quantizer).__qualname__}",
        "n_codes": int(quantizer.n),
    }
    obs_space = getattr(quantizer, "observation_space", None)
    act_space = getattr(quantizer, "action_space", None)
    if obs_space is not None:
        identity["observation_shape"] = [int(v) for v in obs_space.shape]
    if act_space is not None:
        identity["action_shape"] = [int(v) for v in act_space.shape]
    model = getattr(quantizer, "model", None)
    if model is not None and hasattr(model, "state_dict"):
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        try:
            normalization = getattr(quantizer, "normalization", None)
        except Exception:  # noqa: BLE001 - an unfitted quantizer has no statistics
            normalization = None
        stats = normalization if isinstance(normalization, dict) else None
        for key in sorted(stats or {}):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(stats[key]).tobytes())
        identity["weights_sha256"] = digest.hexdigest()
    if path is not None:
        file = Path(path)
        identity["file"] = str(file)
        identity["file_sha256"] = file_sha256(file)
    return identity
