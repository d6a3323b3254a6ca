"""Where gymnasium-robotics comes from, and the one message that says how to install it.

gymnasium-robotics registers the Adroit hands and the Franka kitchen with Gymnasium when imported.
Its 1.3 releases need ``mujoco<3.2`` while robosuite 1.5.1 needs ``mujoco>=3.3``, and its 1.4
releases need ``gymnasium>=1.2`` while d3rlpy 2.8.1 pins 1.0.0; so it cannot share the main
virtualenv and lives in a second one, made with :data:`ROBOTICS_INSTALL`. Importing this module
imports nothing but the core.
"""

from __future__ import annotations

import importlib

from saq_wrappers.errors import DataError

__all__ = ["ROBOTICS_EXTRA", "ROBOTICS_INSTALL", "ROBOTICS_VENV", "require_gymnasium_robotics"]

#: The saq-wrappers extra that installs gymnasium-robotics (``adroit``, its former name, pulls it).
ROBOTICS_EXTRA = "robotics"
#: The second virtualenv's folder (relative to a checkout of the repository).
ROBOTICS_VENV = ".venv-robotics"
#: The command that makes it, from a checkout (``constraints-robotics.txt`` pins what
#: ``constraints.txt`` pins, with ``mujoco<3.2`` and without robosuite).
ROBOTICS_INSTALL = (f'python -m venv {ROBOTICS_VENV} && {ROBOTICS_VENV}/bin/pip install -e ".[{ROBOTICS_EXTRA}]" '
                    "-c constraints-robotics.txt")


def require_gymnasium_robotics(what: str, command: str = "python") -> None:
    """Import ``gymnasium_robotics`` (which registers its envs), or say exactly what to install.

    Args:
        what: what needs it, for the message (``"env 'saq_wrappers/KitchenComplete-v0'"``).
        command: what to run in the second virtualenv once it is made (its ``bin/`` is prefixed),
            e.g. ``"python -m benchmarks.run --suite kitchen"``.

    Raises:
        DataError: gymnasium-robotics cannot be imported (missing, or installed against another
            MuJoCo); the message has the install line and why it is a second virtualenv.
    """
    try:
        importlib.import_module("gymnasium_robotics")
    except Exception as error:  # noqa: BLE001 - missing, or installed against another MuJoCo
        raise DataError(
            f"{what} needs gymnasium-robotics, which registers the Adroit and Franka kitchen envs "
            f"(AdroitHandPen-v1, FrankaKitchen-v1, ...) with Gymnasium, and it cannot be imported here "
            f"({type(error).__name__}: {error}). Its MuJoCo range is not robosuite's (gymnasium-robotics 1.3.x "
            "needs mujoco<3.2, robosuite 1.5.1 mujoco>=3.3; 1.4.x needs gymnasium>=1.2, d3rlpy 2.8.1 pins "
            f"1.0.0), so install it in a second virtualenv: `{ROBOTICS_INSTALL}`, then run "
            f"`{ROBOTICS_VENV}/bin/{command}`"
        ) from error
