"""Loading Stable-Baselines3 model files (``.zip``) of continuous-control agents.

Any SB3 model file (SAC, TD3, DDPG, PPO, A2C; TQC, TRPO, CrossQ from sb3-contrib), also files
saved by older SB3 / gym versions (such as the RL Zoo's), is loaded for a given Gymnasium env
and turned into a single-observation policy (:func:`rollout_policy`) that the rollouts of
:mod:`saq_wrappers.rollouts` accept. ``saq data generate`` builds its datasets from these.

What runs when a file is loaded. An SB3 file is a zip of a ``data`` JSON entry and ``.pth``
tensor entries. SB3 stores the values JSON cannot hold (spaces, schedules, classes, numpy
values, ``policy_kwargs`` holding a class) in ``data`` as base64 pickles, which its loader would
unpickle, and a pickle can run any code. :func:`load_sb3_model` never lets SB3 unpickle one:

* the spaces become the env's (after their stored shapes are checked), the schedules constant
  stubs, and the state of the training run (last observations, episode buffers, action noise)
  ``None``, as in a fresh model: acting needs none of them;
* every other pickled entry (the policy class, ``policy_kwargs``, the buffer classes,
  ``train_freq``, numpy scalars) is unpickled here by an unpickler that resolves only the
  classes such entries name (SB3 / sb3-contrib policies, feature extractors, buffers and
  enums, torch layers and optimizers, numpy arrays and scalars), calls only numpy's rebuilders
  and SB3's enums and ``TrainFreq``, and sets the state of numpy objects only; a pickle doing
  anything else is refused with a :class:`~saq_wrappers.errors.DataError` before it acts,
  unless the caller passes ``trust_pickle=True`` for a file it trusts;
* the ``.pth`` entries (weights, optimizer states) are read by SB3 with
  ``torch.load(..., weights_only=True)``, torch's restricted unpickler for tensors. SB3 2.4-2.7
  read them with ``weights_only=False`` (any pickle runs), and torch's weights-only unpickler had
  code-execution bugs before torch 2.10 (CVE-2025-32434 before 2.6, CVE-2026-24747 before
  2.10): with such versions installed every file is refused unless ``trust_pickle=True``.

The file is read once, checked, and the same bytes are handed to SB3.
"""

from __future__ import annotations

import base64
import enum
import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from sb3_contrib import TQC, TRPO, CrossQ
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.type_aliases import TrainFreq
from stable_baselines3.common.utils import ConstantSchedule

from saq_wrappers.errors import CheckpointError, DataError, SAQError
from saq_wrappers.io import parse_json
from saq_wrappers.rollouts import StepPolicy

__all__ = ["detect_algorithm", "load_sb3_model", "rollout_policy"]

#: SB3 / sb3-contrib algorithm module (package, module) -> algorithm class.
_ALGORITHMS: dict[tuple[str, str], type[BaseAlgorithm]] = {
    ("stable_baselines3", "sac"): SAC,
    ("stable_baselines3", "td3"): TD3,
    ("stable_baselines3", "ddpg"): DDPG,
    ("stable_baselines3", "ppo"): PPO,
    ("stable_baselines3", "a2c"): A2C,
    ("sb3_contrib", "tqc"): TQC,
    ("sb3_contrib", "trpo"): TRPO,
    ("sb3_contrib", "crossq"): CrossQ,
}
_NAMES = sorted(algorithm.__name__ for algorithm in _ALGORITHMS.values())

#: The first releases whose loading of the ``.pth`` entries runs no code from the file: SB3 2.8
#: went back to ``torch.load(weights_only=True)``; torch 2.10 fixed the last known way out of it.
_SAFE_TENSOR_LOADING = {"stable-baselines3": (2, 8), "torch": (2, 10)}

#: The key SB3 marks a pickled ``data`` entry with (``save_util.data_to_json``).
_PICKLED = ":serialized:"

#: Pickled entries replaced, never unpickled: schedules (acting uses no learning rate or clip
#: range) and the state of the training run, which a fresh model also starts as ``None``.
_STUBS: dict[str, Any] = {
    "lr_schedule": ConstantSchedule(0.0),
    "learning_rate": ConstantSchedule(0.0),
    "clip_range": ConstantSchedule(0.0),
    "clip_range_vf": ConstantSchedule(0.0),
    "action_noise": None,
    "_last_obs": None,
    "_last_original_obs": None,
    "_last_episode_starts": None,
    "ep_info_buffer": None,
    "ep_success_buffer": None,
}

#: Packages whose classes a pickled entry may name (checked before anything is imported).
_CLASS_PACKAGES = ("stable_baselines3.", "sb3_contrib.", "torch.nn.modules.", "torch.optim.")
#: What those classes must be: policies, feature extractors and layers (``nn.Module``),
#: optimizers, buffers, and SB3's enums and ``TrainFreq``.
_CLASS_BASES: tuple[type, ...] = (torch.nn.Module, torch.optim.Optimizer, BaseBuffer, enum.Enum, TrainFreq)
#: The numpy functions that rebuild arrays, scalars and dtypes (numpy 1 and 2 spellings).
_NUMPY_GLOBALS = frozenset(
    {("numpy", "dtype"), ("numpy", "ndarray")}
    | {(f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("scalar", "_reconstruct")}
    | {(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")}
)


class _ModelEntryUnpickler(pickle._Unpickler):
    """Unpickles one ``data`` entry with Python's "Restricting Globals", tightened.

    A pickle acts only through the names it resolves and the opcodes that call them or set
    state. Here (pickle's Python implementation, whose opcodes can be guarded):

    * the only names resolved are those :data:`_NUMPY_GLOBALS` lists and the classes deriving
      from :data:`_CLASS_BASES` defined at the top of a module of :data:`_CLASS_PACKAGES`, so a
      payload naming ``os.system``, ``builtins.eval``, cloudpickle's function rebuilders or an
      SB3 function is refused before anything is imported or called;
    * the only things called (``REDUCE``, ``NEWOBJ``) are numpy's rebuilders of arrays, scalars
      and dtypes and SB3's enums and ``TrainFreq``: policies, layers, optimizers and buffers are
      values in these entries, never built from the file's arguments;
    * the only objects given state (``BUILD``) are numpy arrays and dtypes, so a payload cannot
      set attributes of a class or of a shared enum member in this process.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, payload: bytes, file: Path, key: str) -> None:
        super().__init__(io.BytesIO(payload))
        self._file = file
        self._key = key
        self._callables: list[Any] = []

    def _refused(self, what: str) -> DataError:
        return DataError(
            f"{self._file}: the model's {self._key!r} entry is a pickle {what}, which an SB3 model file "
            f"does not need (its pickles name SB3 / sb3-contrib policies, feature extractors, buffers, "
            f"torch layers and optimizers, numpy values); refused without running it. Pass "
            f"trust_pickle=True (--trust-model-pickle) only for a file you trust"
        )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            found = super().find_class(module, name)
            if found is not np.ndarray:  # only ever the type argument of _reconstruct
                self._callables.append(found)
            return found
        if module.startswith(_CLASS_PACKAGES) and name.isidentifier():  # no attribute path is walked
            found = super().find_class(module, name)
            # Defined in that module, as pickle names classes, not merely imported there.
            defined_there = getattr(found, "__module__", None) == module and getattr(found, "__qualname__", None) == name
            if defined_there and isinstance(found, type) and issubclass(found, _CLASS_BASES):
                if issubclass(found, (enum.Enum, TrainFreq)):  # pickled as calls: Unit("step"), TrainFreq(1, unit)
                    self._callables.append(found)
                return found
        raise self._refused(f"naming {module}.{name}")

    def _check_call(self, position: int) -> None:
        """The callable at ``stack[position]`` must be one :meth:`find_class` allowed to be called."""
        target = self.stack[position]
        if not any(target is allowed for allowed in self._callables):
            raise self._refused(f"calling {getattr(target, '__qualname__', type(target).__name__)}")

    def _load_reduce(self) -> None:
        self._check_call(-2)
        pickle._Unpickler.load_reduce(self)

    def _load_newobj(self) -> None:
        self._check_call(-2)
        pickle._Unpickler.load_newobj(self)

    def _load_newobj_ex(self) -> None:
        self._check_call(-3)
        pickle._Unpickler.load_newobj_ex(self)

    def _load_build(self) -> None:
        target = self.stack[-2]
        if not isinstance(target, (np.ndarray, np.dtype)):
            raise self._refused(f"setting the state of {getattr(target, '__qualname__', type(target).__name__)}")
        pickle._Unpickler.load_build(self)

    def _load_old_instance(self) -> None:
        raise self._refused("building an object with a protocol 0/1 opcode (INST, OBJ)")

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.INST[0]] = _load_old_instance
    dispatch[pickle.OBJ[0]] = _load_old_instance


def _unpickle_entry(file: Path, key: str, entry: dict[str, Any]) -> Any:
    """The value of a pickled ``data`` entry, through :class:`_ModelEntryUnpickler`."""
    try:
        payload = base64.b64decode(str(entry[_PICKLED]).encode(), validate=True)
        return _ModelEntryUnpickler(payload, file, key).load()
    except SAQError:
        raise
    except Exception as error:  # noqa: BLE001 - bad base64 or pickle data, or an allowed class refusing its arguments
        raise DataError(f"{file}: the model's {key!r} entry is not a readable pickle ({error})") from error


def _check_tensor_loading(file: Path) -> None:
    """Refuse to load when the installed SB3 or torch would read the ``.pth`` entries with a
    ``torch.load`` that can run code from the file (see :data:`_SAFE_TENSOR_LOADING`)."""
    installed = {"stable-baselines3": str(stable_baselines3.__version__), "torch": str(torch.__version__)}
    old = []
    for package, first_safe in _SAFE_TENSOR_LOADING.items():
        match = re.match(r"(\d+)\.(\d+)", installed[package])
        if match is None or (int(match[1]), int(match[2])) < first_safe:
            old.append(f"{package} {installed[package]} (safe from {'.'.join(map(str, first_safe))})")
    if old:
        raise DataError(
            f"{file}: refused: with {', '.join(old)} installed, the model's tensor entries would be read "
            f"by a torch.load that can run code from the file; upgrade, or pass trust_pickle=True "
            f"(--trust-model-pickle) only for a file you trust"
        )


def _read_model(file: Path) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and its parsed ``data`` JSON entry (read from those same bytes)."""
    try:
        blob = file.read_bytes()
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            # the nesting depth is checked before parsing: json recurses once per level
            data = parse_json(archive.read("data").decode("utf-8"), file, "JSON in its 'data' entry")
    except (zipfile.BadZipFile, KeyError, CheckpointError, UnicodeDecodeError, OSError) as error:
        raise DataError(
            f"{file}: not a Stable-Baselines3 model file (expected a zip with a 'data' JSON "
            f"entry; {error})"
        ) from error
    if not isinstance(data, dict):
        raise DataError(f"{file}: the 'data' entry holds a {type(data).__name__}, expected a JSON object")
    return blob, data


def _algorithm_name(file: Path, data: dict[str, Any]) -> str:
    """The algorithm named by ``policy_class``'s module in the parsed ``data`` entry."""
    policy_class = data.get("policy_class")
    module = str(policy_class.get("__module__", "")) if isinstance(policy_class, dict) else ""
    parts = module.split(".")
    algorithm = _ALGORITHMS.get((parts[0], parts[1])) if len(parts) > 1 else None
    name: str | None = algorithm.__name__ if algorithm is not None else None
    if name is None and module == "stable_baselines3.common.policies":
        # On-policy algorithms share ActorCriticPolicy; their saved hyperparameters differ.
        if "clip_range" in data:
            name = "PPO"
        elif "cg_max_steps" in data:
            name = "TRPO"
        elif "gae_lambda" in data:
            name = "A2C"
    if name is None:
        raise DataError(
            f"{file}: cannot tell the algorithm from policy_class module {module!r}: pass algo= "
            f"(one of {_NAMES})"
        )
    return name


def detect_algorithm(path: str | os.PathLike[str]) -> str:
    """The SB3 algorithm of a model file (``"SAC"``, ``"TQC"``, ...).

    Read from the file's JSON entry only, so nothing is unpickled before the algorithm is known.
    """
    file = Path(path)
    return _algorithm_name(file, _read_model(file)[1])


def _algorithm_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 / sb3-contrib class named ``name`` (case-insensitive)."""
    for algorithm in _ALGORITHMS.values():
        if algorithm.__name__.lower() == name.lower():
            return algorithm
    raise DataError(f"unknown algorithm {name!r}: expected one of {_NAMES}")


def _check_spaces(file: Path, data: dict[str, Any], env: gym.Env[Any, Any]) -> None:
    """The stored space shapes (readable in the JSON next to the pickles) must be ``env``'s."""
    for role, space in (("observation_space", env.observation_space), ("action_space", env.action_space)):
        entry = data.get(role)
        stored = entry.get("shape", entry.get("_shape")) if isinstance(entry, dict) else None  # gym / gymnasium
        shape = tuple(stored) if isinstance(stored, list) else stored
        if shape is not None and shape != tuple(space.shape):
            raise DataError(
                f"{file}: the model's {role} has shape {shape}, the env's is "
                f"{tuple(space.shape)} (expected the env the model was trained on)"
            )
    if not isinstance(env.action_space, gym.spaces.Box):
        raise DataError(f"env action space {env.action_space} is not a Box: expected continuous actions")


def _custom_objects(file: Path, data: dict[str, Any], env: gym.Env[Any, Any], trust_pickle: bool) -> dict[str, Any]:
    """A value for every pickled ``data`` entry, so SB3's ``load`` unpickles none of them
    (``save_util.json_to_data`` takes a ``custom_objects`` value instead of unpickling); with
    ``trust_pickle`` only the spaces and :data:`_STUBS`, and SB3 unpickles the rest."""
    custom: dict[str, Any] = {"observation_space": env.observation_space, "action_space": env.action_space}
    for key, entry in data.items():
        if key in custom or not (isinstance(entry, dict) and _PICKLED in entry):
            continue
        if key in _STUBS:
            custom[key] = _STUBS[key]
        elif not trust_pickle:
            custom[key] = _unpickle_entry(file, key, entry)
    return custom


def load_sb3_model(
    path: str | os.PathLike[str],
    env: gym.Env[Any, Any],
    algo: str | None = None,
    *,
    trust_pickle: bool = False,
) -> BaseAlgorithm:
    """Load an SB3 model file for ``env`` to act in it, also files saved by older SB3 versions.

    No pickle in the file runs code (see the module docstring): the spaces become ``env``'s
    (their stored shapes are checked first), schedules and training-run state are stubbed, and
    the other pickled entries are unpickled with an allowlist of classes; a file naming anything
    else, or any file when the installed SB3 / torch would read its tensors unsafely, raises
    :class:`~saq_wrappers.errors.DataError`. ``trust_pickle=True`` lets SB3 unpickle those
    entries as it does by default: only for files you trust.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such SB3 model file")
    if not trust_pickle:
        _check_tensor_loading(file)
    blob, data = _read_model(file)
    name = algo or _algorithm_name(file, data)
    algorithm = _algorithm_class(name)
    _check_spaces(file, data, env)
    custom_objects = _custom_objects(file, data, env, trust_pickle)
    try:
        return algorithm.load(io.BytesIO(blob), device="cpu", custom_objects=custom_objects)
    except SAQError:
        raise
    except Exception as error:  # noqa: BLE001 - SB3 raises many kinds
        raise DataError(f"{file}: Stable-Baselines3 could not load it as {name} ({error})") from error


def rollout_policy(model: BaseAlgorithm, deterministic: bool = False) -> StepPolicy:
    """The SB3 model's policy as ``obs -> action``, one observation at a time, for
    :func:`saq_wrappers.rollouts.rollout`.

    Stochastic by default: D4RL sampled its expert datasets from the SAC agents' own stochastic
    policies, and its ``ref_max_score`` from their deterministic ones (``deterministic=True``).
    """

    def act(observation: np.ndarray) -> np.ndarray:
        action, _ = model.predict(observation, deterministic=deterministic)
        return np.asarray(action)

    return act
