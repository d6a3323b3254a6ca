"""The one abstraction of the library: a state-conditioned finite set of candidate actions.

SAQ's quantizer (``n = K`` codes, every code valid) and ARQ's support sampler (``n = N`` samples,
valid where the behavior model's likelihood is above ``eps``) are both an :class:`ActionSet`. The
wrapper, relabeling, evaluation and benchmarks are written once against this protocol.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from saq_wrappers.errors import DataError, SpaceMismatchError
from saq_wrappers.validation import check_int


@runtime_checkable
class ActionSet(Protocol):
    """A finite, state-conditioned set of ``n`` candidate continuous actions.

    Attributes:
        observation_space: the ``Box`` of observations the set is conditioned on.
        action_space: the continuous ``Box`` the candidates live in.
        n: the size of the discrete space (``Discrete(n)`` after wrapping).
    """

    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box

    @property
    def n(self) -> int: ...

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, *obs_shape)`` -> actions ``(B, n, act_dim)`` float32, valid mask ``(B, n)`` bool."""
        ...

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``(B, *obs_shape)``, ``(B,)`` int -> ``(B, act_dim)`` float32 continuous actions."""
        ...


def require_box(space: gym.Space[Any], role: str) -> gym.spaces.Box:
    """Return ``space`` if it is a bounded-or-not ``Box``; raise a clear error otherwise."""
    if not isinstance(space, gym.spaces.Box):
        raise SpaceMismatchError(
            f"{role} must be a gymnasium.spaces.Box, got {type(space).__name__} ({space})"
        )
    return space


def box_to_dict(space: gym.spaces.Box) -> dict[str, Any]:
    """Serialise a ``Box`` to JSON-friendly data (infinite bounds as strings)."""
    return {
        "shape": list(space.shape),
        "dtype": str(space.dtype),
        "low": [repr(float(v)) for v in np.asarray(space.low, dtype=np.float64).ravel()],
        "high": [repr(float(v)) for v in np.asarray(space.high, dtype=np.float64).ravel()],
    }


def box_from_dict(data: dict[str, Any], role: str = "space") -> gym.spaces.Box:
    """Inverse of :func:`box_to_dict`, checking what it reads (the data come from a checkpoint
    header, which may be forged): shape entries are integers >= 1 (never truncated), the dtype is
    a float or integer one, no bound is NaN.

    Raises:
        DataError: naming ``role`` (e.g. ``"action_space"``) and the value that is wrong; a
            ``KeyError``, ``TypeError`` or ``ValueError`` for data of another layout.
    """
    shape = tuple(check_int(f"{role} shape entry", v, 1) for v in data["shape"])
    dtype = np.dtype(data["dtype"])
    if dtype.kind not in "fiu":
        raise DataError(f"{role} dtype must be a float or integer dtype, got {data['dtype']!r}")
    bounds = []
    for key in ("low", "high"):
        values = np.array([float(v) for v in data[key]], dtype=np.float64)
        if np.isnan(values).any():
            raise DataError(f"{role}'s {key} bounds hold NaN: expected numbers or +-inf")
        # bounds are stored as float64 text of values of ``dtype``: casting back is exact
        bounds.append(values.reshape(shape).astype(dtype))
    return gym.spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype)


def check_spaces_match(
    action_set: ActionSet,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    where: str = "env",
) -> None:
    """Raise :class:`SpaceMismatchError` unless ``where``'s spaces fit ``action_set``.

    Observation shapes must be equal; the action space must be a ``Box`` of the same shape. Bounds
    may differ (decoded actions are clipped to the action set's own bounds).
    """
    require_box(action_space, f"the {where}'s action space")
    obs_space = require_box(observation_space, f"the {where}'s observation space")
    if obs_space.shape != action_set.observation_space.shape:
        raise SpaceMismatchError(
            f"the {where}'s observation shape {obs_space.shape} differs from the shape "
            f"{action_set.observation_space.shape} the action set was fitted on"
        )
    if action_space.shape != action_set.action_space.shape:
        raise SpaceMismatchError(
            f"the {where}'s action shape {action_space.shape} differs from the shape "
            f"{action_set.action_space.shape} the action set decodes into"
        )


def as_observation_batch(obs: np.ndarray, space: gym.spaces.Box, name: str = "obs") -> np.ndarray:
    """Return ``obs`` as a float32 ``(B, *space.shape)`` array, checking shape and finiteness."""
    array = np.asarray(obs, dtype=np.float32)
    if array.shape[1:] != space.shape:
        raise DataError(
            f"{name} has shape {array.shape}, expected (batch, {', '.join(map(str, space.shape))})"
        )
    check_finite(array, name)
    return array


def check_finite(array: np.ndarray, name: str) -> None:
    """Raise :class:`DataError` naming the first row that holds NaN or inf."""
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise DataError(
            f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)}); "
            "expected finite values"
        )


class FixedActionSet:
    """A state-independent :class:`ActionSet`: the same ``n`` actions at every state.

    The classic uniform-grid discretization is one (see :meth:`grid`); it is also the simplest
    action set to test consumers with.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> env = gym.make("Pendulum-v1")
        >>> grid = FixedActionSet.grid(env.observation_space, env.action_space, bins=5)
        >>> grid.n
        5
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        actions: np.ndarray,
    ) -> None:
        self.observation_space = require_box(observation_space, "observation_space")
        self.action_space = require_box(action_space, "action_space")
        table = np.asarray(actions, dtype=np.float32)
        if table.ndim != 2 or table.shape[1:] != action_space.shape or len(table) < 1:
            raise DataError(
                f"actions has shape {table.shape}, expected (n >= 1, {action_space.shape[0]})"
            )
        check_finite(table, "actions")
        self._actions = np.clip(table, action_space.low, action_space.high).astype(np.float32)

    @classmethod
    def grid(
        cls, observation_space: gym.spaces.Box, action_space: gym.spaces.Box, bins: int
    ) -> "FixedActionSet":
        """Every combination of ``bins`` evenly spaced values per action dimension."""
        if bins < 2:
            raise DataError(f"bins must be >= 2, got {bins}")
        axes = [np.linspace(lo, hi, bins) for lo, hi in zip(action_space.low, action_space.high)]
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
        return cls(observation_space, action_space, mesh)

    @property
    def n(self) -> int:
        return len(self._actions)

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = as_observation_batch(obs, self.observation_space)
        actions = np.broadcast_to(self._actions, (len(batch), *self._actions.shape)).copy()
        return actions, np.ones((len(batch), self.n), dtype=bool)

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        batch = as_observation_batch(obs, self.observation_space)
        idx = check_indices(index, self.n, len(batch))
        return self._actions[idx].copy()


def check_indices(index: np.ndarray, n: int, batch: int) -> np.ndarray:
    """Return ``index`` as int64 ``(batch,)``, raising if any index is outside ``[0, n)``."""
    idx = np.asarray(index)
    if not np.issubdtype(idx.dtype, np.integer):
        if np.issubdtype(idx.dtype, np.floating) and np.all(np.mod(idx, 1) == 0):
            idx = idx.astype(np.int64)
        else:
            raise DataError(f"indices must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64).reshape(-1)
    if idx.shape != (batch,):
        raise DataError(f"expected {batch} indices (one per observation), got {idx.shape[0]}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DataError(f"indices must lie in [0, {n}), got range [{idx.min()}, {idx.max()}]")
    return idx
