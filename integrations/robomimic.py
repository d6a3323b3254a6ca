"""robomimic hdf5 datasets in and out, and their environments rebuilt with robosuite 1.5.1.

The ``robomimic`` package is not needed (from the registry it needs torchvision and
``mujoco_py``): the file format is read and written with ``h5py``, and environments are rebuilt
from ``env_args`` with ``robosuite`` directly. The format::

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

Example:
    >>> from saq_wrappers.integrations.robomimic import load_robomimic     # doctest: +SKIP
    >>> data = load_robomimic("lift/ph/low_dim_v141.hdf5", filter_key="train")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import gymnasium as gym
import h5py
import numpy as np

from saq_wrappers.errors import DataError
from saq_wrappers.io import atomic_output, check_output_path
from saq_wrappers.transitions import Transitions

from ._common import (
    as_bool_flags,
    derive_next_observations,
    encode_in_batches,
    flatten_rows,
    quantizer_identity,
    to_json,
)

__all__ = [
    "CODES_KEY",
    "DEFAULT_HORIZONS",
    "DEFAULT_OBS_KEYS",
    "RobomimicLayout",
    "RobosuiteEnv",
    "convert_env_args",
    "load_robomimic",
    "make_robomimic_env",
    "read_env_args",
    "robomimic_layout",
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

#: Evaluation horizons robomimic uses (episodes also end on success).
DEFAULT_HORIZONS: dict[str, int] = {
    "Lift": 400,
    "PickPlaceCan": 400,
    "NutAssemblySquare": 400,
    "ToolHang": 700,
    "TwoArmTransport": 700,
}

#: robomimic's env type of robosuite envs in ``env_args["type"]``.
ROBOSUITE_ENV_TYPE = 1


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


def _open(path: str | os.PathLike[str]) -> h5py.File:
    file = str(path)
    if not Path(file).is_file():
        raise DataError(f"{file}: no such file (expected a robomimic .hdf5 dataset)")
    try:
        return h5py.File(file, "r")
    except OSError as error:
        raise DataError(f"{file}: not a readable hdf5 file ({error})") from error


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
        wanted = [
            v.decode("utf-8") if isinstance(v, bytes) else str(v)
            for v in np.asarray(handle[mask_key][()]).reshape(-1)
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


def _env_args(handle: h5py.File, file: str) -> dict[str, Any] | None:
    raw = handle["data"].attrs.get("env_args")
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        return dict(json.loads(str(raw)))
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise DataError(f"{file}: data.attrs['env_args'] is not a JSON object ({error})") from error


def _dataset(group: h5py.Group, key: str, file: str, expected: str) -> np.ndarray:
    if key not in group or not isinstance(group[key], h5py.Dataset):
        raise DataError(f"{file}: missing dataset {group.name}/{key} (expected {expected})")
    return group[key][()]


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
        array = group[key][()]
        if len(array) != steps:
            raise DataError(
                f"{file}: {group.name}/{key} has {len(array)} rows, expected {steps} "
                f"(the length of {demo.name}/actions)"
            )
        parts.append(flatten_rows(array))
    return np.concatenate(parts, axis=1)


def robomimic_layout(
    path: str | os.PathLike[str],
    obs_keys: Sequence[str] = DEFAULT_OBS_KEYS,
    filter_key: str | None = None,
) -> RobomimicLayout:
    """The observation layout, demo list and env_args of a robomimic file (no bulk reads)."""
    file = str(path)
    keys = tuple(obs_keys)
    if not keys:
        raise DataError(f"{file}: obs_keys is empty, expected at least one observation key")
    with _open(file) as handle:
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
            width = int(np.prod(first["obs"][key].shape[1:], dtype=np.int64))
            slices[key] = (start, start + width)
            start += width
        return RobomimicLayout(
            path=Path(file),
            obs_keys=keys,
            obs_slices=slices,
            obs_dim=start,
            demos=tuple(names),
            filter_key=filter_key,
            env_args=_env_args(handle, file),
        )


def load_robomimic(
    path: str | os.PathLike[str],
    obs_keys: Sequence[str] = DEFAULT_OBS_KEYS,
    filter_key: str | None = None,
) -> Transitions:
    """Read a robomimic hdf5 file into :class:`Transitions`, one episode per demo.

    Args:
        path: the ``.hdf5`` file.
        obs_keys: observation keys, flattened and concatenated in this order (see
            :func:`robomimic_layout` for the resulting columns).
        filter_key: a split under ``mask/`` (e.g. ``"train"``, ``"valid"``); ``None`` reads all.

    Returns:
        The transitions, demos in index order. ``next_obs`` is used as stored; a file without
        it gets next observations from ``obs`` within each demo, keeping a terminal last step
        (placeholder next observation) and dropping a non-terminal one.

    Raises:
        DataError: missing groups, datasets or observation keys, unknown filter key, or
            mismatched lengths; the message names the file, the key and what was expected.
    """
    file = str(path)
    keys = tuple(obs_keys)
    if not keys:
        raise DataError(f"{file}: obs_keys is empty, expected at least one observation key")
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    }
    with _open(file) as handle:
        for name in _demo_names(handle, file, filter_key):
            demo = handle["data"][name]
            actions = flatten_rows(_dataset(demo, "actions", file, "(T, act_dim) actions"))
            steps = len(actions)
            if steps == 0:
                raise DataError(f"{file}: {demo.name}/actions is empty, expected at least one step")
            rewards = np.asarray(
                _dataset(demo, "rewards", file, "(T,) rewards; extract them with robomimic's "
                         "dataset_states_to_obs.py"),
                dtype=np.float32,
            ).reshape(-1)
            dones = as_bool_flags(
                _dataset(demo, "dones", file, "(T,) dones"), file, f"{demo.name}/dones"
            )
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
        compression: h5py compression of the datasets.

    Returns:
        The output path.
    """
    if not demos:
        raise DataError(f"{path}: no demos to write, expected at least one")
    with atomic_output(path) as tmp:
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
    obs_keys: Sequence[str] = DEFAULT_OBS_KEYS,
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
    """
    source = Path(src)
    target = check_output_path(dst)
    file = str(source)
    if not source.is_file():
        raise DataError(f"{file}: no such file (expected a robomimic .hdf5 dataset)")
    if target.exists() and target.resolve() == source.resolve():
        raise DataError(f"{file}: dst is the source file; the input is never modified, choose another dst")
    keys = tuple(obs_keys)
    k = int(quantizer.n)
    # Validate the whole source (keys, lengths) before writing anything.
    with _open(file) as handle:
        names = _demo_names(handle, file, None)
        for name in names:
            demo = handle["data"][name]
            if codes_key in demo:
                raise DataError(
                    f"{file}: {demo.name}/{codes_key} already exists (already relabeled?); "
                    "expected a file without codes or another codes_key"
                )
    identity = quantizer_identity(quantizer, quantizer_path)
    with atomic_output(target) as tmp:
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as handle:
            for name in names:
                demo = handle["data"][name]
                actions = flatten_rows(_dataset(demo, "actions", file, "(T, act_dim) actions"))
                if "obs" not in demo:
                    raise DataError(f"{file}: missing group {demo.name}/obs (expected observations)")
                obs = _demo_obs(demo, "obs", keys, file, len(actions))
                codes = encode_in_batches(quantizer, obs, actions, batch_size)
                dataset = demo.create_dataset(codes_key, data=codes)
                dataset.attrs["n_codes"] = k
            data = handle["data"]
            data.attrs["saq_quantizer"] = to_json(identity)
            data.attrs["saq_obs_keys"] = json.dumps(list(keys))
            data.attrs["saq_n_codes"] = k
            data.attrs["saq_codes_key"] = codes_key
    return target


# ---------------------------------------------------------------------------------- envs
def read_env_args(source: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """``env_args`` from a dict, a JSON string, or a robomimic file's ``data.attrs``."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    text = os.fspath(source)
    if Path(text).is_file():
        with _open(text) as handle:
            if "data" not in handle:
                raise DataError(f"{text}: missing group 'data' (expected data.attrs['env_args'])")
            args = _env_args(handle, text)
        if args is None:
            raise DataError(f"{text}: missing data.attrs['env_args'] (expected a JSON env description)")
        return args
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"env_args {text[:80]!r} is neither a file nor a JSON object ({error})"
        ) from error
    if not isinstance(value, dict):
        raise DataError(f"env_args must be a JSON object, got {type(value).__name__}")
    return value


_PART_CONTROLLERS = ("JOINT_VELOCITY", "JOINT_TORQUE", "JOINT_POSITION", "OSC_POSITION", "OSC_POSE", "IK_POSE")


def _convert_part_controller(config: dict[str, Any]) -> dict[str, Any]:
    """A robosuite <= 1.4 arm controller config in robosuite 1.5 terms."""
    part = copy.deepcopy(config)
    renames = {"damping": "damping_ratio", "damping_limits": "damping_ratio_limits"}
    for old, new in renames.items():
        if old in part:
            part.setdefault(new, part.pop(old))
    if "control_delta" in part:
        part.setdefault("input_type", "delta" if part.pop("control_delta") else "absolute")
    # robosuite <= 1.4 interpreted OSC deltas in the world frame.
    if part.get("type", "").startswith("OSC"):
        part.setdefault("input_ref_frame", "world")
    part.setdefault("gripper", {"type": "GRIP"})
    return part


def convert_env_args(env_args: dict[str, Any]) -> dict[str, Any]:
    """robomimic ``env_args`` ready for robosuite 1.5.1 (a converted copy; input unchanged).

    v1.4-style arm controller configs (a single ``{"type": "OSC_POSE", ...}``) become composite
    ``{"type": "BASIC", "body_parts": {"right": ...}}`` configs (``left`` too for two-arm envs),
    with renamed keys (``damping`` -> ``damping_ratio``, ``control_delta`` -> ``input_type``)
    and world-frame OSC inputs; data recorded with robosuite < 1.5 also gets
    ``lite_physics=False`` (robosuite's documented backward-compatibility setting).
    """
    args = copy.deepcopy(env_args)
    kwargs = dict(args.get("env_kwargs") or {})
    controller = kwargs.get("controller_configs")
    if isinstance(controller, dict) and "body_parts" not in controller:
        if controller.get("type") not in _PART_CONTROLLERS:
            raise DataError(
                f"env_args: controller_configs type {controller.get('type')!r} is neither a "
                f"robosuite 1.5 composite config (with 'body_parts') nor one of {_PART_CONTROLLERS}"
            )
        part = _convert_part_controller(controller)
        robots = kwargs.get("robots", ["Panda"])
        robots = [robots] if isinstance(robots, str) else list(robots)
        arms = ["right", "left"] if args.get("env_name", "").startswith("TwoArm") and len(robots) == 1 else ["right"]
        kwargs["controller_configs"] = {
            "type": "BASIC",
            "body_parts": {arm: copy.deepcopy(part) for arm in arms},
        }
    version = str(args.get("env_version", ""))
    match = re.match(r"(\d+)\.(\d+)", version)
    if match and (int(match.group(1)), int(match.group(2))) < (1, 5):
        kwargs.setdefault("lite_physics", False)
    args["env_kwargs"] = kwargs
    return args


class RobosuiteEnv(gym.Env[np.ndarray, np.ndarray]):
    """A robosuite env as a Gymnasium env with flat observations in a fixed key order.

    Observations concatenate ``obs_keys`` (robomimic names; ``"object"`` is robosuite's
    ``"object-state"``). Episodes terminate on task success (``info["is_success"]``, robomimic's
    convention) and are truncated after ``horizon`` steps. ``reset(seed=s)`` seeds robosuite's
    global-numpy initial-state sampling and restores the global state afterwards.
    :meth:`get_state` / :meth:`reset_to` save and restore the MuJoCo state for replay.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        env: Any,
        obs_keys: Sequence[str] = DEFAULT_OBS_KEYS,
        horizon: int = 400,
        terminate_on_success: bool = True,
        env_args: dict[str, Any] | None = None,
    ) -> None:
        self.env = env
        self.obs_keys = tuple(obs_keys)
        self.horizon = int(horizon)
        self.terminate_on_success = bool(terminate_on_success)
        self.env_args = env_args
        low, high = env.action_spec
        self.action_space = gym.spaces.Box(
            np.asarray(low, dtype=np.float32), np.asarray(high, dtype=np.float32), dtype=np.float32
        )
        first = self._flatten(env.reset())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, first.shape, np.float32)
        self._steps = 0

    def _flatten(self, observation: dict[str, Any]) -> np.ndarray:
        parts = []
        for key in self.obs_keys:
            name = "object-state" if key == "object" and key not in observation else key
            if name not in observation:
                raise DataError(
                    f"robosuite env {type(self.env).__name__}: observation key {key!r} not "
                    f"produced (available: {sorted(observation)})"
                )
            parts.append(np.asarray(observation[name], dtype=np.float32).reshape(-1))
        return np.concatenate(parts)

    def observation_dict(self) -> dict[str, np.ndarray]:
        """The current observation by robomimic key (``object`` for ``object-state``)."""
        raw = self.env._get_observations(force_update=True)
        out = {}
        for key in self.obs_keys:
            name = "object-state" if key == "object" and key not in raw else key
            out[key] = np.asarray(raw[name]).copy()
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            observation = self.env.reset()
        else:
            saved = np.random.get_state()
            np.random.seed(seed)
            try:
                observation = self.env.reset()
            finally:
                np.random.set_state(saved)
        self._steps = 0
        return self._flatten(observation), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, reward, _, info = self.env.step(np.asarray(action, dtype=np.float64))
        self._steps += 1
        success = bool(self.env._check_success())
        info = dict(info)
        info["is_success"] = success
        terminated = success and self.terminate_on_success
        truncated = self._steps >= self.horizon and not terminated
        return self._flatten(observation), float(reward), terminated, truncated, info

    def get_state(self) -> dict[str, Any]:
        """``{"states": flat MuJoCo state, "model": MJCF xml}`` (robomimic's ``states`` and
        ``model_file``)."""
        return {
            "states": np.asarray(self.env.sim.get_state().flatten()),
            "model": self.env.sim.model.get_xml(),
        }

    def reset_to(self, state: dict[str, Any]) -> np.ndarray:
        """Restore a saved state (``model`` xml optional, ``states`` flat) and return the
        observation, as robomimic's replay does."""
        if "model" in state:
            self.env.reset()
            self.env.reset_from_xml_string(state["model"])
            self.env.sim.reset()
        self.env.sim.set_state_from_flattened(np.asarray(state["states"]))
        self.env.sim.forward()
        self._steps = 0
        return self._flatten(self.env._get_observations(force_update=True))

    def close(self) -> None:
        self.env.close()


def make_robomimic_env(
    env_args: str | os.PathLike[str] | dict[str, Any],
    obs_keys: Sequence[str] = DEFAULT_OBS_KEYS,
    *,
    horizon: int | None = None,
    terminate_on_success: bool = True,
    **overrides: Any,
) -> RobosuiteEnv:
    """Rebuild a robomimic dataset's env with robosuite 1.5.1, as a Gymnasium env.

    Args:
        env_args: the dataset's ``env_args`` (dict, JSON string, or a robomimic file to read
            them from). v1.4-style controller configs are converted (:func:`convert_env_args`).
        obs_keys: observation keys, concatenated in this order (the dataset's order).
        horizon: episode length limit (default :data:`DEFAULT_HORIZONS` for the task, else 500).
        terminate_on_success: end episodes on success (robomimic's convention).
        **overrides: env kwargs that replace the stored ones (e.g. ``has_offscreen_renderer``).

    Raises:
        DataError: not a robosuite env (``type`` other than 1), an env name robosuite does not
            know, or kwargs robosuite rejects.
    """
    args = convert_env_args(read_env_args(env_args))
    env_type = args.get("type", ROBOSUITE_ENV_TYPE)
    if env_type != ROBOSUITE_ENV_TYPE:
        raise DataError(
            f"env_args: 'type' is {env_type!r}, expected {ROBOSUITE_ENV_TYPE} (robosuite); other "
            "robomimic env types (gym, iGibson) are not supported here"
        )
    import robosuite

    name = args.get("env_name")
    known = sorted(robosuite.ALL_ENVIRONMENTS)
    if name not in robosuite.ALL_ENVIRONMENTS:
        raise DataError(
            f"env_args: 'env_name' is {name!r}, which robosuite {robosuite.__version__} does not "
            f"know (expected one of: {', '.join(known)})"
        )
    kwargs = dict(args["env_kwargs"])
    kwargs.update(
        has_renderer=False,
        has_offscreen_renderer=bool(kwargs.get("use_camera_obs", False)),
        ignore_done=True,
        use_object_obs=True,
    )
    kwargs.setdefault("use_camera_obs", False)
    kwargs.update(overrides)
    from robosuite.environments.base import REGISTERED_ENVS

    accepted = set(inspect.signature(REGISTERED_ENVS[name].__init__).parameters)
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        warnings.warn(
            f"env_args: dropping env_kwargs robosuite {robosuite.__version__}'s {name} does not "
            f"accept: {unknown}",
            stacklevel=2,
        )
        for key in unknown:
            kwargs.pop(key)
    try:
        env = robosuite.make(name, **kwargs)
    except Exception as error:  # noqa: BLE001 - robosuite raises many kinds
        raise DataError(f"env_args: robosuite.make({name!r}, ...) failed: {error}") from error
    return RobosuiteEnv(
        env,
        obs_keys=obs_keys,
        horizon=horizon or DEFAULT_HORIZONS.get(name, 500),
        terminate_on_success=terminate_on_success,
        env_args=args,
    )
