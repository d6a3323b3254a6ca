"""Helpers shared by the dataset readers and writers (Minari, robomimic, D4RL-style hdf5).

Nothing here imports a third-party dataset library; the format modules do that themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from saq_wrappers.errors import DataError


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
    with ``keep``. Every kept non-terminal row then has its real next observation.
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


def as_bool_flags(values: np.ndarray, file: str, key: str) -> np.ndarray:
    """``values`` as a 1-D bool array; 0/1 numbers are accepted, anything else is a DataError."""
    array = np.asarray(values).reshape(-1)
    if array.dtype == bool:
        return array.copy()
    if array.size and not np.isin(array, (0, 1)).all():
        raise DataError(f"{file}: {key!r} must hold booleans or 0/1 values, found other values")
    return array.astype(bool)


def flatten_rows(array: np.ndarray) -> np.ndarray:
    """``(T, ...)`` -> ``(T, prod(...))`` float32 (a ``(T,)`` array becomes ``(T, 1)``)."""
    array = np.asarray(array)
    return array.reshape(len(array), -1).astype(np.float32, copy=False)


def quantizer_identity(quantizer: Any, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A JSON-friendly record of which quantizer produced a set of codes.

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
        identity["file_sha256"] = hashlib.sha256(file.read_bytes()).hexdigest()
    return identity


def to_json(data: Any) -> str:
    """Compact, key-sorted JSON (stable across runs)."""
    return json.dumps(data, sort_keys=True)


def encode_in_batches(
    quantizer: Any, observations: np.ndarray, actions: np.ndarray, batch_size: int = 8192
) -> np.ndarray:
    """``quantizer.encode`` over large arrays in batches; checks the codes it returns."""
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
