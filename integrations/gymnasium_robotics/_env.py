"""Gymnasium-Robotics' FrankaKitchen-v1 env class, behind the ``robotics`` extra.

Built directly (not through ``gym.make("FrankaKitchen-v1")``), so that the one ``TimeLimit`` and
the Gymnasium checks are those of :data:`~.kitchen.KITCHEN_ENV_ID`, around the v0 observation.
"""

from __future__ import annotations

from typing import Any, Sequence

from saq_wrappers.integrations import requires_extra

with requires_extra("robotics", needed_by=__name__):
    from gymnasium_robotics.envs.franka_kitchen import KitchenEnv

__all__ = ["franka_kitchen"]


def franka_kitchen(tasks: Sequence[str], robot_noise_ratio: float, object_noise_ratio: float,
                   **kwargs: Any) -> KitchenEnv:
    """FrankaKitchen-v1 with ``tasks`` and the given observation noise (see
    :func:`~saq_wrappers.integrations.gymnasium_robotics.make_kitchen_env`)."""
    return KitchenEnv(tasks_to_complete=list(tasks), robot_noise_ratio=robot_noise_ratio,
                      object_noise_ratio=object_noise_ratio, **kwargs)
