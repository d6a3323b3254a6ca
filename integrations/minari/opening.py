"""Opening Minari datasets by id or by path, without downloading and without building their env.

Datasets are opened by id from the local Minari folder (``$MINARI_DATASETS_PATH``, default
``~/.minari/datasets``) or by path; nothing is downloaded unless ``download=True`` is given.
A dataset without stored spaces is refused: it is the one case in which Minari itself would
build the env its metadata names on opening (see :func:`_read`).
"""

from __future__ import annotations

import os
from pathlib import Path

import minari
from minari.dataset.minari_dataset import MinariDataset, parse_dataset_id
from minari.dataset.minari_storage import MinariStorage
from minari.storage.datasets_root_dir import get_dataset_path

from saq_wrappers.errors import DataError

__all__ = ["DatasetSource", "is_dataset_path", "local_dataset_path", "open_minari"]

#: What every reader takes: a dataset id, a dataset folder, or an open dataset.
DatasetSource = str | os.PathLike[str] | MinariDataset


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
