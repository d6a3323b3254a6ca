"""Reading Minari episodes into :class:`~saq_wrappers.transitions.Transitions`, exact at episode ends.

Minari stores every episode as ``T + 1`` observations (the reset observation and each next
observation) against ``T`` actions. :func:`load_minari` pairs them inside each episode, so the
next observation of an episode's last step is that episode's true final observation and no
observation shifts into the next episode. (Concatenating the ``T + 1`` observations of all
episodes against the ``T`` actions, as d3rlpy 2.8.1's ``datasets.get_minari`` does, shifts the
observations by one more row after every episode.)

The episode file is untrusted input: before Minari reads it, it gets the checks every hdf5 reader
of this library applies (no external storage, virtual datasets or external links; no sizes the
file does not hold: see ``integrations/_hdf5.py``), and episode flags follow the rule of every
reader (bools or 0/1 values, :func:`~saq_wrappers.transitions.as_bool_flags`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import gymnasium as gym
import h5py
import numpy as np
from minari.dataset.episode_data import EpisodeData
from minari.dataset.minari_dataset import MinariDataset

from saq_wrappers.errors import DataError
from saq_wrappers.transitions import Transitions, flatten_rows
from saq_wrappers.validation import check_regular_file

from .._hdf5 import check_hdf5_contents
from .opening import DatasetSource, open_minari

__all__ = ["flatten_observations", "load_minari"]

#: The file in which Minari's hdf5 storage keeps every episode (``data/main_data.hdf5``).
_HDF5_DATA_FILE = "main_data.hdf5"


@contextlib.contextmanager
def _reading(ds: MinariDataset) -> Iterator[None]:
    """Check Minari's hdf5 episode file (:func:`~saq_wrappers.integrations._hdf5.check_hdf5_contents`)
    before Minari reads it, and turn the errors of a truncated, empty or corrupt one (h5py's
    ``OSError``, ``KeyError`` for a damaged object, and the ``ValueError``, ``TypeError`` and
    ``AssertionError`` of Minari's own format checks) into a DataError naming the file: Minari
    passes them on from deep inside without it."""
    data_path = Path(ds.storage.data_path)
    hdf5 = ds.storage.FORMAT == "hdf5"
    file = data_path / _HDF5_DATA_FILE if hdf5 else data_path
    try:
        if hdf5:
            check_regular_file(file, "Minari episode file", "the hdf5 file Minari wrote")
            with h5py.File(file, "r") as handle:
                check_hdf5_contents(handle, str(file))
        yield
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AssertionError, RuntimeError) as error:
        raise DataError(
            f"{file}: cannot read the episodes of Minari dataset {ds.id!r} ({error}); expected "
            "the file Minari wrote, intact (truncated, empty or corrupt?)"
        ) from error


def _episodes(ds: MinariDataset) -> Iterator[EpisodeData]:
    """``ds.iterate_episodes()`` with read errors named (see :func:`_reading`)."""
    with _reading(ds):
        yield from ds.iterate_episodes()


def flatten_observations(
    observations: Any, space: gym.Space[Any], name: str = "observations"
) -> np.ndarray:
    """``(T, ...)`` episode observations as ``(T, obs_dim)`` float32.

    ``Box`` observations are reshaped; ``Dict`` observations are concatenated in the space's key
    order (recursively), ``Tuple`` ones in index order: the same layout as
    ``gymnasium.spaces.flatten`` for continuous spaces. Values that are not numbers, scalars
    and rows without a value are a DataError naming ``name`` (and the key within it).
    """
    if isinstance(space, gym.spaces.Dict):
        return np.concatenate(
            [flatten_observations(observations[key], sub, f"{name}/{key}") for key, sub in space.spaces.items()],
            axis=1,
        )
    if isinstance(space, gym.spaces.Tuple):
        return np.concatenate(
            [flatten_observations(observations[i], sub, f"{name}/{i}") for i, sub in enumerate(space.spaces)],
            axis=1,
        )
    if isinstance(space, gym.spaces.Box):
        return flatten_rows(observations, name)
    raise DataError(
        f"observation space {space} is not supported: expected Box, or Dict/Tuple of Box"
    )


def load_minari(dataset: DatasetSource, *, download: bool = False) -> Transitions:
    """Read a Minari dataset into :class:`Transitions`, exact at episode ends.

    In every episode, step ``t`` gets observation ``t`` and next observation ``t + 1`` of that
    episode's ``T + 1`` stored observations; the last step's next observation is the episode's
    real final observation. An episode ending with ``terminations[-1]`` is terminal; any other
    episode (truncated, or cut when collection stopped) ends with a timeout.

    Args:
        dataset: id, folder, or open ``MinariDataset`` (see :func:`open_minari`).
        download: allow downloading an id that is not local (off by default).

    Returns:
        The transitions. Use :func:`minari_info` for reference scores and the env.

    Raises:
        DataError: unknown id, unsupported spaces (actions must be a ``Box``), an episode
            whose observation count is not its action count plus one, data that is not numbers,
            terminations other than 0/1, or an episode file that cannot be read or that the
            hdf5 checks refuse (the message names it).
    """
    ds = open_minari(dataset, download=download)
    name = ds.id
    if not isinstance(ds.action_space, gym.spaces.Box):
        raise DataError(
            f"Minari dataset {name!r}: actions are {ds.action_space}, expected a continuous Box "
            "(a relabeled dataset with Discrete codes opens with minari.load_dataset)"
        )
    episodes = []
    for episode in _episodes(ds):
        where = f"Minari dataset {name!r}, episode {episode.id}"
        observations = flatten_observations(episode.observations, ds.observation_space, f"{where}: observations")
        steps = len(episode.rewards)
        if len(observations) != steps + 1:
            raise DataError(
                f"{where}: {len(observations)} observations for {steps} steps, expected {steps + 1} (T + 1)"
            )
        episodes.append(
            {
                "observations": observations,
                "actions": flatten_rows(episode.actions, f"{where}: actions"),
                "rewards": episode.rewards,
                "terminations": episode.terminations,
            }
        )
    if not episodes:
        raise DataError(f"Minari dataset {name!r} has no episodes: expected at least one")
    try:
        return Transitions.from_episodes(episodes)
    except DataError as error:
        raise DataError(f"Minari dataset {name!r}: {error}") from error
