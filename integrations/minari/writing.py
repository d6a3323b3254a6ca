"""Writing Minari datasets atomically: from episodes, and relabeled copies holding SAQ codes.

Each dataset is written into a hidden temporary folder next to its destination and renamed into
place only when complete, so a failure never leaves a partial dataset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.dataset.minari_storage import MinariStorage
from minari.storage.datasets_root_dir import get_dataset_path

from saq_wrappers.errors import DataError, OutputPathError
from saq_wrappers.transitions import as_bool_flags, encode_in_batches, flatten_rows, quantizer_identity

from .opening import DatasetSource, open_minari, reference_scores
from .reading import _episodes, _reading, flatten_observations

__all__ = ["check_new_dataset", "write_minari_dataset", "write_relabeled_minari"]


def check_new_dataset(
    dataset_id: str,
    root: str | os.PathLike[str] | None = None,
    ref_min_score: Any = None,
    ref_max_score: Any = None,
) -> Path:
    """The folder a new dataset ``dataset_id`` would take, if :func:`write_minari_dataset` can
    write it there: what it refuses, checked before any work (``saq data generate`` calls it
    before its first rollout).

    Args:
        dataset_id: ``(namespace/)name-vN``.
        root: the Minari datasets folder (default ``$MINARI_DATASETS_PATH`` or
            ``~/.minari/datasets``); it must exist.
        ref_min_score, ref_max_score: the reference scores to store, ``None`` when absent: finite
            numbers that differ (see :func:`~saq_wrappers.integrations.minari.opening.reference_scores`).

    Returns:
        The dataset folder (``root/dataset_id``), absolute.

    Raises:
        DataError: an id not of Minari's form, or bad reference scores.
        OutputPathError: a missing datasets folder, or anything already at the dataset's folder.
    """
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as error:  # Minari raises TypeError for an id without a version
        raise DataError(f"invalid Minari dataset id {dataset_id!r}: expected (namespace/)name-vN ({error})") from error
    reference_scores({"ref_min_score": ref_min_score, "ref_max_score": ref_max_score}, dataset_id)
    # absolute: Minari 0.5.4 joins a relative data path onto itself when it sizes the dataset
    base = (Path(root).expanduser() if root is not None else get_dataset_path()).absolute()
    if not base.is_dir():
        raise OutputPathError(f"Minari datasets folder {str(base)!r} does not exist (create it first)")
    final = base / dataset_id
    if final.exists() or final.is_symlink():
        raise OutputPathError(
            f"Minari dataset {dataset_id!r} already exists at {str(final)!r}: choose another id "
            "or version, or delete it"
        )
    return final


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
            ``description``, ``algorithm_name``); reference scores must be finite numbers that
            differ, as :func:`~saq_wrappers.integrations.minari.minari_info` requires them.
        root: the Minari datasets folder (default ``$MINARI_DATASETS_PATH`` or
            ``~/.minari/datasets``).

    Returns:
        The dataset folder (``root/dataset_id``).
    """
    if not episodes:
        raise DataError(f"no episodes to write to Minari dataset {dataset_id!r}: expected at least one")
    # a NaN or "abc" score would make the dataset unreadable
    final = check_new_dataset(dataset_id, root, (metadata or {}).get("ref_min_score"),
                              (metadata or {}).get("ref_max_score"))
    namespace, _, _ = parse_dataset_id(dataset_id)
    buffers = _episode_buffers(episodes)  # every episode checked before anything is created
    if namespace is not None and root is None and not final.parent.exists():
        from minari.namespace import create_namespace

        create_namespace(namespace)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a dataset folder is not
    try:
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


def _episode_buffers(episodes: Sequence[dict[str, Any]]) -> list[EpisodeBuffer]:
    """Minari's buffers of ``episodes``, each checked: ``T + 1`` observations for ``T >= 1``
    steps, and flags that are booleans or 0/1 values (:func:`~saq_wrappers.transitions.as_bool_flags`)."""
    buffers = []
    for number, episode in enumerate(episodes):
        steps = len(episode["rewards"])
        if steps == 0 or len(episode["observations"]) != steps + 1:
            raise DataError(
                f"episode {number}: {len(episode['observations'])} observations for {steps} "
                "steps, expected T + 1 observations for T >= 1 steps"
            )
        buffers.append(
            EpisodeBuffer(
                id=number,
                seed=episode.get("seed"),
                observations=episode["observations"],
                actions=episode["actions"],
                rewards=list(np.asarray(episode["rewards"], dtype=np.float64)),
                terminations=list(as_bool_flags(episode["terminations"], f"episode {number}: terminations")),
                truncations=list(as_bool_flags(episode["truncations"], f"episode {number}: truncations")),
                infos=episode.get("infos"),
            )
        )
    return buffers


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
