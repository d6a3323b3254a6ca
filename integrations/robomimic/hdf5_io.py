"""robomimic's hdf5 dataset format, read and written with h5py alone.

The ``robomimic`` package is not needed (from the registry it needs torchvision and
``mujoco_py``). The format::

    data/                       attrs: total (int), env_args (JSON string)
      demo_<i>/                 attrs: num_samples (int), model_file (MJCF xml, robosuite)
        actions   (T, act_dim)
        rewards   (T,)
        dones     (T,)
        states    (T, state_dim)        flattened MuJoCo states (optional here)
        obs/<key>       (T, ...)
        next_obs/<key>  (T, ...)
    mask/<filter_key>           names of the demos in a split (bytes), e.g. train / valid

Observations are the chosen keys flattened and concatenated **in the order given** (default
:data:`DEFAULT_OBS_KEYS`, the low-dim keys of robomimic's image-free configs); that order is
part of the data and is recorded with the quantizer by :func:`write_relabeled_robomimic`.

Episodes: one demo is one episode. Its last step is terminal when ``dones[-1]`` is set (the demo
ended on success, as in robomimic's PH/MH data), otherwise a timeout. ``dones`` set before the
last step (robomimic's ``done_mode=2`` marks every success state) do not split the demo.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py
import numpy as np

from saq_wrappers.errors import CheckpointError, DataError
from saq_wrappers.io import atomic_output, check_output_path, parse_json
from saq_wrappers.transitions import (
    Transitions,
    as_bool_flags,
    derive_next_observations,
    encode_in_batches,
    flatten_rows,
    quantizer_identity,
)
from saq_wrappers.validation import check_regular_file

from .._hdf5 import check_compression, open_hdf5, read_array, writing_hdf5

__all__ = [
    "CODES_KEY",
    "DEFAULT_OBS_KEYS",
    "RobomimicLayout",
    "load_robomimic",
    "open_robomimic",
    "robomimic_layout",
    "stored_env_args",
    "write_relabeled_robomimic",
    "write_robomimic",
]

#: robomimic's low-dim observation keys (robot0_* proprioception + the task's object state).
DEFAULT_OBS_KEYS: tuple[str, ...] = (
    "robot0_eef_pos",
    "robot0_eef_quat",
    "robot0_gripper_qpos",
    "object",
)

#: Dataset name of the codes :func:`write_relabeled_robomimic` adds to every demo.
CODES_KEY = "action_codes"


# ---------------------------------------------------------------------------------- reading
@dataclasses.dataclass(frozen=True)
class RobomimicLayout:
    """How a robomimic file's observations become flat vectors.

    Attributes:
        path: the file.
        obs_keys: the keys, in concatenation order.
        obs_slices: ``key -> (start, stop)`` columns of each key in the flat observation.
        obs_dim: total width.
        demos: the demo names read, in order (after ``filter_key``).
        filter_key: the ``mask/`` split used, or ``None`` for all demos.
        env_args: ``data.attrs["env_args"]`` parsed, or ``None`` if absent.
    """

    path: Path
    obs_keys: tuple[str, ...]
    obs_slices: dict[str, tuple[int, int]]
    obs_dim: int
    demos: tuple[str, ...]
    filter_key: str | None
    env_args: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (keys, slices, filter key, env name) for recording with a model."""
        return {
            "obs_keys": list(self.obs_keys),
            "obs_slices": {k: list(v) for k, v in self.obs_slices.items()},
            "obs_dim": self.obs_dim,
            "filter_key": self.filter_key,
            "env_name": (self.env_args or {}).get("env_name"),
        }


def open_robomimic(path: str | os.PathLike[str]) -> h5py.File:
    """A robomimic file opened read-only; a missing or non-hdf5 file is a DataError."""
    return open_hdf5(path, "a robomimic .hdf5 dataset")


def _obs_keys(obs_keys: Sequence[str] | None, file: str) -> tuple[str, ...]:
    """The observation keys asked for, in order; ``None`` means :data:`DEFAULT_OBS_KEYS`.

    A single string is refused rather than split into its characters, as are an empty list
    and keys that are not non-empty strings.
    """
    if obs_keys is None:
        return DEFAULT_OBS_KEYS
    if isinstance(obs_keys, (str, bytes)):
        raise DataError(f"{file}: obs_keys is the string {obs_keys!r}, expected a list of observation keys")
    keys = tuple(obs_keys)
    if not keys:
        raise DataError(f"{file}: obs_keys is empty, expected at least one observation key")
    bad = [key for key in keys if not isinstance(key, str) or not key]
    if bad:
        raise DataError(f"{file}: obs_keys holds {bad[0]!r}, expected observation key names (strings)")
    return keys


def _demo_sort_key(name: str) -> tuple[int, int | str]:
    match = re.fullmatch(r"demo_(\d+)", name)
    return (0, int(match.group(1))) if match else (1, name)


def _demo_names(handle: h5py.File, file: str, filter_key: str | None) -> list[str]:
    if "data" not in handle or not isinstance(handle["data"], h5py.Group):
        raise DataError(f"{file}: missing group 'data' (a robomimic file holds data/demo_<i>/...)")
    data = handle["data"]
    names = [k for k in data.keys() if isinstance(data[k], h5py.Group)]
    if filter_key is not None:
        mask_key = f"mask/{filter_key}"
        if mask_key not in handle:
            available = sorted(handle["mask"].keys()) if "mask" in handle else []
            raise DataError(
                f"{file}: missing filter key {mask_key!r} (available: {available or 'none'})"
            )
        mask = handle[mask_key]
        if not isinstance(mask, h5py.Dataset) or mask.dtype.kind not in "SUO":
            raise DataError(f"{file}: {mask_key!r} is not a dataset of demo names (strings)")
        wanted = [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in np.asarray(mask[()]).reshape(-1)
        ]
        missing = [name for name in wanted if name not in names]
        if missing:
            raise DataError(
                f"{file}: {mask_key!r} names demos that are not in 'data': {missing[:5]}"
            )
        names = wanted
    if not names:
        raise DataError(f"{file}: no demos in 'data' (expected groups data/demo_<i>)")
    return sorted(names, key=_demo_sort_key)


def stored_env_args(handle: h5py.File, file: str) -> dict[str, Any] | None:
    """``data.attrs["env_args"]`` of an open file, parsed; ``None`` when the file has none."""
    raw = handle["data"].attrs.get("env_args")
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        return dict(parse_json(text, file, "data.attrs['env_args']"))  # nesting depth checked first
    except (CheckpointError, TypeError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise DataError(f"{file}: data.attrs['env_args'] is not a JSON object ({error})") from error


def _dataset(group: h5py.Group, key: str, file: str, shape: str, hint: str = "") -> np.ndarray:
    """Dataset ``key`` of ``group`` read with :func:`read_array`; missing is a DataError."""
    if key not in group or not isinstance(group[key], h5py.Dataset):
        raise DataError(f"{file}: missing dataset {group.name}/{key} (expected {shape} {key}{hint})")
    return read_array(group[key], file, f"{group.name}/{key}", shape)


def _demo_obs(
    demo: h5py.Group, group_name: str, keys: Sequence[str], file: str, steps: int
) -> np.ndarray:
    group = demo[group_name]
    parts = []
    for key in keys:
        if key not in group:
            raise DataError(
                f"{file}: observation key {key!r} not in {group.name} (available: "
                f"{sorted(group.keys())})"
            )
        array = read_array(group[key], file, f"{group.name}/{key}", "(T, ...)")
        if len(array) != steps:
            raise DataError(
                f"{file}: {group.name}/{key} has {len(array)} rows, expected {steps} "
                f"(the length of {demo.name}/actions)"
            )
        parts.append(flatten_rows(array, f"{file}: {group.name}/{key}"))
    return np.concatenate(parts, axis=1)


def robomimic_layout(
    path: str | os.PathLike[str],
    obs_keys: Sequence[str] | None = DEFAULT_OBS_KEYS,
    filter_key: str | None = None,
) -> RobomimicLayout:
    """The observation layout, demo list and env_args of a robomimic file (no bulk reads)."""
    file = str(path)
    keys = _obs_keys(obs_keys, file)
    with open_robomimic(file) as handle:
        names = _demo_names(handle, file, filter_key)
        first = handle["data"][names[0]]
        if "obs" not in first:
            raise DataError(
                f"{file}: missing group {first.name}/obs (a states-only file: extract "
                "observations first, e.g. with robomimic's dataset_states_to_obs.py)"
            )
        slices: dict[str, tuple[int, int]] = {}
        start = 0
        for key in keys:
            if key not in first["obs"]:
                raise DataError(
                    f"{file}: observation key {key!r} not in {first.name}/obs (available: "
                    f"{sorted(first['obs'].keys())})"
                )
            item = first["obs"][key]
            if not isinstance(item, h5py.Dataset) or item.shape is None or len(item.shape) == 0:
                raise DataError(f"{file}: {item.name} is not an array, expected a dataset of shape (T, ...)")
            width = math.prod(item.shape[1:])
            slices[key] = (start, start + width)
            start += width
        return RobomimicLayout(
            path=Path(file),
            obs_keys=keys,
            obs_slices=slices,
            obs_dim=start,
            demos=tuple(names),
            filter_key=filter_key,
            env_args=stored_env_args(handle, file),
        )


def load_robomimic(
    path: str | os.PathLike[str],
    obs_keys: Sequence[str] | None = DEFAULT_OBS_KEYS,
    filter_key: str | None = None,
) -> Transitions:
    """Read a robomimic hdf5 file into :class:`Transitions`, one episode per demo.

    Args:
        path: the ``.hdf5`` file.
        obs_keys: observation keys, flattened and concatenated in this order (see
            :func:`robomimic_layout` for the resulting columns); ``None`` means
            :data:`DEFAULT_OBS_KEYS`.
        filter_key: a split under ``mask/`` (e.g. ``"train"``, ``"valid"``); ``None`` reads all.

    Returns:
        The transitions, demos in index order. ``next_obs`` is used as stored; a file without
        it gets next observations from ``obs`` within each demo, keeping a terminal last step
        (placeholder next observation) and dropping a non-terminal one.

    Raises:
        DataError: what the hdf5 checks refuse (external storage, virtual datasets, external
            links, sizes the file does not hold: see ``integrations/_hdf5.py``), missing groups,
            datasets or observation keys, data that is not numbers, an empty demo, unknown
            filter key, ``dones`` other than 0/1, or mismatched lengths; the message names the
            file, the key and what was expected.
    """
    file = str(path)
    keys = _obs_keys(obs_keys, file)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    }
    with open_robomimic(file) as handle:
        for name in _demo_names(handle, file, filter_key):
            demo = handle["data"][name]
            actions = flatten_rows(_dataset(demo, "actions", file, "(T, act_dim)"), f"{file}: {demo.name}/actions")
            steps = len(actions)
            if steps == 0:
                raise DataError(f"{file}: {demo.name}/actions is empty, expected at least one step")
            rewards = _dataset(
                demo, "rewards", file, "(T,)", "; extract them with robomimic's dataset_states_to_obs.py"
            ).astype(np.float32).reshape(-1)
            dones = as_bool_flags(_dataset(demo, "dones", file, "(T,)"), f"{demo.name}/dones", file)
            for key, array in (("rewards", rewards), ("dones", dones)):
                if len(array) != steps:
                    raise DataError(
                        f"{file}: {demo.name}/{key} has {len(array)} rows, expected {steps} "
                        f"(the length of {demo.name}/actions)"
                    )
            if "obs" not in demo:
                raise DataError(
                    f"{file}: missing group {demo.name}/obs (a states-only file: extract "
                    "observations first, e.g. with robomimic's dataset_states_to_obs.py)"
                )
            obs = _demo_obs(demo, "obs", keys, file, steps)
            terminals = np.zeros(steps, dtype=bool)
            timeouts = np.zeros(steps, dtype=bool)
            terminals[-1] = dones[-1]
            timeouts[-1] = not dones[-1]
            if "next_obs" in demo:
                next_obs = _demo_obs(demo, "next_obs", keys, file, steps)
                keep = np.ones(steps, dtype=bool)
            else:
                next_obs, terminals, timeouts, keep = derive_next_observations(
                    obs, terminals, timeouts
                )
            parts["observations"].append(obs[keep])
            parts["next_observations"].append(next_obs[keep])
            parts["actions"].append(actions[keep])
            parts["rewards"].append(rewards[keep])
            parts["terminals"].append(terminals[keep])
            parts["timeouts"].append(timeouts[keep])
    try:
        return Transitions(**{k: np.concatenate(v) for k, v in parts.items()})
    except (DataError, ValueError) as error:
        raise DataError(f"{file}: {error}") from error


# ---------------------------------------------------------------------------------- writing
def write_robomimic(
    path: str | os.PathLike[str],
    demos: Sequence[dict[str, Any]],
    env_args: dict[str, Any],
    *,
    masks: dict[str, Iterable[str]] | None = None,
    attrs: dict[str, Any] | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write demonstrations as a robomimic hdf5 file, atomically.

    Args:
        path: output file (its folder must exist).
        demos: one mapping per demo with ``obs`` and ``next_obs`` (``key -> (T, ...)``),
            ``actions``, ``rewards``, ``dones``, optionally ``states`` and ``attrs`` (e.g.
            ``model_file``, ``seed``). Named ``demo_0``, ``demo_1``, ... in order.
        env_args: robomimic's env description (``env_name``, ``type``, ``env_kwargs``, ...),
            stored as JSON in ``data.attrs["env_args"]``.
        masks: splits to store under ``mask/`` (name -> demo names).
        attrs: extra attributes of the ``data`` group.
        compression: h5py compression of the datasets: ``"gzip"``, ``"lzf"``, a gzip level
            ``0``-``9``, or ``None``.

    Returns:
        The output path.

    Raises:
        DataError: no demos, or an unknown ``compression``.
        OutputPathError: the output cannot be written (folder missing or read-only, disk full);
            the message names the output path. Nothing is left behind.
    """
    if not demos:
        raise DataError(f"{path}: no demos to write, expected at least one")
    check_compression(compression)
    with atomic_output(path) as tmp, writing_hdf5(path):
        with h5py.File(tmp, "w") as handle:
            data = handle.create_group("data")
            total = 0
            for index, demo in enumerate(demos):
                group = data.create_group(f"demo_{index}")
                steps = len(demo["actions"])
                for key in ("actions", "rewards", "dones", "states"):
                    if key in demo:
                        group.create_dataset(key, data=np.asarray(demo[key]), compression=compression)
                for obs_group in ("obs", "next_obs"):
                    if obs_group in demo:
                        sub = group.create_group(obs_group)
                        for key, value in demo[obs_group].items():
                            sub.create_dataset(key, data=np.asarray(value), compression=compression)
                group.attrs["num_samples"] = steps
                for key, value in (demo.get("attrs") or {}).items():
                    group.attrs[key] = value
                total += steps
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps(env_args)
            for key, value in (attrs or {}).items():
                data.attrs[key] = value
            if masks:
                mask = handle.create_group("mask")
                for name, members in masks.items():
                    mask.create_dataset(name, data=np.array([m.encode("utf-8") for m in members], dtype="S"))
    return Path(path)


def write_relabeled_robomimic(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    quantizer: Any,
    *,
    obs_keys: Sequence[str] | None = DEFAULT_OBS_KEYS,
    quantizer_path: str | os.PathLike[str] | None = None,
    codes_key: str = CODES_KEY,
    batch_size: int = 8192,
) -> Path:
    """Copy a robomimic file, adding every demo's action codes; nothing else changes.

    Every ``data/demo_<i>`` gains a dataset ``codes_key`` (``(T,)`` int64, attrs ``n_codes``)
    holding ``quantizer.encode(obs_t, action_t)``, where ``obs_t`` concatenates ``obs_keys`` in
    order. ``data`` gains the attrs ``saq_quantizer`` (JSON identity of the quantizer: class,
    ``K``, shapes, weight hash, checkpoint file and hash), ``saq_obs_keys`` (JSON list),
    ``saq_n_codes`` and ``saq_codes_key``. Every original group, dataset and attribute keeps its
    values, so robomimic's loaders (which read only the keys they are asked for) still read the
    copy, and asking for ``codes_key`` gives the codes. The source is never opened for writing;
    the copy appears atomically at ``dst``.

    Args:
        src: the robomimic file.
        dst: the output file (must differ from ``src``; its folder must exist).
        quantizer: anything with ``encode(obs, actions)`` and ``n`` (e.g. a fitted
            :class:`~saq_wrappers.vqvae.VQVAEQuantizer`), fitted on observations in the
            ``obs_keys`` order.
        obs_keys: observation keys in the order the quantizer expects.
        quantizer_path: the quantizer's checkpoint, recorded with its sha256.
        codes_key: name of the new dataset in every demo.
        batch_size: rows per ``encode`` call.

    Returns:
        The output path.

    Raises:
        OutputPathError: the output cannot be written (folder missing or read-only, disk full);
            the message names the output path. Nothing is left behind.
    """
    source = Path(src)
    target = check_output_path(dst)
    file = str(source)
    check_regular_file(file, "hdf5 file", "a robomimic .hdf5 dataset")
    if target.exists() and target.resolve() == source.resolve():
        raise DataError(f"{file}: dst is the source file; the input is never modified, choose another dst")
    keys = _obs_keys(obs_keys, file)
    k = int(quantizer.n)
    # Validate the whole source (keys, lengths) before writing anything.
    with open_robomimic(file) as handle:
        names = _demo_names(handle, file, None)
        for name in names:
            demo = handle["data"][name]
            if codes_key in demo:
                raise DataError(
                    f"{file}: {demo.name}/{codes_key} already exists (already relabeled?); "
                    "expected a file without codes or another codes_key"
                )
    identity = quantizer_identity(quantizer, quantizer_path)
    with atomic_output(target) as tmp, writing_hdf5(target):
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as handle:
            for name in names:
                demo = handle["data"][name]
                actions = flatten_rows(
                    _dataset(demo, "actions", file, "(T, act_dim)"), f"{file}: {demo.name}/actions"
                )
                if "obs" not in demo:
                    raise DataError(f"{file}: missing group {demo.name}/obs (expected observations)")
                obs = _demo_obs(demo, "obs", keys, file, len(actions))
                codes = encode_in_batches(quantizer, obs, actions, batch_size)
                dataset = demo.create_dataset(codes_key, data=codes)
                dataset.attrs["n_codes"] = k
            data = handle["data"]
            data.attrs["saq_quantizer"] = json.dumps(identity, sort_keys=True)  # stable across runs
            data.attrs["saq_obs_keys"] = json.dumps(list(keys))
            data.attrs["saq_n_codes"] = k
            data.attrs["saq_codes_key"] = codes_key
    return target
