"""Opening Minari datasets by id or by path, without downloading and without building their env.

Datasets are opened by id from the local Minari folder (``$MINARI_DATASETS_PATH``, default
``~/.minari/datasets``) or by path; nothing is downloaded unless ``download=True`` is given.
A dataset without stored spaces is refused: it is the one case in which Minari itself would
build the env its metadata names on opening (see :func:`_read`). The numbers of
``metadata.json`` are checked before Minari reads them (:func:`check_metadata`): the declared
sizes (Minari allocates an index of ``total_episodes`` entries) and the reference scores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import minari
from minari.dataset.minari_dataset import MinariDataset, parse_dataset_id
from minari.dataset.minari_storage import MinariStorage
from minari.storage.datasets_root_dir import get_dataset_path

from saq_wrappers.errors import DataError
from saq_wrappers.evaluation import check_reference_returns
from saq_wrappers.validation import check_int, check_number

__all__ = ["DatasetSource", "check_metadata", "is_dataset_path", "local_dataset_path", "open_minari",
           "reference_scores"]

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


#: Episodes whose index Minari may allocate without a look at the files (8 MB).
_SMALL_INDEX = 1_000_000


def check_metadata(metadata: Mapping[str, Any], name: str, data_path: Path) -> None:
    """Refuse the numbers of a dataset's ``metadata.json`` that Minari would trust.

    ``total_episodes`` and ``total_steps`` must be integers >= 0, and ``total_episodes`` above a
    million no larger than the bytes of the data folder's files (Minari 0.5.4
    allocates ``np.arange(total_episodes)`` on opening: a 2 KB file declaring 10**12 episodes
    would need 8 TB; below that, the episode file itself says whether it holds them); the
    reference scores must be finite numbers that differ (see :func:`reference_scores`).

    Raises:
        DataError: naming the dataset, the field and the value.
    """
    label = _label(metadata, name)
    for field in ("total_episodes", "total_steps"):
        check_int(f"Minari dataset {label!r}: metadata field {field!r}", metadata.get(field, 0), 0)
    episodes = int(metadata.get("total_episodes", 0))
    if episodes > _SMALL_INDEX and episodes > (capacity := _stored_bytes(data_path)):
        raise DataError(
            f"Minari dataset {label!r}: metadata field 'total_episodes' declares {episodes:,}, but the data folder "
            f"{str(data_path)!r} holds only {capacity:,} bytes (every episode takes more than one): expected the "
            "count Minari wrote"
        )
    reference_scores(metadata, name)


def reference_scores(metadata: Mapping[str, Any], name: str) -> tuple[float | None, float | None]:
    """``(ref_min_score, ref_max_score)`` of a dataset's metadata, ``None`` where absent.

    Raises:
        DataError: a value that is not a finite number (``"abc"``, NaN, inf, a list, a bool), or
            equal scores: either would make every normalized score NaN or a division by zero
            (:func:`~saq_wrappers.evaluation.check_reference_returns` when both are given).
    """
    label = _label(metadata, name)
    names = ("metadata field 'ref_min_score'", "metadata field 'ref_max_score'")
    low, high = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    try:
        if low is not None and high is not None:
            return check_reference_returns(low, high, names)
        return (None if low is None else check_number(names[0], low),
                None if high is None else check_number(names[1], high))
    except DataError as error:
        raise DataError(f"Minari dataset {label!r}: {error}") from error


def _label(metadata: Mapping[str, Any], name: str) -> str:
    """The dataset's id as its metadata states it, else the id or path it was opened by."""
    stated = metadata.get("dataset_id")
    return stated if isinstance(stated, str) else name


def _stored_bytes(data_path: Path) -> int:
    """Bytes of the entries of ``data_path`` but ``metadata.json``: the hdf5 file, or the arrow
    storage's episode folders (not recursed: each folder counts its own directory size)."""
    total = 0
    with os.scandir(data_path) as entries:
        for entry in entries:
            if entry.name != "metadata.json":
                try:
                    total += entry.stat().st_size
                except OSError:  # a broken link holds nothing
                    pass
    return total


def _read(data_path: Path, name: str) -> MinariDataset:
    """Open a dataset folder without letting Minari build its env.

    Minari 0.5.4's ``MinariStorage.read`` calls ``gym.make(env_spec)`` when ``metadata.json``
    lacks ``observation_space`` or ``action_space``, which would run the code the file names
    before any check; every dataset Minari writes stores both, so one without them is refused.
    Its numbers are checked first (:func:`check_metadata`); any error Minari raises on a
    malformed file (an unknown space type, a space nested thousands deep, a number too large
    for C) becomes a :class:`DataError` naming the folder.
    """
    metadata_file = data_path / "metadata.json"
    try:
        metadata = MinariStorage.read_raw_metadata(data_path)
    except (ValueError, OSError, RecursionError) as error:  # json.JSONDecodeError is a ValueError
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
    check_metadata(metadata, name, data_path)
    try:
        return MinariDataset(data_path)
    except _MINARI_READ_ERRORS as error:
        raise DataError(f"{name}: cannot open Minari dataset at {str(data_path)!r} ({error})") from error


#: What Minari 0.5.4 raises on a malformed dataset folder, by kind of damage.
_MINARI_READ_ERRORS = (ValueError, TypeError, KeyError, OSError, AssertionError, ArithmeticError,
                       NotImplementedError, RecursionError)
