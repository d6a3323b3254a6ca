"""robomimic hdf5 datasets in and out, and their environments rebuilt with robosuite 1.5.1.

The ``robomimic`` package is not needed (from the registry it needs torchvision and
``mujoco_py``): the file format is read and written with ``h5py``, and environments are rebuilt
from ``env_args`` with ``robosuite`` directly. One module per job:

* :mod:`.hdf5_io`: the file format (layout, :func:`load_robomimic` into
  :class:`~saq_wrappers.transitions.Transitions`, :func:`write_robomimic`, and
  :func:`write_relabeled_robomimic`, a copy with SAQ codes added);
* :mod:`.env_args`: ``env_args`` read from a dict, JSON or a file, and robosuite <= 1.4 controller
  configs converted to robosuite 1.5 (:func:`convert_env_args`);
* :mod:`.env`: :class:`RobosuiteEnv` and :func:`make_robomimic_env` (robosuite imported only
  when an env is made);
* :mod:`.lift_demos`: a scripted, human-like Lift demonstrator that writes robomimic files
  (``saq data lift-demos``) and replays them.

Example:
    >>> from saq_wrappers.integrations.robomimic import load_robomimic     # doctest: +SKIP
    >>> data = load_robomimic("lift/ph/low_dim_v141.hdf5", filter_key="train")  # doctest: +SKIP
"""

from saq_wrappers.integrations import requires_extra

with requires_extra("robomimic", needed_by=__name__):
    import h5py  # noqa: F401 - the file format's library; robosuite is imported when an env is made

from .env import DEFAULT_HORIZONS, RobosuiteEnv, make_robomimic_env
from .env_args import convert_env_args, read_env_args
from .hdf5_io import (
    CODES_KEY,
    DEFAULT_OBS_KEYS,
    RobomimicLayout,
    load_robomimic,
    robomimic_layout,
    write_relabeled_robomimic,
    write_robomimic,
)
from .lift_demos import LIFT_OBS_KEYS, LiftDemonstrator, generate_lift_demos, lift_env_args, replay_demo

__all__ = [
    "CODES_KEY",
    "DEFAULT_HORIZONS",
    "DEFAULT_OBS_KEYS",
    "LIFT_OBS_KEYS",
    "LiftDemonstrator",
    "RobomimicLayout",
    "RobosuiteEnv",
    "convert_env_args",
    "generate_lift_demos",
    "lift_env_args",
    "load_robomimic",
    "make_robomimic_env",
    "read_env_args",
    "replay_demo",
    "robomimic_layout",
    "write_relabeled_robomimic",
    "write_robomimic",
]
