"""Minari datasets in and out of :class:`~saq_wrappers.transitions.Transitions`.

Minari stores every episode as ``T + 1`` observations (the reset observation and each next
observation) against ``T`` actions. :func:`load_minari` pairs them inside each episode, so the
next observation of an episode's last step is that episode's true final observation and no
observation shifts into the next episode. (Concatenating the ``T + 1`` observations of all
episodes against the ``T`` actions, as d3rlpy 2.8.1's ``datasets.get_minari`` does, shifts the
observations by one more row after every episode.)

Datasets are opened by id from the local Minari folder (``$MINARI_DATASETS_PATH``, default
``~/.minari/datasets``) or by path; nothing is downloaded unless ``download=True`` is given.
Datasets without an environment (``env_spec`` is ``None``) load like any other.

A dataset folder is untrusted input: its ``metadata.json`` names the env to rebuild as an
``entry_point`` (``module:callable``) with kwargs, and ``gym.make`` imports and calls whatever
it names. :meth:`MinariInfo.make_env` therefore rebuilds only envs whose id the installed
Gymnasium registry knows with that same entry point (no other entry point in the kwargs, no
extra wrappers) unless ``trust_env_spec=True``; and :func:`open_minari` refuses a dataset
without stored spaces, the one case in which Minari itself would build the env on opening.

Example:
    >>> from saq_wrappers.integrations.minari import load_minari, minari_info   # doctest: +SKIP
    >>> data = load_minari("mujoco/hopper/medium-v0")                          # doctest: +SKIP
    >>> info = minari_info("mujoco/hopper/medium-v0")                          # doctest: +SKIP
    >>> info.normalized_score(data.episode_returns())                          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import gymnasium as gym
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer
from minari.dataset.episode_data import EpisodeData
from minari.dataset.minari_dataset import MinariDataset, parse_dataset_id
from minari.dataset.minari_storage import MinariStorage
from minari.storage.datasets_root_dir import get_dataset_path

from saq_wrappers.errors import DataError, OutputPathError
from saq_wrappers.transitions import (
    Transitions,
    encode_in_batches,
    flatten_rows,
    quantizer_identity,
)

__all__ = [
    "MinariInfo",
    "flatten_observations",
    "is_dataset_path",
    "load_minari",
    "local_dataset_path",
    "minari_info",
    "open_minari",
    "write_minari_dataset",
    "write_relabeled_minari",
]

DatasetSource = str | os.PathLike[str] | MinariDataset

#: The file in which Minari's hdf5 storage keeps every episode (``data/main_data.hdf5``).
_HDF5_DATA_FILE = "main_data.hdf5"
#: How a refusal tells the user to opt in (the Python keyword and the ``saq`` flag).
_TRUST_HINT = "trust_env_spec=True (saq: --trust-dataset-env)"


# ---------------------------------------------------------------------------------- opening
def open_minari(dataset: DatasetSource, *, download: bool = False) -> MinariDataset:
    """Open a Minari dataset by id, by path, or pass a :class:`MinariDataset` through.

    Args:
        dataset: a dataset id (``"mujoco/hopper/medium-v0"``), a dataset folder (the one holding
            ``data/``, or ``data/`` itself), or an open ``MinariDataset``.
        download: fetch the dataset from Minari's remote when it is not found locally. Off by
            default: nothing touches the network unless asked.

    Raises:
        DataError: unknown id (the message says how to download it), a folder that does not
            exist or is not a Minari dataset, or a dataset this Minari version cannot read.
    """
    if isinstance(dataset, MinariDataset):
        return dataset
    text = os.fspath(dataset)
    if is_dataset_path(text):
        candidate = Path(text).expanduser()
        if not candidate.exists():
            raise DataError(
                f"Minari dataset folder {text!r} does not exist (expected a folder holding "
                "data/metadata.json, or a dataset id (namespace/)name-vN)"
            )
        data_path = candidate / "data" if (candidate / "data").is_dir() else candidate
        if not (data_path / "metadata.json").is_file():
            raise DataError(
                f"{text}: not a Minari dataset folder (expected {text}/data/metadata.json or "
                f"{text}/metadata.json)"
            )
        return _read(data_path, text)
    local = get_dataset_path(text) / "data"
    if local.is_dir():
        return _read(local, text)
    if not download:
        root = get_dataset_path()
        raise DataError(
            f"Minari dataset {text!r} is not in the local Minari folder {str(root)!r} "
            "($MINARI_DATASETS_PATH): download it with `minari download "
            f"{text}` or load_minari({text!r}, download=True), or pass the path of a dataset "
            "folder"
        )
    try:
        minari.download_dataset(text)
    except Exception as error:  # noqa: BLE001 - network and registry errors of every kind
        raise DataError(f"cannot download Minari dataset {text!r}: {error}") from error
    return _read(local, text)


def is_dataset_path(text: str) -> bool:
    """Whether ``text`` names a folder rather than a Minari dataset id: it starts like a path
    (``.``, ``/``, ``~``), exists, or is not of Minari's id form ``(namespace/)name-vN``.

    A path must never be answered with "download it": ``./data/hopper`` is a folder to look for.
    """
    if text.startswith((".", "/", "~", os.sep)) or Path(text).expanduser().exists():
        return True
    try:
        parse_dataset_id(text)
    except (ValueError, TypeError):  # Minari raises TypeError for an id without a version
        return True
    return False


def local_dataset_path(dataset_id: str) -> Path | None:
    """The ``data`` folder of ``dataset_id`` in the local Minari folder
    (``$MINARI_DATASETS_PATH``), or ``None`` when it is not there. Never downloads."""
    try:
        local = get_dataset_path(dataset_id) / "data"
    except (ValueError, AssertionError):
        return None
    return local if (local / "metadata.json").is_file() else None


def _read(data_path: Path, name: str) -> MinariDataset:
    """Open a dataset folder without letting Minari build its env.

    Minari 0.5.4's ``MinariStorage.read`` calls ``gym.make(env_spec)`` when ``metadata.json``
    lacks ``observation_space`` or ``action_space``, which would run the code the file names
    before any check; every dataset Minari writes stores both, so one without them is refused.
    """
    metadata_file = data_path / "metadata.json"
    try:
        metadata = MinariStorage.read_raw_metadata(data_path)
    except (ValueError, OSError) as error:  # json.JSONDecodeError is a ValueError
        raise DataError(f"{name}: cannot read {str(metadata_file)!r} ({error})") from error
    if not isinstance(metadata, dict):
        raise DataError(f"{name}: {str(metadata_file)!r} holds {type(metadata).__name__}, expected a JSON object")
    missing = [key for key in ("observation_space", "action_space") if key not in metadata]
    if missing:
        raise DataError(
            f"{name}: {str(metadata_file)!r} stores no {' and no '.join(missing)} (expected both, "
            "as Minari writes them; without them Minari would build the env its env_spec names, "
            "running that code, to learn the spaces)"
        )
    try:
        return MinariDataset(data_path)
    except (ValueError, KeyError, OSError, AssertionError) as error:
        raise DataError(f"{name}: cannot open Minari dataset at {str(data_path)!r} ({error})") from error


# ---------------------------------------------------------------------------------- info
@dataclasses.dataclass(frozen=True)
class MinariInfo:
    """What a Minari dataset says about itself, for evaluation and normalized scores.

    Attributes:
        dataset_id: the id in the dataset's metadata.
        data_path: the folder holding the dataset's files.
        observation_space, action_space: as stored.
        total_episodes, total_steps: as stored.
        ref_min_score, ref_max_score: reference returns (random / expert), or ``None``.
        env_spec, eval_env_spec: the collection and evaluation envs, or ``None`` (env-less).
        metadata: the raw metadata dictionary.
        trust_env_spec: rebuild the stored env whatever code it names (see :meth:`rebuild_spec`).
    """

    dataset_id: str
    data_path: Path
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    total_episodes: int
    total_steps: int
    ref_min_score: float | None
    ref_max_score: float | None
    env_spec: EnvSpec | None
    eval_env_spec: EnvSpec | None
    metadata: dict[str, Any]
    trust_env_spec: bool = False

    def normalized_score(self, returns: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """D4RL-style normalized score ``100 * (R - ref_min) / (ref_max - ref_min)``.

        Minari's own ``get_normalized_score`` returns the same without the factor 100.
        """
        if self.ref_min_score is None or self.ref_max_score is None:
            raise DataError(
                f"Minari dataset {self.dataset_id!r} has no reference scores: expected "
                "'ref_min_score' and 'ref_max_score' in its metadata"
            )
        span = self.ref_max_score - self.ref_min_score
        if span == 0:
            raise DataError(
                f"Minari dataset {self.dataset_id!r} has equal reference scores: cannot normalize"
            )
        return 100.0 * (np.asarray(returns, dtype=np.float64) - self.ref_min_score) / span

    def rebuild_spec(self, eval_env: bool = True, *, trust_env_spec: bool = False) -> EnvSpec | None:
        """The spec :meth:`make_env` builds (the evaluation env, else the collection env), or
        ``None`` for an env-less dataset; checked without importing anything, so a caller can
        refuse an untrusted dataset before any work.

        ``gym.make`` imports and calls the spec's ``entry_point`` with its kwargs, and the spec
        comes from the dataset's files. Unless ``trust_env_spec`` (here or on the info), the spec
        must name an env id the installed Gymnasium registry knows, with the registered entry
        point (and vector entry point), no other entry point in its kwargs, and no additional
        wrappers (each wrapper is an entry point too).

        Raises:
            DataError: an untrusted spec; the message names the entry point and the opt-in.
        """
        spec = (self.eval_env_spec if eval_env else None) or self.env_spec
        if spec is not None and not (trust_env_spec or self.trust_env_spec):
            _check_registered(spec, self.dataset_id)
        return spec

    def make_env(
        self, eval_env: bool = True, *, trust_env_spec: bool = False, **kwargs: Any
    ) -> gym.Env[Any, Any]:
        """Rebuild the evaluation env (or the collection env) with ``gym.make``; the stored spec
        is checked first (see :meth:`rebuild_spec`), ``kwargs`` go to ``gym.make``."""
        spec = self.rebuild_spec(eval_env, trust_env_spec=trust_env_spec)
        if spec is None:
            raise DataError(
                f"Minari dataset {self.dataset_id!r} stores no environment (env_spec and "
                "eval_env_spec are None): build the env yourself"
            )
        try:
            return gym.make(spec, **kwargs)
        except Exception as error:  # noqa: BLE001 - gymnasium raises many kinds
            raise DataError(
                f"Minari dataset {self.dataset_id!r}: cannot rebuild env {spec.id!r} ({error})"
            ) from error


def _check_registered(spec: EnvSpec, dataset_id: str) -> None:
    """Refuse ``spec`` unless every entry point it would load is the installed registry's own
    for ``spec.id`` (see :meth:`MinariInfo.rebuild_spec`)."""
    registered = gym.registry.get(spec.id)
    if registered is None:
        problem = (f"its env id {spec.id!r} is not in the installed Gymnasium registry (import the "
                   "package that registers it first)")
    elif spec.entry_point != registered.entry_point:
        problem = (f"the installed Gymnasium registry has entry point {registered.entry_point!r} for "
                   f"{spec.id!r}, not {spec.entry_point!r}")
    elif spec.vector_entry_point not in (None, registered.vector_entry_point):
        problem = (f"it names vector entry point {spec.vector_entry_point!r}, the registry "
                   f"{registered.vector_entry_point!r}")
    elif _named_entry_points(spec.kwargs) != _named_entry_points(registered.kwargs):
        problem = (f"its kwargs name entry points {_named_entry_points(spec.kwargs)} that the registered "
                   f"{spec.id!r} does not")
    elif spec.additional_wrappers:
        problem = f"it adds wrappers {[w.entry_point for w in spec.additional_wrappers]}"
    else:
        return
    raise DataError(
        f"Minari dataset {dataset_id!r}: refusing to rebuild its env from metadata.json, which "
        f"names entry point {spec.entry_point!r} for {spec.id!r} ({problem}); gym.make would "
        f"import and call that code. Pass {_TRUST_HINT} only if you trust this dataset, or build "
        "the env yourself"
    )


def _named_entry_points(kwargs: Any, prefix: str = "") -> dict[str, Any]:
    """Every value under a key naming an entry point (``entry_point``, ``env_entry_point``...)
    anywhere in nested ``kwargs``, by dotted key: env creators that take one import it."""
    found: dict[str, Any] = {}
    if isinstance(kwargs, dict):
        for key, value in kwargs.items():
            path = f"{prefix}{key}"
            if "entry_point" in str(key):
                found[path] = value
            found.update(_named_entry_points(value, f"{path}."))
    return found


def minari_info(
    dataset: DatasetSource, *, download: bool = False, trust_env_spec: bool = False
) -> MinariInfo:
    """Metadata of a Minari dataset (see :class:`MinariInfo`); reads no episode data.

    ``trust_env_spec`` lets :meth:`MinariInfo.make_env` rebuild whatever env the dataset's
    metadata names (it imports and runs that code): only for datasets you trust.
    """
    ds = open_minari(dataset, download=download)
    metadata = dict(ds.storage.metadata)

    def score(key: str) -> float | None:
        value = metadata.get(key)
        return None if value is None else float(value)

    return MinariInfo(
        dataset_id=ds.id,
        data_path=Path(ds.storage.data_path),
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        total_episodes=int(ds.total_episodes),
        total_steps=int(ds.total_steps),
        ref_min_score=score("ref_min_score"),
        ref_max_score=score("ref_max_score"),
        env_spec=ds.env_spec,
        eval_env_spec=ds._eval_env_spec,  # no public accessor in Minari 0.5.4
        metadata=metadata,
        trust_env_spec=trust_env_spec,
    )


# ---------------------------------------------------------------------------------- reading
@contextlib.contextmanager
def _reading(ds: MinariDataset) -> Iterator[None]:
    """Turn h5py's errors for a truncated, empty or corrupt episode file (``OSError``, and
    ``KeyError`` for a damaged object) into a DataError naming the file: Minari passes them on
    from deep inside without it."""
    try:
        yield
    except (OSError, KeyError) as error:
        data_path = Path(ds.storage.data_path)
        file = data_path / _HDF5_DATA_FILE if ds.storage.FORMAT == "hdf5" else data_path
        raise DataError(
            f"{file}: cannot read the episodes of Minari dataset {ds.id!r} ({error}); expected "
            "the file Minari wrote, intact (truncated, empty or corrupt?)"
        ) from error


def _episodes(ds: MinariDataset) -> Iterator[EpisodeData]:
    """``ds.iterate_episodes()`` with read errors named (see :func:`_reading`)."""
    with _reading(ds):
        yield from ds.iterate_episodes()


def flatten_observations(observations: Any, space: gym.Space[Any]) -> np.ndarray:
    """``(T, ...)`` episode observations as ``(T, obs_dim)`` float32.

    ``Box`` observations are reshaped; ``Dict`` observations are concatenated in the space's key
    order (recursively), ``Tuple`` ones in index order: the same layout as
    ``gymnasium.spaces.flatten`` for continuous spaces.
    """
    if isinstance(space, gym.spaces.Dict):
        return np.concatenate(
            [flatten_observations(observations[key], sub) for key, sub in space.spaces.items()],
            axis=1,
        )
    if isinstance(space, gym.spaces.Tuple):
        return np.concatenate(
            [flatten_observations(observations[i], sub) for i, sub in enumerate(space.spaces)],
            axis=1,
        )
    if isinstance(space, gym.spaces.Box):
        return flatten_rows(observations)
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
            whose observation count is not its action count plus one, or an episode file that
            cannot be read (the message names it).
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
        observations = flatten_observations(episode.observations, ds.observation_space)
        steps = len(episode.rewards)
        if len(observations) != steps + 1:
            raise DataError(
                f"Minari dataset {name!r}, episode {episode.id}: {len(observations)} "
                f"observations for {steps} steps, expected {steps + 1} (T + 1)"
            )
        episodes.append(
            {
                "observations": observations,
                "actions": flatten_rows(episode.actions),
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


# ---------------------------------------------------------------------------------- writing
def write_minari_dataset(
    dataset_id: str,
    episodes: Sequence[dict[str, Any]],
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    *,
    env_spec: EnvSpec | None = None,
    eval_env_spec: EnvSpec | None = None,
    metadata: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Create a Minari dataset from episodes, atomically; ``minari.load_dataset`` opens it.

    The dataset is written into a hidden temporary folder next to its destination and renamed
    into place only when complete, so a failure never leaves a partial dataset.

    Args:
        dataset_id: ``(namespace/)name-vN``.
        episodes: mappings with ``observations`` (``T + 1``), ``actions`` (``T``), ``rewards``,
            ``terminations``, ``truncations`` (``T`` each), and optionally ``seed`` and
            ``infos``.
        observation_space, action_space: the stored spaces.
        env_spec: the env the data came from (leave ``None`` when actions are not that env's,
            e.g. relabeled codes); eval_env_spec: the env to evaluate in.
        metadata: extra JSON-serialisable metadata (e.g. ``ref_min_score``, ``ref_max_score``,
            ``description``, ``algorithm_name``).
        root: the Minari datasets folder (default ``$MINARI_DATASETS_PATH`` or
            ``~/.minari/datasets``).

    Returns:
        The dataset folder (``root/dataset_id``).
    """
    try:
        namespace, _, _ = parse_dataset_id(dataset_id)
    except ValueError as error:
        raise DataError(f"invalid Minari dataset id {dataset_id!r}: {error}") from error
    if not episodes:
        raise DataError(f"no episodes to write to Minari dataset {dataset_id!r}: expected at least one")
    # absolute: Minari 0.5.4 joins a relative data path onto itself when it sizes the dataset
    base = (Path(root).expanduser() if root is not None else get_dataset_path()).absolute()
    if not base.is_dir():
        raise OutputPathError(f"Minari datasets folder {str(base)!r} does not exist")
    final = base / dataset_id
    if final.exists():
        raise OutputPathError(
            f"Minari dataset {dataset_id!r} already exists at {str(final)!r}: choose another id "
            "or version, or delete it"
        )
    if namespace is not None and root is None and not final.parent.exists():
        from minari.namespace import create_namespace

        create_namespace(namespace)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a dataset folder is not
    try:
        buffers = []
        total = 0
        for number, episode in enumerate(episodes):
            steps = len(episode["rewards"])
            if steps == 0 or len(episode["observations"]) != steps + 1:
                raise DataError(
                    f"episode {number}: {len(episode['observations'])} observations for {steps} "
                    "steps, expected T + 1 observations for T >= 1 steps"
                )
            total += steps
            buffers.append(
                EpisodeBuffer(
                    id=number,
                    seed=episode.get("seed"),
                    observations=episode["observations"],
                    actions=episode["actions"],
                    rewards=list(np.asarray(episode["rewards"], dtype=np.float64)),
                    terminations=list(np.asarray(episode["terminations"], dtype=bool)),
                    truncations=list(np.asarray(episode["truncations"], dtype=bool)),
                    infos=episode.get("infos"),
                )
            )
        storage = MinariStorage.new(
            tmp / "data",
            observation_space=observation_space,
            action_space=action_space,
            env_spec=env_spec,
        )
        document: dict[str, Any] = {"dataset_id": dataset_id, "minari_version": minari.__version__}
        if eval_env_spec is not None:
            document["eval_env_spec"] = eval_env_spec.to_json()
        document.update(metadata or {})
        storage.update_metadata(document)
        storage.update_episodes(buffers)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_relabeled_minari(
    source: DatasetSource,
    quantizer: Any,
    dataset_id: str,
    *,
    quantizer_path: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    description: str | None = None,
    batch_size: int = 8192,
) -> Path:
    """Write a copy of a Minari dataset whose actions are the quantizer's codes.

    The new dataset has the source's observations (all ``T + 1`` of every episode), rewards,
    terminations, truncations, seeds and infos, a ``Discrete(K)`` action space holding
    ``quantizer.encode(obs_t, action_t)``, no ``env_spec`` (its actions are not the env's), the
    source's evaluation env as ``eval_env_spec``, the source's reference scores, and a ``saq``
    metadata entry with the source id and the quantizer's identity. The source is not modified;
    the output appears atomically.

    Args:
        source: id, folder, or open ``MinariDataset`` with continuous (``Box``) actions.
        quantizer: anything with ``encode(obs, actions) -> codes``, ``n``, and the observation /
            action spaces (e.g. :class:`~saq_wrappers.vqvae.VQVAEQuantizer`); observations are
            flattened as in :func:`load_minari` before encoding.
        dataset_id: id of the new dataset (``(namespace/)name-vN``).
        quantizer_path: the quantizer's checkpoint file, recorded with its sha256.
        root: Minari datasets folder for the output (default: Minari's).
        description: dataset description (a default one names the source and ``K``).
        batch_size: rows per ``encode`` call.

    Returns:
        The new dataset's folder.
    """
    ds = open_minari(source)
    if not isinstance(ds.action_space, gym.spaces.Box):
        raise DataError(
            f"Minari dataset {ds.id!r}: actions are {ds.action_space}, expected a continuous Box "
            "to relabel"
        )
    k = int(quantizer.n)
    seeds: dict[int, Any] = {}
    with _reading(ds):
        for meta in ds.storage.get_episode_metadata(ds.episode_indices):
            if "seed" in meta and "id" in meta:
                seeds[int(meta["id"])] = int(meta["seed"])
    episodes = []
    for episode in _episodes(ds):
        observations = flatten_observations(episode.observations, ds.observation_space)
        actions = flatten_rows(episode.actions)
        if len(observations) != len(actions) + 1:
            raise DataError(
                f"Minari dataset {ds.id!r}, episode {episode.id}: {len(observations)} observations "
                f"for {len(actions)} steps, expected T + 1"
            )
        codes = encode_in_batches(quantizer, observations[:-1], actions, batch_size)
        episodes.append(
            {
                "observations": episode.observations,
                "actions": codes,
                "rewards": episode.rewards,
                "terminations": episode.terminations,
                "truncations": episode.truncations,
                "infos": episode.infos or None,
                "seed": seeds.get(int(episode.id)),
            }
        )
    source_meta = ds.storage.metadata
    metadata: dict[str, Any] = {
        "algorithm_name": "SAQ relabeling (saq-wrappers)",
        "description": description
        or f"{ds.id} with actions replaced by the codes of a K={k} SAQ quantizer",
        "saq": {
            "source_dataset": ds.id,
            "n_codes": k,
            "quantizer": quantizer_identity(quantizer, quantizer_path),
            "observation_layout": "flattened as saq_wrappers.integrations.minari.flatten_observations",
        },
    }
    for key in ("ref_min_score", "ref_max_score", "num_episodes_average_score"):
        if source_meta.get(key) is not None:
            metadata[key] = source_meta[key]
    eval_spec = ds._eval_env_spec or ds.env_spec  # no public accessor in Minari 0.5.4
    return write_minari_dataset(
        dataset_id,
        episodes,
        ds.observation_space,
        gym.spaces.Discrete(k),
        eval_env_spec=eval_spec,
        metadata=metadata,
        root=root,
    )
