"""robomimic ``env_args`` read from anywhere and converted to robosuite 1.5.1's terms.

robomimic stores how to rebuild a dataset's env as ``data.attrs["env_args"]`` (env name, env
type, robosuite kwargs). Most published data were recorded with robosuite <= 1.4, whose
controller configs robosuite 1.5 no longer accepts; :func:`convert_env_args` translates them so
:func:`~saq_wrappers.integrations.robomimic.make_robomimic_env` can rebuild the env. Pure data
manipulation: robosuite itself is not imported here.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from saq_wrappers.errors import CheckpointError, DataError
from saq_wrappers.io import parse_json

from .hdf5_io import open_robomimic, stored_env_args

__all__ = ["ROBOSUITE_ENV_TYPE", "convert_env_args", "read_env_args"]

#: robomimic's env type of robosuite envs in ``env_args["type"]``.
ROBOSUITE_ENV_TYPE = 1


def read_env_args(source: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """``env_args`` from a dict, a JSON string, or a robomimic file's ``data.attrs``."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    text = os.fspath(source)
    if _is_file(text):
        with open_robomimic(text) as handle:
            if "data" not in handle:
                raise DataError(f"{text}: missing group 'data' (expected data.attrs['env_args'])")
            args = stored_env_args(handle, text)
        if args is None:
            raise DataError(f"{text}: missing data.attrs['env_args'] (expected a JSON env description)")
        return args
    try:
        value = parse_json(text, "env_args", "JSON")  # nesting depth checked first
    except CheckpointError as error:
        raise DataError(
            f"env_args {text[:80]!r} is neither a file nor a JSON object ({error})"
        ) from error
    if not isinstance(value, dict):
        raise DataError(f"env_args must be a JSON object, got {type(value).__name__}")
    return value


def _is_file(text: str) -> bool:
    """Whether ``text`` names a file; a JSON text too long for a file name names none."""
    try:
        return Path(text).is_file()
    except OSError:  # e.g. ENAMETOOLONG
        return False


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
