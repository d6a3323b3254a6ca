"""Offline datasets from Stable-Baselines3 agents, written as Minari datasets (``saq data generate``).

D4RL-like recipes, for any SB3 model file (SAC, TD3, DDPG, PPO, A2C; TQC, TRPO, CrossQ from
sb3-contrib) in any Gymnasium task with a ``Box`` action space:

* ``expert``: the agent's own (stochastic) policy, as D4RL sampled its SAC experts;
* ``medium``: a weaker agent (``medium_model``), or else the expert with Gaussian action noise
  of std ``noise_std`` (in units of half the action range);
* ``medium-expert``: half the steps from ``medium`` then half from ``expert`` (D4RL's mixture);
* ``random``: uniformly random actions.

Reference scores follow D4RL: ``ref_min_score`` is the mean return of the random policy and
``ref_max_score`` the mean return of the expert's deterministic policy, over ``ref_episodes``
episodes (or the values given). They go into the Minari metadata, so
:func:`saq_wrappers.integrations.minari.minari_info` gives normalized scores.

Episode ``i`` is reset with seed ``seed + i`` (recorded per episode); a run stopped by the step
budget ends with a truncated (timeout) episode, whose next observation is real.

SB3 model files hold pickled Python objects (SB3's own format): load only files you trust.

Example:
    >>> from saq_wrappers.integrations.generate import generate_dataset          # doctest: +SKIP
    >>> generate_dataset("tqc_hopper.zip", "Hopper-v5", "hopper/expert-v0", n_steps=100_000)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from saq_wrappers.errors import DataError, SAQError

from .minari import write_minari_dataset

__all__ = [
    "RECIPES",
    "Policy",
    "detect_algorithm",
    "generate_dataset",
    "load_sb3_model",
    "mean_return",
    "noisy_policy",
    "random_policy",
    "rollout",
    "sb3_policy",
]

#: The dataset recipes, D4RL's names.
RECIPES = ("expert", "medium", "medium-expert", "random")

#: One observation -> one action.
Policy = Callable[[np.ndarray], np.ndarray]

#: SB3 / sb3-contrib algorithm module name -> class name.
_ALGORITHMS = {
    ("stable_baselines3", "sac"): "SAC",
    ("stable_baselines3", "td3"): "TD3",
    ("stable_baselines3", "ddpg"): "DDPG",
    ("stable_baselines3", "ppo"): "PPO",
    ("stable_baselines3", "a2c"): "A2C",
    ("sb3_contrib", "tqc"): "TQC",
    ("sb3_contrib", "trpo"): "TRPO",
    ("sb3_contrib", "crossq"): "CrossQ",
}


# ---------------------------------------------------------------------------------- models
def _model_json(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            return dict(json.loads(archive.read("data")))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as error:
        raise DataError(
            f"{path}: not a Stable-Baselines3 model file (expected a zip with a 'data' JSON "
            f"entry; {error})"
        ) from error


def detect_algorithm(path: str | os.PathLike[str]) -> str:
    """The SB3 algorithm of a model file (``"SAC"``, ``"TQC"``, ...), read from its JSON only."""
    file = Path(path)
    data = _model_json(file)
    module = str((data.get("policy_class") or {}).get("__module__", ""))
    parts = module.split(".")
    name = _ALGORITHMS.get(tuple(parts[:2]))  # type: ignore[arg-type]
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
            f"(one of {sorted(set(_ALGORITHMS.values()))})"
        )
    return name


def _algorithm_class(name: str) -> Any:
    for (package, _), class_name in _ALGORITHMS.items():
        if class_name.lower() == name.lower():
            try:
                module = __import__(package)
            except ImportError as error:
                raise DataError(
                    f"algorithm {class_name} needs the {package.replace('_', '-')} package "
                    f"(pip install {package.replace('_', '-')})"
                ) from error
            return getattr(module, class_name)
    raise DataError(f"unknown algorithm {name!r}: expected one of {sorted(set(_ALGORITHMS.values()))}")


def load_sb3_model(path: str | os.PathLike[str], env: gym.Env[Any, Any], algo: str | None = None) -> Any:
    """Load an SB3 model file for ``env``, also files saved by older SB3 versions.

    The spaces and schedules stored in old files are replaced by ``env``'s spaces and constant
    stubs (they are pickles of old gym classes); the stored shapes are checked against ``env``.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such SB3 model file")
    data = _model_json(file)
    name = algo or detect_algorithm(file)
    for role, space in (("observation_space", env.observation_space), ("action_space", env.action_space)):
        entry = data.get(role) or {}
        stored = entry.get("shape", entry.get("_shape"))  # old gym / gymnasium spelling
        if stored is not None and tuple(stored) != tuple(space.shape):
            raise DataError(
                f"{file}: the model's {role} has shape {tuple(stored)}, the env's is "
                f"{tuple(space.shape)} (expected the env the model was trained on)"
            )
    if not isinstance(env.action_space, gym.spaces.Box):
        raise DataError(f"env action space {env.action_space} is not a Box: expected continuous actions")
    custom_objects = {
        "observation_space": env.observation_space,
        "action_space": env.action_space,
        "lr_schedule": lambda _: 0.0,
        "learning_rate": 0.0,
        "clip_range": lambda _: 0.2,
        "exploration_schedule": lambda _: 0.0,
    }
    try:
        return _algorithm_class(name).load(str(file), device="cpu", custom_objects=custom_objects)
    except SAQError:
        raise
    except Exception as error:  # noqa: BLE001 - SB3 raises many kinds
        raise DataError(f"{file}: Stable-Baselines3 could not load it as {name} ({error})") from error


# ---------------------------------------------------------------------------------- policies
def sb3_policy(model: Any, deterministic: bool = False) -> Policy:
    """The SB3 model's policy as ``obs -> action``."""

    def act(observation: np.ndarray) -> np.ndarray:
        action, _ = model.predict(observation, deterministic=deterministic)
        return np.asarray(action)

    return act


def random_policy(action_space: gym.spaces.Box, seed: int = 0) -> Policy:
    """Uniform random actions in ``action_space`` (seeded)."""
    rng = np.random.default_rng(seed)
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise DataError(f"action space {action_space} is unbounded: a random policy needs finite bounds")

    def act(observation: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high).astype(action_space.dtype)

    return act


def noisy_policy(policy: Policy, action_space: gym.spaces.Box, noise_std: float, seed: int = 0) -> Policy:
    """``policy`` plus Gaussian noise of std ``noise_std * (high - low) / 2``, clipped to bounds."""
    rng = np.random.default_rng(seed)
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    scale = noise_std * (high - low) / 2.0

    def act(observation: np.ndarray) -> np.ndarray:
        action = np.asarray(policy(observation), dtype=np.float64)
        return np.clip(action + rng.standard_normal(action.shape) * scale, low, high)

    return act


# ---------------------------------------------------------------------------------- rollouts
def rollout(
    env: gym.Env[Any, Any],
    policy: Policy,
    *,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "rollout",
) -> list[dict[str, Any]]:
    """Collect Minari-style episodes (``T + 1`` observations) until a step or episode budget.

    Episode ``i`` is reset with ``seed + i``. When the step budget ends an episode early, its
    last step is marked truncated (a timeout: the episode was cut, its next observation is real).
    Actions are clipped into the env's action space and stored as float32.
    """
    if (n_steps is None) == (n_episodes is None):
        raise DataError("give exactly one of n_steps and n_episodes")
    budget = n_steps if n_steps is not None else n_episodes
    if budget is None or budget < 1:
        raise DataError(f"the budget must be >= 1, got {budget}")
    space = env.action_space
    low = np.asarray(space.low, dtype=np.float64)
    high = np.asarray(space.high, dtype=np.float64)
    episodes: list[dict[str, Any]] = []
    total = 0
    bar = tqdm(total=budget, desc=desc, unit="step" if n_steps else "ep", disable=not progress)
    while True:
        episode_seed = seed + len(episodes)
        observation, _ = env.reset(seed=episode_seed)
        observations = [np.asarray(observation)]
        actions, rewards, terminations, truncations = [], [], [], []
        while True:
            action = np.clip(np.asarray(policy(observation), dtype=np.float64), low, high)
            observation, reward, terminated, truncated, _ = env.step(action.astype(space.dtype))
            observations.append(np.asarray(observation))
            actions.append(action.astype(np.float32))
            rewards.append(float(reward))
            total += 1
            out_of_steps = n_steps is not None and total >= n_steps
            terminations.append(bool(terminated))
            truncations.append(bool(truncated) or (out_of_steps and not terminated))
            if n_steps is not None:
                bar.update(1)
            if terminated or truncated or out_of_steps:
                break
        episodes.append(
            {
                "observations": np.stack(observations),
                "actions": np.stack(actions),
                "rewards": np.asarray(rewards),
                "terminations": np.asarray(terminations),
                "truncations": np.asarray(truncations),
                "seed": episode_seed,
            }
        )
        if n_episodes is not None:
            bar.update(1)
        if (n_steps is not None and total >= n_steps) or (n_episodes is not None and len(episodes) >= n_episodes):
            break
    bar.close()
    return episodes


def mean_return(env: gym.Env[Any, Any], policy: Policy, n_episodes: int, seed: int, progress: bool = False) -> float:
    """Mean undiscounted return of ``policy`` over ``n_episodes`` seeded episodes."""
    episodes = rollout(env, policy, n_episodes=n_episodes, seed=seed, progress=progress, desc="reference")
    return float(np.mean([e["rewards"].sum() for e in episodes]))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate_dataset(
    model: str | os.PathLike[str] | None,
    env_id: str,
    dataset_id: str,
    recipe: str = "expert",
    *,
    n_steps: int | None = None,
    n_episodes: int | None = None,
    medium_model: str | os.PathLike[str] | None = None,
    noise_std: float = 0.5,
    algo: str | None = None,
    medium_algo: str | None = None,
    seed: int = 0,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    ref_episodes: int = 10,
    env_kwargs: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Roll out an SB3 agent with a D4RL-like recipe into a new Minari dataset.

    Args:
        model: the expert's SB3 model file (not needed for ``random`` when both reference
            scores are given).
        env_id: Gymnasium id (e.g. ``"Hopper-v5"``), made with ``gym.make(env_id, **env_kwargs)``.
        dataset_id: Minari id of the new dataset (``(namespace/)name-vN``).
        recipe: one of :data:`RECIPES`.
        n_steps / n_episodes: the budget (exactly one). For ``medium-expert`` it is split in
            halves.
        medium_model: a weaker agent for ``medium`` / ``medium-expert`` (else the noisy expert).
        noise_std: action-noise std of the noisy expert, in half action ranges.
        algo, medium_algo: algorithm names when they cannot be read from the files.
        seed: episode ``i`` of a part is reset with ``seed + i`` (parts use disjoint seeds).
        ref_min_score, ref_max_score: reference returns; measured when ``None``.
        ref_episodes: episodes per measured reference score.
        env_kwargs: extra ``gym.make`` kwargs.
        root: Minari datasets folder (default: Minari's).
        progress: show progress bars.

    Returns:
        The dataset folder; ``minari.load_dataset(dataset_id)`` and
        :func:`~saq_wrappers.integrations.minari.load_minari` open it.
    """
    if recipe not in RECIPES:
        raise DataError(f"unknown recipe {recipe!r}: expected one of {', '.join(RECIPES)}")
    if not (np.isfinite(noise_std) and noise_std >= 0):
        raise DataError(f"noise_std must be a finite number >= 0, got {noise_std}")
    try:
        env = gym.make(env_id, **(env_kwargs or {}))
    except gym.error.Error as error:
        raise DataError(f"cannot make Gymnasium env {env_id!r} ({error})") from error
    try:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise DataError(f"env {env_id!r} has actions {env.action_space}: expected a continuous Box")
        needs_expert = recipe != "random" or ref_max_score is None
        if needs_expert and model is None:
            raise DataError(f"recipe {recipe!r} needs an SB3 model file (model=...)")
        expert = load_sb3_model(model, env, algo) if needs_expert and model is not None else None
        medium_agent = None
        if medium_model is not None and recipe in ("medium", "medium-expert"):
            medium_agent = load_sb3_model(medium_model, env, medium_algo)

        def medium() -> Policy:
            if medium_agent is not None:
                return sb3_policy(medium_agent)
            return noisy_policy(sb3_policy(expert), env.action_space, noise_std, seed + 1)

        half_steps = None if n_steps is None else max(1, n_steps // 2)
        half_episodes = None if n_episodes is None else max(1, n_episodes // 2)
        if recipe == "random":
            episodes = rollout(env, random_policy(env.action_space, seed), n_steps=n_steps,
                               n_episodes=n_episodes, seed=seed, progress=progress, desc="random")
        elif recipe == "expert":
            episodes = rollout(env, sb3_policy(expert), n_steps=n_steps, n_episodes=n_episodes,
                               seed=seed, progress=progress, desc="expert")
        elif recipe == "medium":
            episodes = rollout(env, medium(), n_steps=n_steps, n_episodes=n_episodes, seed=seed,
                               progress=progress, desc="medium")
        else:  # medium-expert
            first = rollout(env, medium(), n_steps=half_steps, n_episodes=half_episodes, seed=seed,
                            progress=progress, desc="medium")
            rest_steps = None if n_steps is None else max(1, n_steps - sum(len(e["rewards"]) for e in first))
            rest_episodes = None if n_episodes is None else max(1, n_episodes - len(first))
            second = rollout(env, sb3_policy(expert), n_steps=rest_steps, n_episodes=rest_episodes,
                             seed=seed + 1_000_000, progress=progress, desc="expert")
            episodes = first + second
        reference_seed = seed + 2_000_000  # never a data episode's seed
        if ref_min_score is None:
            ref_min_score = mean_return(env, random_policy(env.action_space, reference_seed),
                                        ref_episodes, reference_seed, progress)
        if ref_max_score is None:
            ref_max_score = mean_return(env, sb3_policy(expert, deterministic=True), ref_episodes,
                                        reference_seed, progress)
        generation: dict[str, Any] = {
            "recipe": recipe,
            "env_id": env_id,
            "seed": seed,
            "noise_std": noise_std if recipe in ("medium", "medium-expert") and medium_agent is None else None,
            "ref_episodes": ref_episodes,
        }
        for role, file, agent in (("model", model, expert), ("medium_model", medium_model, medium_agent)):
            if file is not None and agent is not None:
                generation[role] = {"file": Path(file).name, "sha256": _sha256(Path(file)),
                                    "algorithm": type(agent).__name__}
        returns = [float(e["rewards"].sum()) for e in episodes]
        metadata = {
            "algorithm_name": f"saq-wrappers generate ({recipe})",
            "description": (
                f"{recipe} dataset for {env_id}: {len(episodes)} episodes, "
                f"{sum(len(e['rewards']) for e in episodes)} steps, mean return {np.mean(returns):.1f}"
            ),
            "ref_min_score": float(ref_min_score),
            "ref_max_score": float(ref_max_score),
            "num_episodes_average_score": int(ref_episodes),
            "saq_generation": generation,
        }
        spec = env.spec
        return write_minari_dataset(
            dataset_id,
            episodes,
            env.observation_space,
            env.action_space,
            env_spec=spec,
            eval_env_spec=spec,
            metadata=metadata,
            root=root,
        )
    finally:
        env.close()


# ---------------------------------------------------------------------------------- CLI
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``saq data generate`` (added to ``parser`` when given)."""
    parser = parser or argparse.ArgumentParser(
        prog="saq data generate",
        description=(
            "Roll out a Stable-Baselines3 agent in a Gymnasium task and write a Minari dataset "
            "with a D4RL-like recipe and reference scores."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", help="SB3 model file of the expert (.zip)")
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. Hopper-v5")
    parser.add_argument("--dataset-id", required=True, help="id of the new Minari dataset, e.g. hopper/medium-v0")
    parser.add_argument("--recipe", choices=RECIPES, default="expert", help="dataset recipe")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="total env steps")
    budget.add_argument("--episodes", type=int, help="number of episodes")
    parser.add_argument("--medium-model", help="SB3 model file of a weaker agent (medium recipes)")
    parser.add_argument("--noise-std", type=float, default=0.5,
                        help="action noise of the noisy expert (medium without --medium-model), in half ranges")
    parser.add_argument("--algo", help="algorithm of --model when it cannot be detected (SAC, TQC, PPO, ...)")
    parser.add_argument("--medium-algo", help="algorithm of --medium-model when it cannot be detected")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--ref-min", type=float, help="reference min score (default: measured random policy)")
    parser.add_argument("--ref-max", type=float, help="reference max score (default: measured deterministic expert)")
    parser.add_argument("--ref-episodes", type=int, default=10, help="episodes per measured reference score")
    parser.add_argument("--root", help="Minari datasets folder (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``saq data generate`` from parsed arguments; prints the dataset folder."""
    path = generate_dataset(
        args.model,
        args.env,
        args.dataset_id,
        args.recipe,
        n_steps=args.steps,
        n_episodes=args.episodes,
        medium_model=args.medium_model,
        noise_std=args.noise_std,
        algo=args.algo,
        medium_algo=args.medium_algo,
        seed=args.seed,
        ref_min_score=args.ref_min,
        ref_max_score=args.ref_max,
        ref_episodes=args.ref_episodes,
        root=args.root,
        progress=not args.quiet,
    )
    from .minari import minari_info

    info = minari_info(path)
    print(
        f"wrote {info.dataset_id} at {path}: {info.total_episodes} episodes, {info.total_steps} steps, "
        f"ref scores [{info.ref_min_score:.1f}, {info.ref_max_score:.1f}]"
    )
    return 0
