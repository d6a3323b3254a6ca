"""gymnasium-robotics' envs: D4RL's Franka kitchen with its v0 observation, and the install rule.

* :mod:`.kitchen`: ``kitchen-complete-v0``'s env on FrankaKitchen-v1 (:func:`make_kitchen_env`,
  registered with Gymnasium as ``saq_wrappers/KitchenComplete-v0`` when this package is
  imported), the 60-D observation rebuild, the noise settings and D4RL's score normalization;
* :mod:`.extra`: the ``robotics`` extra and its second virtualenv, and
  :func:`require_gymnasium_robotics`, which names the install line when the package is missing.

Importing this package needs only the core (numpy, Gymnasium): the pure functions and the
registration work without gymnasium-robotics, and making the env says what to install.
The private module ``_env`` imports gymnasium-robotics itself, behind the ``robotics`` extra.

Example:
    >>> import numpy as np
    >>> from saq_wrappers.integrations.gymnasium_robotics import kitchen_normalized_score, kitchen_v0_observation
    >>> kitchen_v0_observation(np.zeros(59)).shape
    (60,)
    >>> float(kitchen_normalized_score(3.0))
    75.0
"""

from __future__ import annotations

from .extra import ROBOTICS_EXTRA, ROBOTICS_INSTALL, ROBOTICS_VENV, require_gymnasium_robotics
from .kitchen import (
    DEFAULT_KITCHEN_NOISE,
    KITCHEN_ENV_ID,
    KITCHEN_GOAL,
    KITCHEN_MAX_STEPS,
    KITCHEN_NOISE,
    KITCHEN_REF_MAX,
    KITCHEN_REF_MIN,
    KITCHEN_TASKS,
    KitchenV0Env,
    kitchen_noise_ratios,
    kitchen_normalized_score,
    kitchen_v0_observation,
    make_kitchen_env,
    register_kitchen_env,
)

__all__ = [
    "DEFAULT_KITCHEN_NOISE", "KITCHEN_ENV_ID", "KITCHEN_GOAL", "KITCHEN_MAX_STEPS", "KITCHEN_NOISE", "KITCHEN_REF_MAX",
    "KITCHEN_REF_MIN", "KITCHEN_TASKS", "ROBOTICS_EXTRA", "ROBOTICS_INSTALL", "ROBOTICS_VENV", "KitchenV0Env",
    "kitchen_noise_ratios", "kitchen_normalized_score", "kitchen_v0_observation", "make_kitchen_env",
    "register_kitchen_env", "require_gymnasium_robotics",
]

register_kitchen_env()
