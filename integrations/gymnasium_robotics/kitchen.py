"""D4RL's Franka kitchen (``kitchen-complete-v0``), rebuilt on Gymnasium-Robotics' ``FrankaKitchen-v1``.

D4RL's kitchen datasets were recorded by people in VR in the v0 env (Gupta et al., "Relay Policy
Learning", 2019), which no maintained package ships any more. ``FrankaKitchen-v1`` reproduces it:
the same actions (normalized joint velocities, x2, integrated into position targets from the last
observed joint positions; dt 0.08 s, frame skip 40), actuator gains, initial state, tasks, task
threshold (0.3) and goal values, and the same 280-step limit, so the recorded actions need no
conversion. Two things differ, and this module restores them:

* **The observation.** v0 observed 60 numbers: robot joint positions (9) | object joint positions
  (21) | the goal (30, constant). v1 observes a dict whose ``"observation"`` is 59 numbers (robot
  qpos ``0:9``, robot qvel ``9:18``, object qpos ``18:39``, object qvel ``39:59``):
  :func:`kitchen_v0_observation` rebuilds the 60 with :data:`KITCHEN_GOAL`, and
  :class:`KitchenV0Env` is FrankaKitchen-v1 observed that way.
* **The observation noise.** D4RL's env added uniform noise scaled by 0.1 to the robot and the
  object readings; v1 defaults to 0.01 (robot) and 0.0005 (objects). The setting changes scores,
  so it is an option of :func:`make_kitchen_env` (:data:`KITCHEN_NOISE`): ``"dataset"`` (0.1 and
  0.1, what the demonstrations saw; the default), ``"v1"`` (v1's own defaults) or ``"none"``.
  v1 applies the object noise amplitudes one slot off, so ``"dataset"`` is close to D4RL's noise,
  not identical. Always say which setting a score used.

The env is registered with Gymnasium as :data:`KITCHEN_ENV_ID` (``saq_wrappers/KitchenComplete-v0``)
when :mod:`saq_wrappers.integrations.gymnasium_robotics` is imported, so a D4RL file names it like
any env: ``d4rl:kitchen-complete-v0.hdf5@saq_wrappers/KitchenComplete-v0``. Everything here but
:func:`make_kitchen_env` is numpy and Gymnasium only; building the env needs gymnasium-robotics
(the ``robotics`` extra, in a virtualenv of its own: see :mod:`.extra`).

Scores are D4RL's: one point of reward per task completed, normalized with D4RL's reference
returns 0 and 4 (``REF_MIN_SCORE`` / ``REF_MAX_SCORE`` of ``kitchen-complete-v0``), i.e.
``100 * return / 4``, 25 per task (:func:`kitchen_normalized_score`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from saq_wrappers.errors import DataError
from saq_wrappers.evaluation import normalized_score

from .extra import require_gymnasium_robotics

__all__ = [
    "DEFAULT_KITCHEN_NOISE", "KITCHEN_ENV_ID", "KITCHEN_GOAL", "KITCHEN_MAX_STEPS", "KITCHEN_NOISE", "KITCHEN_REF_MAX",
    "KITCHEN_REF_MIN", "KITCHEN_TASKS", "KitchenV0Env", "kitchen_noise_ratios", "kitchen_normalized_score",
    "kitchen_v0_observation", "make_kitchen_env", "register_kitchen_env",
]

#: The Gymnasium id of the v0-observation kitchen (this project's namespace).
KITCHEN_ENV_ID = "saq_wrappers/KitchenComplete-v0"
#: The four tasks of ``kitchen-complete-v0`` (every demonstration completes all four).
KITCHEN_TASKS = ("microwave", "kettle", "light switch", "slide cabinet")
#: D4RL's episode length on the kitchen.
KITCHEN_MAX_STEPS = 280
#: D4RL's reference returns of ``kitchen-complete-v0`` (one point per task).
KITCHEN_REF_MIN, KITCHEN_REF_MAX = 0.0, 4.0
#: Observation noise settings -> (``robot_noise_ratio``, ``object_noise_ratio``) of FrankaKitchen-v1.
KITCHEN_NOISE: dict[str, tuple[float, float]] = {
    "dataset": (0.1, 0.1),  # D4RL's env, in which the demonstrations were recorded
    "v1": (0.01, 0.0005),  # FrankaKitchen-v1's defaults
    "none": (0.0, 0.0),
}
#: The default: what the data saw.
DEFAULT_KITCHEN_NOISE = "dataset"

#: The goal D4RL's v0 env appends to every observation: the target of every joint of the scene,
#: robot (0:9) then objects (9:30), zero except the four tasks' goal values (D4RL's
#: ``OBS_ELEMENT_INDICES`` / ``OBS_ELEMENT_GOALS``, the same in FrankaKitchen-v1): light switch
#: 17:19, slide cabinet 19, microwave 22, kettle 23:30 (position and quaternion). It equals
#: ``observations[0, 30:]`` (and every other row) of D4RL's ``kitchen-complete-v0`` file, in
#: float32, and is written out here so that nothing needs that file.
KITCHEN_GOAL = np.array(
    [0.0] * 17
    + [-0.69, -0.05]  # light switch
    + [0.37]  # slide cabinet
    + [0.0, 0.0]  # hinge cabinet (not a task of this dataset)
    + [-0.75]  # microwave
    + [-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06],  # kettle
    dtype=np.float32,
)
KITCHEN_GOAL.setflags(write=False)

#: FrankaKitchen-v1's ``obs["observation"]``: where the robot and object positions are.
_V1_WIDTH = 59
_ROBOT_QPOS = slice(0, 9)
_OBJECT_QPOS = slice(18, 39)


def kitchen_v0_observation(observation: np.ndarray) -> np.ndarray:
    """D4RL's 60-D v0 observation from FrankaKitchen-v1's 59-D ``obs["observation"]``.

    ``concat(o[0:9], o[18:39], KITCHEN_GOAL)``: robot joint positions, object joint positions,
    the constant goal; the velocities v1 adds are dropped, as v0 never observed them.

    Args:
        observation: ``(59,)`` or a batch ``(..., 59)``.

    Returns:
        float32 ``(60,)`` or ``(..., 60)``.

    Raises:
        DataError: the last axis is not 59 wide.
    """
    o = np.asarray(observation)
    if o.ndim == 0 or o.shape[-1] != _V1_WIDTH:
        raise DataError(f"expected FrankaKitchen-v1's observation of {_V1_WIDTH} numbers (robot qpos, qvel, object "
                        f"qpos, qvel) on the last axis, got shape {o.shape}")
    goal = np.broadcast_to(KITCHEN_GOAL, o.shape[:-1] + KITCHEN_GOAL.shape)
    return np.concatenate([o[..., _ROBOT_QPOS], o[..., _OBJECT_QPOS], goal], axis=-1).astype(np.float32)


def kitchen_normalized_score(returns: Any) -> Any:
    """D4RL's normalized score of kitchen returns: ``100 * return / 4`` (25 per task done), of one
    return or an array of them (:func:`saq_wrappers.evaluation.normalized_score` with
    :data:`KITCHEN_REF_MIN`, :data:`KITCHEN_REF_MAX`)."""
    return normalized_score(returns, KITCHEN_REF_MIN, KITCHEN_REF_MAX)


def kitchen_noise_ratios(noise: str) -> tuple[float, float]:
    """``(robot_noise_ratio, object_noise_ratio)`` of a :data:`KITCHEN_NOISE` setting.

    Raises:
        DataError: an unknown setting, named with the known ones.
    """
    if not isinstance(noise, str) or noise not in KITCHEN_NOISE:
        raise DataError(f"kitchen observation noise {noise!r} unknown: expected one of {', '.join(KITCHEN_NOISE)} "
                        "(dataset: 0.1 / 0.1 as D4RL recorded it; v1: FrankaKitchen-v1's 0.01 / 0.0005; none)")
    return KITCHEN_NOISE[noise]


class KitchenV0Env(gym.Env[np.ndarray, np.ndarray]):
    """FrankaKitchen-v1 observed as D4RL's v0 kitchen: a ``Box(-inf, inf, (60,), float32)``.

    An env of its own around a FrankaKitchen-v1 instance (not a wrapper: it is what
    :data:`KITCHEN_ENV_ID` makes, so Gymnasium's ``check_env`` runs on it as on any raw env).
    Each dict observation becomes :func:`kitchen_v0_observation` of its ``"observation"``;
    actions, rewards (tasks newly completed), ends and infos are v1's. Built by
    :func:`make_kitchen_env`; any env with v1's dict observations can be given.

    Attributes:
        kitchen: the FrankaKitchen-v1 env it runs.

    Example:
        >>> import gymnasium as gym                                   # doctest: +SKIP
        >>> import saq_wrappers.integrations.gymnasium_robotics        # doctest: +SKIP
        >>> env = gym.make("saq_wrappers/KitchenComplete-v0")          # doctest: +SKIP
        >>> env.observation_space.shape, env.spec.max_episode_steps    # doctest: +SKIP
        ((60,), 280)
    """

    def __init__(self, kitchen: gym.Env[Any, Any]) -> None:
        inner = getattr(kitchen.observation_space, "spaces", {}).get("observation")
        if not isinstance(inner, gym.spaces.Box) or inner.shape != (_V1_WIDTH,):
            raise DataError(f"KitchenV0Env runs FrankaKitchen-v1 (dict observations with a ({_V1_WIDTH},) "
                            f"'observation'), got observation space {kitchen.observation_space}")
        self.kitchen = kitchen
        self.action_space = kitchen.action_space
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (60,), np.float32)
        self.metadata = kitchen.metadata
        self.render_mode = kitchen.render_mode

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset FrankaKitchen-v1 (seeding its observation noise) and observe it as v0."""
        super().reset(seed=seed)
        observation, info = self.kitchen.reset(seed=seed, options=options)
        return kitchen_v0_observation(observation["observation"]), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step FrankaKitchen-v1 with joint velocities ``action``; its reward is the tasks newly done."""
        observation, reward, terminated, truncated, info = self.kitchen.step(action)
        return kitchen_v0_observation(observation["observation"]), float(reward), terminated, truncated, info

    def render(self) -> Any:
        """FrankaKitchen-v1's rendering (its ``render_mode``)."""
        return self.kitchen.render()

    def close(self) -> None:
        """Close FrankaKitchen-v1 (and its renderer)."""
        self.kitchen.close()


def make_kitchen_env(noise: str = DEFAULT_KITCHEN_NOISE, **kwargs: Any) -> gym.Env[np.ndarray, np.ndarray]:
    """FrankaKitchen-v1 with ``kitchen-complete-v0``'s four tasks, observed as D4RL's v0 env.

    The entry point of :data:`KITCHEN_ENV_ID`: ``gym.make("saq_wrappers/KitchenComplete-v0",
    noise="v1")`` adds the 280-step ``TimeLimit`` and Gymnasium's checks around it (FrankaKitchen-v1
    is built without its own).

    Args:
        noise: a :data:`KITCHEN_NOISE` setting (default ``"dataset"``, the noise the
            demonstrations saw).
        kwargs: passed to FrankaKitchen-v1 (``render_mode``, ...).

    Raises:
        DataError: an unknown ``noise``, or gymnasium-robotics cannot be imported (the message says
            what to install, and that it needs a second virtualenv).
    """
    robot, obj = kitchen_noise_ratios(noise)
    require_gymnasium_robotics(f"env {KITCHEN_ENV_ID!r}")
    from ._env import franka_kitchen

    return KitchenV0Env(franka_kitchen(KITCHEN_TASKS, robot_noise_ratio=robot, object_noise_ratio=obj, **kwargs))


def register_kitchen_env() -> None:
    """Register :data:`KITCHEN_ENV_ID` with Gymnasium (once; nothing is imported until it is made)."""
    if KITCHEN_ENV_ID not in gym.registry:
        gym.register(KITCHEN_ENV_ID, entry_point=f"{__name__}:make_kitchen_env",
                     max_episode_steps=KITCHEN_MAX_STEPS, kwargs={"noise": DEFAULT_KITCHEN_NOISE})
