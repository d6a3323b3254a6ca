"""D4RL-style hdf5 files in and out of :class:`~saq_wrappers.transitions.Transitions`.

The format (the files ``d4rl`` downloads, and many re-exports of them) is one flat table:
``observations (N, obs_dim)``, ``actions (N, act_dim)``, ``rewards (N,)``, ``terminals (N,)``,
``timeouts (N,)`` and optionally ``next_observations (N, obs_dim)``; extra groups such as
``infos/`` and ``metadata/`` are ignored. Episodes end after a terminal or a timeout row.

Without ``next_observations`` the successor of row ``i`` is row ``i + 1`` within its episode; the
last row of an episode has no stored successor, so (see
:func:`~saq_wrappers.transitions.derive_next_observations`): a terminal last row is
kept (its next observation is a placeholder equal to its own observation; terminals never
bootstrap), and a timeout last row is dropped, its predecessor becoming the (timeout) end with a
real next observation. Timeouts are never turned into terminals.

Example:
    >>> from saq_wrappers.integrations.d4rl import load_d4rl_hdf5   # doctest: +SKIP
    >>> data = load_d4rl_hdf5("hopper-medium-v2.hdf5")              # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from saq_wrappers.errors import DataError
from saq_wrappers.integrations import requires_extra
from saq_wrappers.io import atomic_output
from saq_wrappers.transitions import (
    Transitions,
    as_bool_flags,
    derive_next_observations,
    flatten_rows,
)

with requires_extra("d4rl", needed_by=__name__):
    import h5py

from ._hdf5 import check_compression, open_hdf5, read_array, writing_hdf5

__all__ = ["REQUIRED_KEYS", "load_d4rl_hdf5", "write_d4rl_hdf5"]

#: Datasets every D4RL-style file must hold (``next_observations`` is optional).
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
#: The shape of each dataset, for error messages.
_SHAPES = {
    "observations": "(N, obs_dim)",
    "actions": "(N, act_dim)",
    "rewards": "(N,)",
    "terminals": "(N,)",
    "timeouts": "(N,)",
    "next_observations": "(N, obs_dim)",
}


def load_d4rl_hdf5(path: str | os.PathLike[str]) -> Transitions:
    """Read a D4RL-style hdf5 file into :class:`Transitions`, exact at episode ends.

    Args:
        path: the ``.hdf5`` file.

    Returns:
        The transitions. With ``next_observations`` in the file every row is kept as stored;
        without it, the last row of each timeout-cut episode is dropped (see the module doc).

    Raises:
        DataError: the file is missing or not hdf5, holds what the hdf5 checks refuse (external
            storage, virtual datasets, external links, sizes it does not hold: see
            ``integrations/_hdf5.py``), a required dataset is missing, holds no numbers, or
            lengths or shapes disagree, or a flag is not 0/1; the message names the file, the
            key and what was expected.
    """
    file = str(path)
    with open_hdf5(file, "a D4RL-style .hdf5 dataset") as handle:
        arrays: dict[str, np.ndarray] = {}
        for key in REQUIRED_KEYS + ("next_observations",):
            if key not in handle:
                if key == "next_observations":
                    continue
                raise DataError(
                    f"{file}: missing dataset {key!r} (a D4RL-style file holds "
                    f"{', '.join(REQUIRED_KEYS)} and optionally next_observations)"
                )
            arrays[key] = read_array(handle[key], file, repr(key), _SHAPES[key])
    n = len(arrays["observations"])
    if n == 0:
        raise DataError(f"{file}: 'observations' is empty, expected at least one row")
    for key, array in arrays.items():
        if len(array) != n:
            raise DataError(
                f"{file}: {key!r} has {len(array)} rows but 'observations' has {n}: expected equal lengths"
            )
    observations = flatten_rows(arrays["observations"], f"{file}: 'observations'")
    actions = flatten_rows(arrays["actions"], f"{file}: 'actions'")
    if arrays["rewards"].shape not in ((n,), (n, 1)):
        raise DataError(f"{file}: 'rewards' has shape {arrays['rewards'].shape}, expected ({n},)")
    rewards = arrays["rewards"].reshape(n).astype(np.float32)
    terminals = as_bool_flags(arrays["terminals"], "terminals", file)
    timeouts = as_bool_flags(arrays["timeouts"], "timeouts", file)
    for key, flags in (("terminals", terminals), ("timeouts", timeouts)):
        if len(flags) != n:
            raise DataError(f"{file}: {key!r} has shape {arrays[key].shape}, expected ({n},)")
    timeouts &= ~terminals  # a row that is both ended the MDP: no bootstrap
    if "next_observations" in arrays:
        next_observations = flatten_rows(arrays["next_observations"], f"{file}: 'next_observations'")
        if next_observations.shape != observations.shape:
            raise DataError(
                f"{file}: 'next_observations' has shape {arrays['next_observations'].shape}, "
                f"expected the shape of 'observations' {arrays['observations'].shape}"
            )
        keep = np.ones(n, dtype=bool)
    else:
        next_observations, terminals, timeouts, keep = derive_next_observations(
            observations, terminals, timeouts
        )
        if not keep.any():
            raise DataError(
                f"{file}: no transition left: every episode is one timeout row without "
                "'next_observations' (expected the file to store next_observations)"
            )
    try:
        return Transitions(
            observations=observations[keep],
            actions=actions[keep],
            rewards=rewards[keep],
            next_observations=next_observations[keep],
            terminals=terminals[keep],
            timeouts=timeouts[keep],
        )
    except DataError as error:
        raise DataError(f"{file}: {error}") from error


def write_d4rl_hdf5(
    transitions: Transitions,
    path: str | os.PathLike[str],
    *,
    include_next_observations: bool = True,
    compression: str | None = "gzip",
) -> Path:
    """Write ``transitions`` as a D4RL-style hdf5 file, atomically.

    Args:
        transitions: the data.
        path: output file; its folder must exist. Written to a temporary file and renamed.
        include_next_observations: also store ``next_observations`` (then a reload is exact
            row for row; without it, reloading drops the last row of timeout-cut episodes).
        compression: h5py compression of the datasets: ``"gzip"``, ``"lzf"``, a gzip level
            ``0``-``9``, or ``None``.

    Returns:
        The output path.

    Raises:
        DataError: an unknown ``compression``.
        OutputPathError: the output cannot be written (its folder is missing or read-only, the
            disk is full); the message names ``path``. Nothing is left behind.
    """
    check_compression(compression)
    with atomic_output(path) as tmp, writing_hdf5(path):
        with h5py.File(tmp, "w") as handle:
            data = transitions.to_dict()
            names = list(REQUIRED_KEYS) + (["next_observations"] if include_next_observations else [])
            for key in names:
                handle.create_dataset(key, data=np.asarray(data[key]), compression=compression)
    return Path(path)
