"""A scripted robosuite Lift demonstrator writing robomimic-format hdf5.

The ``saq data lift-demos`` command runs :func:`generate_lift_demos`.

Stands in for robomimic's proficient-human (PH) Lift data where it cannot be downloaded. Every
demonstration is a waypoint controller on robosuite 1.5.1's default Panda OSC_POSE controller,
made human-like on purpose:

* **multi-modal**: each demo approaches the cube either directly or through a side waypoint to
  its left or right, hovers at a random height, and may align its grasp with the cube's yaw or
  not (the cube is symmetric under 90 degrees, so several grasp yaws are equally good);
* **noisy**: temporally correlated action noise, a per-demo speed, random hesitations (short
  pauses) and a slightly varying grasp depth and lift height;
* **successful**: a demo is kept only if it lifts the cube; it ends at the first success step,
  as robomimic's PH demos do (``dones[-1] = 1``, ``rewards[-1] = 1``).

The file follows robomimic's layout (see :mod:`saq_wrappers.integrations.robomimic.hdf5_io`):
``data.attrs["env_args"]`` rebuilds the env with
:func:`~saq_wrappers.integrations.robomimic.make_robomimic_env`; each demo stores ``states``
(flattened MuJoCo states), ``model_file`` and its reset ``seed``, so it replays either from the
seed or from ``states[0]``.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Sequence

import h5py
import numpy as np
from tqdm.auto import tqdm

from saq_wrappers.errors import DataError
from saq_wrappers.integrations import requires_extra

from .env import RobosuiteEnv, make_robomimic_env
from .hdf5_io import DEFAULT_OBS_KEYS, write_robomimic

__all__ = [
    "LIFT_OBS_KEYS",
    "LiftDemonstrator",
    "generate_lift_demos",
    "lift_env_args",
    "replay_demo",
]

#: Observation keys stored in the generated files (robomimic's low-dim keys and more).
LIFT_OBS_KEYS: tuple[str, ...] = DEFAULT_OBS_KEYS + (
    "robot0_joint_pos",
    "robot0_joint_pos_cos",
    "robot0_joint_pos_sin",
    "robot0_joint_vel",
    "robot0_gripper_qvel",
)

#: OSC_POSE maps an action of 1 to this many metres of end-effector motion per step.
_POSITION_SCALE = 0.05
#: ... and to this many radians of rotation per step.
_ROTATION_SCALE = 0.5


def lift_env_args() -> dict[str, Any]:
    """robomimic ``env_args`` of the Lift env the demonstrator uses (robosuite 1.5 format)."""
    with requires_extra("robosuite", needed_by=__name__):
        import robosuite
        from robosuite.controllers import load_composite_controller_config

    controller = load_composite_controller_config(controller="BASIC", robot="Panda")
    return {
        "env_name": "Lift",
        "env_version": robosuite.__version__,
        "type": 1,
        "env_kwargs": {
            "robots": ["Panda"],
            "controller_configs": copy.deepcopy(controller),
            "has_renderer": False,
            "has_offscreen_renderer": False,
            "ignore_done": True,
            "use_object_obs": True,
            "use_camera_obs": False,
            "control_freq": 20,
            "reward_shaping": False,
        },
    }


def _yaw_of(quat_xyzw: np.ndarray) -> float:
    """Heading (rotation about world z) of a quaternion ``(x, y, z, w)``."""
    x, y, z, w = quat_xyzw
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def _wrap_quarter(angle: float) -> float:
    """``angle`` modulo 90 degrees, in ``[-45, 45)`` degrees (the cube's grasp symmetry)."""
    quarter = np.pi / 2
    return float((angle + quarter / 2) % quarter - quarter / 2)


class LiftDemonstrator:
    """One scripted, randomized Lift demonstration policy (a new style per :meth:`reset`).

    Call :meth:`reset` with the env's first raw observation, then :meth:`act` with each raw
    observation (robosuite's dict) to get a 7-D OSC_POSE + gripper action.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def reset(self, observation: dict[str, np.ndarray]) -> None:
        rng = self.rng
        cube = np.asarray(observation["cube_pos"], dtype=np.float64)
        self.speed = rng.uniform(0.6, 1.0)  # fraction of the controller's full step
        self.hover = rng.uniform(0.06, 0.12)
        self.depth = rng.uniform(-0.012, 0.0)  # grasp point relative to the cube centre
        self.lift_height = rng.uniform(0.10, 0.16)
        self.close_steps = int(rng.integers(6, 12))
        self.align_yaw = bool(rng.random() < 0.5)
        self.noise_scale = rng.uniform(0.05, 0.15)
        self.noise = np.zeros(6)
        mode = rng.choice(["direct", "left", "right"])
        self.mode = str(mode)
        self.waypoints: list[np.ndarray] = []
        if mode != "direct":
            side = 1.0 if mode == "left" else -1.0
            eef = np.asarray(observation["robot0_eef_pos"], dtype=np.float64)
            middle = (eef + cube) / 2.0
            middle[1] += side * rng.uniform(0.06, 0.12)
            middle[2] = cube[2] + self.hover + rng.uniform(0.02, 0.06)
            self.waypoints.append(middle)
        self.phase = "approach"
        self.phase_steps = 0
        self.pause = 0
        self.start_yaw = _yaw_of(np.asarray(observation["robot0_eef_quat"], dtype=np.float64))

    def _move(self, eef: np.ndarray, target: np.ndarray, gain: float = 1.0) -> np.ndarray:
        delta = (target - eef) / _POSITION_SCALE * gain
        norm = np.linalg.norm(delta)
        limit = self.speed
        return delta if norm <= limit else delta * (limit / norm)

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        rng = self.rng
        eef = np.asarray(observation["robot0_eef_pos"], dtype=np.float64)
        cube = np.asarray(observation["cube_pos"], dtype=np.float64)
        self.phase_steps += 1
        position = np.zeros(3)
        rotation = np.zeros(3)
        gripper = -1.0
        if self.phase == "approach":
            target = self.waypoints[0] if self.waypoints else cube + np.array([0.0, 0.0, self.hover])
            position = self._move(eef, target)
            if self.align_yaw:
                grip_yaw = _yaw_of(np.asarray(observation["robot0_eef_quat"], dtype=np.float64))
                cube_yaw = _yaw_of(np.asarray(observation["cube_quat"], dtype=np.float64))
                error = _wrap_quarter(cube_yaw - grip_yaw)
                rotation[2] = np.clip(-error / _ROTATION_SCALE, -0.3, 0.3)
            if np.linalg.norm(target - eef) < 0.02:
                if self.waypoints:
                    self.waypoints.pop(0)
                else:
                    self.phase, self.phase_steps = "descend", 0
        elif self.phase == "descend":
            target = cube + np.array([0.0, 0.0, self.depth])
            position = self._move(eef, target, gain=0.8)
            if np.linalg.norm(target - eef) < 0.008 or self.phase_steps > 60:
                self.phase, self.phase_steps = "grasp", 0
        elif self.phase == "grasp":
            gripper = 1.0
            position = self._move(eef, cube + np.array([0.0, 0.0, self.depth]), gain=0.5)
            if self.phase_steps >= self.close_steps:
                self.phase, self.phase_steps = "lift", 0
                self.lift_target = eef + np.array([rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02), self.lift_height])
        else:  # lift
            gripper = 1.0
            position = self._move(eef, self.lift_target, gain=1.0)
        if self.phase in ("approach", "lift") and self.pause == 0 and rng.random() < 0.02:
            self.pause = int(rng.integers(2, 6))  # a short hesitation
        if self.pause > 0:
            self.pause -= 1
            position = position * 0.1
        # Temporally correlated noise (an Ornstein-Uhlenbeck-like drift), smaller near contact.
        self.noise = 0.8 * self.noise + 0.2 * rng.standard_normal(6) * 3.0 * self.noise_scale
        calm = 0.3 if self.phase in ("descend", "grasp") else 1.0
        motion = np.concatenate([position, rotation]) + self.noise * calm * np.array([1, 1, 1, 0.2, 0.2, 0.2])
        return np.clip(np.concatenate([motion, [gripper]]), -1.0, 1.0)


def _obs_record(raw: dict[str, np.ndarray], keys: Sequence[str]) -> dict[str, np.ndarray]:
    out = {}
    for key in keys:
        name = "object-state" if key == "object" else key
        out[key] = np.asarray(raw[name]).copy()
    return out


def _record_demo(env: RobosuiteEnv, seed: int, rng: np.random.Generator, max_steps: int) -> dict[str, Any] | None:
    """One scripted attempt from the reset of ``seed``; ``None`` if it did not succeed."""
    env.reset(seed=seed)
    raw = env.env._get_observations(force_update=True)
    demonstrator = LiftDemonstrator(rng)
    demonstrator.reset(raw)
    model_xml = env.env.sim.model.get_xml()
    states, actions, rewards, obs, next_obs = [], [], [], [], []
    for _ in range(max_steps):
        states.append(np.asarray(env.env.sim.get_state().flatten()))
        obs.append(_obs_record(raw, LIFT_OBS_KEYS))
        action = demonstrator.act(raw)
        raw, reward, _, _ = env.env.step(action)
        success = bool(env.env._check_success())
        actions.append(action)
        rewards.append(float(reward))
        next_obs.append(_obs_record(raw, LIFT_OBS_KEYS))
        if success:
            steps = len(actions)
            dones = np.zeros(steps, dtype=np.int64)
            dones[-1] = 1
            return {
                "obs": {k: np.stack([o[k] for o in obs]) for k in LIFT_OBS_KEYS},
                "next_obs": {k: np.stack([o[k] for o in next_obs]) for k in LIFT_OBS_KEYS},
                "actions": np.stack(actions),
                "rewards": np.asarray(rewards),
                "dones": dones,
                "states": np.stack(states),
                "attrs": {"model_file": model_xml, "seed": seed, "mode": demonstrator.mode},
            }
    return None


def generate_lift_demos(
    path: str | os.PathLike[str],
    n_demos: int = 200,
    *,
    seed: int = 0,
    max_steps: int = 250,
    max_attempts: int | None = None,
    valid_fraction: float = 0.1,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``n_demos`` successful scripted Lift demonstrations as a robomimic hdf5 file.

    Args:
        path: output file (written atomically).
        n_demos: successful demos to keep.
        seed: attempt ``i`` resets the env with ``seed + i`` and draws its style from a
            generator seeded with ``(seed, i)``.
        max_steps: steps after which an attempt counts as failed.
        max_attempts: give up after this many attempts (default ``2 * n_demos + 10``).
        valid_fraction: share of demos in ``mask/valid`` (the rest in ``mask/train``).
        progress: show a progress bar.

    Returns:
        Statistics: ``n_demos``, ``attempts``, ``success_rate`` of the demonstrator,
        ``mean_length``, ``modes`` (approach-mode counts) and ``path``.
    """
    if n_demos < 1:
        raise DataError(f"n_demos must be >= 1, got {n_demos}")
    limit = max_attempts if max_attempts is not None else 2 * n_demos + 10
    env_args = lift_env_args()
    env = make_robomimic_env(env_args, LIFT_OBS_KEYS, horizon=max_steps)
    demos: list[dict[str, Any]] = []
    attempts = 0
    bar = tqdm(total=n_demos, desc="lift demos", unit="demo", disable=not progress)
    try:
        while len(demos) < n_demos and attempts < limit:
            rng = np.random.default_rng([seed, attempts])
            demo = _record_demo(env, seed + attempts, rng, max_steps)
            attempts += 1
            if demo is not None:
                demos.append(demo)
                bar.update(1)
    finally:
        bar.close()
        env.close()
    if len(demos) < n_demos:
        raise DataError(
            f"the scripted demonstrator succeeded in only {len(demos)} of {attempts} attempts; "
            f"expected {n_demos} successes (raise max_attempts or max_steps)"
        )
    names = [f"demo_{i}" for i in range(len(demos))]
    n_valid = int(round(valid_fraction * len(demos)))
    write_robomimic(
        path,
        demos,
        env_args,
        masks={"train": names[: len(names) - n_valid], "valid": names[len(names) - n_valid :]},
        attrs={"generator": "saq-wrappers scripted Lift demonstrator", "generator_seed": seed},
    )
    modes: dict[str, int] = {}
    for demo in demos:
        modes[demo["attrs"]["mode"]] = modes.get(demo["attrs"]["mode"], 0) + 1
    return {
        "path": str(path),
        "n_demos": len(demos),
        "attempts": attempts,
        "success_rate": len(demos) / attempts,
        "mean_length": float(np.mean([len(d["actions"]) for d in demos])),
        "modes": modes,
    }


def replay_demo(
    path: str | os.PathLike[str],
    demo: str,
    *,
    from_states: bool = False,
    env: RobosuiteEnv | None = None,
) -> dict[str, Any]:
    """Replay a demo's recorded actions in the rebuilt env and report whether it succeeds.

    The env is rebuilt from the file's ``env_args``; the start is the demo's reset ``seed``
    (default) or, robomimic-style, its ``model_file`` and ``states[0]``.

    Returns:
        ``success`` (any step succeeded), ``success_step``, ``initial_state_error`` (max abs
        difference between the replay's first state and ``states[0]``), ``max_state_error``
        along the recorded states, and ``steps``.
    """
    with h5py.File(path, "r") as handle:
        group = handle[f"data/{demo}"]
        actions = group["actions"][()]
        states = group["states"][()]
        seed = group.attrs.get("seed")
        model_xml = group.attrs.get("model_file")
    own = env is None
    env = env or make_robomimic_env(path, DEFAULT_OBS_KEYS, horizon=len(actions) + 1)
    try:
        if from_states:
            env.reset_to({"model": model_xml, "states": states[0]})
        else:
            if seed is None:
                raise DataError(f"{path}: data/{demo} has no 'seed' attribute; replay with from_states=True")
            env.reset(seed=int(seed))
        initial = np.abs(env.get_state()["states"] - states[0]).max()
        max_error = 0.0
        success_step = None
        for t, action in enumerate(actions):
            if t > 0:
                max_error = max(max_error, float(np.abs(env.get_state()["states"] - states[t]).max()))
            _, _, _, _, info = env.step(action)
            if info["is_success"] and success_step is None:
                success_step = t
        return {
            "success": success_step is not None,
            "success_step": success_step,
            "initial_state_error": float(initial),
            "max_state_error": max_error,
            "steps": len(actions),
        }
    finally:
        if own:
            env.close()
