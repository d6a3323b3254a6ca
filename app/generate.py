"""Offline datasets from Stable-Baselines3 agents, written as Minari datasets (``saq data generate``).

A recipe, not an integration: it joins SB3 (the agents, :mod:`saq_wrappers.integrations.sb3.models`)
and Minari (the dataset format, :mod:`saq_wrappers.integrations.minari`) through the core
rollouts (:mod:`saq_wrappers.rollouts`).

D4RL-like recipes, for any SB3 model file (SAC, TD3, DDPG, PPO, A2C; TQC, TRPO, CrossQ from
sb3-contrib) in any Gymnasium task with a ``Box`` action space:

* ``expert``: the agent's own (stochastic) policy, as D4RL sampled its SAC experts;
* ``expert-mean``: the same agent acting by its mean (deterministic) action: noise-free
  demonstrations of the same expert, a control that separates what the sampled actions' noise
  costs a learner from what the data's size does (a code policy's labels are mostly that noise:
  see the docs' design note ``docs/notes/acting.md``);
* ``medium``: a weaker agent (``medium_model``), or else the expert with Gaussian action noise
  of std ``noise_std`` (in units of half the action range);
* ``medium-expert``: half the steps from ``medium`` then half from ``expert`` (D4RL's mixture);
* ``random``: uniformly random actions.

Reference scores follow D4RL: ``ref_min_score`` is the mean return of the random policy and
``ref_max_score`` the mean return of the expert's deterministic policy, over ``ref_episodes``
episodes (or the values given). They go into the Minari metadata, so
:func:`saq_wrappers.integrations.minari.minari_info` gives normalized scores.

Episode ``i`` is reset with seed ``seed + i`` (recorded per episode); a run stopped by the step
budget ends with a truncated (timeout) episode, whose next observation is real. The stochastic
agents sample their actions from torch's global generator, which SB3's load re-seeds with the
seed saved in the model file (and torch seeds at random when the file has none): generation
seeds it with ``seed`` once the agents are loaded, so ``seed`` alone decides the dataset on one
kind of machine, and restores the caller's global generators (torch, numpy, ``random``) on
return. ``agent_seed="model"`` instead keeps the generator as the last load left it, seeded with
the file's stored seed: the recipe the ``standard`` benchmark suite's first data were written
with (before generation seeded the agents), which it writes again on a machine of the same kind.
Across machines the episodes also depend on the library versions and on the CPU's vector
capability (AVX2 vs AVX-512 GEMM kernels round the agent's network differently in the last bits,
which chaotic dynamics amplify), so the metadata records both.

SB3 model files hold pickles (SB3's own format). They are loaded without running any
(:func:`~saq_wrappers.integrations.sb3.models.load_sb3_model` says how); a file that needs more
is refused unless ``trust_model_pickle=True`` (``--trust-model-pickle``), which lets SB3 unpickle
it: only for files you trust.

Example:
    >>> from saq_wrappers.app.generate import generate_dataset          # doctest: +SKIP
    >>> generate_dataset("tqc_hopper.zip", "Hopper-v5", "hopper/expert-v0", n_steps=100_000)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.minari import check_new_dataset, minari_info, write_minari_dataset
from saq_wrappers.integrations.sb3.models import load_sb3_model, rollout_policy
from saq_wrappers.io import file_sha256
from saq_wrappers.rollouts import StepPolicy, mean_return, noisy_policy, random_policy, rollout
from saq_wrappers.validation import check_int, check_number, check_seed

from .experiment import check_episode_count
from .rng import global_rng_kept

__all__ = ["AGENT_SEEDS", "MAX_DATASET_EPISODES", "MAX_DATASET_STEPS", "MODEL_FILE_HELP", "RECIPES",
           "TRUST_MODEL_PICKLE_HELP", "build_parser", "generate_dataset", "run"]

#: The dataset recipes: D4RL's names, and ``expert-mean`` (the expert's noise-free mean actions).
RECIPES = ("expert", "expert-mean", "medium", "medium-expert", "random")
#: Most env steps of a generated dataset (D4RL's largest have 2 million): every row is held in memory.
MAX_DATASET_STEPS = 10_000_000
#: Most episodes of a generated dataset.
MAX_DATASET_EPISODES = 1_000_000
#: Where the agents' sampled actions start: ``seed`` (generation seeds torch) or ``model`` (the
#: seed stored in the model file, as SB3's load leaves the generator).
AGENT_SEEDS = ("seed", "model")

#: What loading an SB3 model file runs, for the help of every option taking one.
MODEL_FILE_HELP = (
    "Loaded without running its pickles: the spaces, schedules and training state are replaced, "
    "the other pickled entries may name only classes SB3 stores (policies, layers, optimizers, "
    "buffers, numpy values) and the tensors are read with torch.load(weights_only=True); a file "
    "needing more, or any file with stable-baselines3 < 2.8 or torch < 2.10 installed, is refused "
    "(see --trust-model-pickle)"
)
#: The help of ``--trust-model-pickle``.
TRUST_MODEL_PICKLE_HELP = (
    "load the SB3 model files the way SB3 does by default, unpickling whatever they hold: this "
    "runs code from the files, use it only for files you trust"
)


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
    trust_model_pickle: bool = False,
    agent_seed: str = "seed",
    model_sha256: str | None = None,
) -> Path:
    """Roll out an SB3 agent with a D4RL-like recipe into a new Minari dataset.

    Args:
        model: the expert's SB3 model file (not needed for ``random`` when both reference
            scores are given).
        env_id: Gymnasium id (e.g. ``"Hopper-v5"``), made with ``gym.make(env_id, **env_kwargs)``.
        dataset_id: Minari id of the new dataset (``(namespace/)name-vN``).
        recipe: one of :data:`RECIPES`; ``expert-mean`` records the expert's mean actions, the
            noise-free control of ``expert``'s sampled ones.
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
        trust_model_pickle: let SB3 unpickle the model files' pickled entries that the safe
            loader refuses (they can run code): only for files you trust.
        agent_seed: where the agents' sampled actions start: ``"seed"`` (torch's generator
            seeded with ``seed`` after loading) or ``"model"`` (as SB3's load of the last agent
            left it, seeded with its file's stored seed; every file must store one).
        model_sha256: the sha256 of ``model`` when the caller has hashed it already (``saq
            finetune`` names its dataset by it), recorded instead of hashing the file again.

    Returns:
        The dataset folder; ``minari.load_dataset(dataset_id)`` and
        :func:`~saq_wrappers.integrations.minari.load_minari` open it.
    """
    if recipe not in RECIPES:
        raise DataError(f"unknown recipe {recipe!r}: expected one of {', '.join(RECIPES)}")
    if agent_seed not in AGENT_SEEDS:
        raise DataError(f"unknown agent_seed {agent_seed!r}: expected one of {', '.join(AGENT_SEEDS)}")
    if (n_steps is None) == (n_episodes is None):
        raise DataError(f"give exactly one of n_steps and n_episodes, got {n_steps!r} and {n_episodes!r}")
    if n_steps is not None:
        check_int("n_steps", n_steps, 1, MAX_DATASET_STEPS)
    else:
        check_int("n_episodes", n_episodes, 1, MAX_DATASET_EPISODES)
    check_seed("seed", seed)
    check_number("noise_std", noise_std, 0)
    check_episode_count("ref_episodes", ref_episodes)
    # what the writer refuses (id, folder, reference scores), checked again when written: here before any rollout
    check_new_dataset(dataset_id, root, ref_min_score, ref_max_score)
    try:
        env = gym.make(env_id, **(env_kwargs or {}))
    except gym.error.Error as error:
        raise DataError(f"cannot make Gymnasium env {env_id!r} ({error})") from error
    try:
        # SB3 samples from the global generators and its load re-seeds them with the seed stored
        # in the file (if any): both are undone on return, and ``seed`` alone decides the samples
        with global_rng_kept():
            if not isinstance(env.action_space, gym.spaces.Box):
                raise DataError(f"env {env_id!r} has actions {env.action_space}: expected a continuous Box")
            needs_expert = recipe != "random" or ref_max_score is None
            if needs_expert and model is None:
                raise DataError(f"recipe {recipe!r} needs an SB3 model file (model=...)")
            expert = (load_sb3_model(model, env, algo, trust_pickle=trust_model_pickle)
                      if needs_expert and model is not None else None)
            medium_agent = None
            if medium_model is not None and recipe in ("medium", "medium-expert"):
                medium_agent = load_sb3_model(medium_model, env, medium_algo, trust_pickle=trust_model_pickle)
            if agent_seed == "seed":
                torch.manual_seed(seed)
            else:
                for file, agent in ((model, expert), (medium_model, medium_agent)):
                    if agent is not None and getattr(agent, "seed", None) is None:
                        raise DataError(f"agent_seed='model' needs model files that store a seed; "
                                        f"{str(file)!r} stores none (use agent_seed='seed')")

            def medium() -> StepPolicy:
                if medium_agent is not None:
                    return rollout_policy(medium_agent)
                return noisy_policy(rollout_policy(expert), env.action_space, noise_std, seed + 1)

            half_steps = None if n_steps is None else max(1, n_steps // 2)
            half_episodes = None if n_episodes is None else max(1, n_episodes // 2)
            if recipe == "random":
                episodes = rollout(env, random_policy(env.action_space, seed), n_steps=n_steps,
                                   n_episodes=n_episodes, seed=seed, progress=progress, desc="random")
            elif recipe in ("expert", "expert-mean"):
                # expert-mean records the mean action the sampled expert's noise is drawn around
                # (as D4RL's ref_max_score acts): what the noise costs a learner shows against it
                episodes = rollout(env, rollout_policy(expert, deterministic=recipe == "expert-mean"),
                                   n_steps=n_steps, n_episodes=n_episodes, seed=seed, progress=progress,
                                   desc=recipe)
            elif recipe == "medium":
                episodes = rollout(env, medium(), n_steps=n_steps, n_episodes=n_episodes, seed=seed,
                                   progress=progress, desc="medium")
            else:  # medium-expert
                first = rollout(env, medium(), n_steps=half_steps, n_episodes=half_episodes, seed=seed,
                                progress=progress, desc="medium")
                rest_steps = None if n_steps is None else max(1, n_steps - sum(len(e["rewards"]) for e in first))
                rest_episodes = None if n_episodes is None else max(1, n_episodes - len(first))
                second = rollout(env, rollout_policy(expert), n_steps=rest_steps, n_episodes=rest_episodes,
                                 seed=seed + 1_000_000, progress=progress, desc="expert")
                episodes = first + second
            reference_seed = seed + 2_000_000  # never a data episode's seed
            if ref_min_score is None:
                ref_min_score = mean_return(env, random_policy(env.action_space, reference_seed),
                                            ref_episodes, reference_seed, progress)
            if ref_max_score is None:
                ref_max_score = mean_return(env, rollout_policy(expert, deterministic=True), ref_episodes,
                                            reference_seed, progress)
            generation: dict[str, Any] = {
                "recipe": recipe,
                "env_id": env_id,
                "seed": seed,
                "agent_seed": agent_seed,
                "noise_std": noise_std if recipe in ("medium", "medium-expert") and medium_agent is None else None,
                "ref_episodes": ref_episodes,
                # the episodes depend on these: another MuJoCo release or another CPU vector
                # capability (torch's GEMMs round differently) changes the agents' last bits
                "versions": _library_versions(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            }
            for role, file, agent in (("model", model, expert), ("medium_model", medium_model, medium_agent)):
                if file is not None and agent is not None:
                    digest = model_sha256 if role == "model" and model_sha256 is not None else file_sha256(file)
                    generation[role] = {"file": Path(file).name, "sha256": digest, "algorithm": type(agent).__name__}
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


def _library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide the generated episodes."""
    versions = {}
    for package in ("mujoco", "gymnasium", "stable-baselines3", "sb3-contrib", "torch", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


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
    parser.add_argument("--model", help=f"SB3 model file of the expert (.zip). {MODEL_FILE_HELP}")
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. Hopper-v5")
    parser.add_argument("--dataset-id", required=True, help="id of the new Minari dataset, e.g. hopper/medium-v0")
    parser.add_argument("--recipe", choices=RECIPES, default="expert", help="dataset recipe")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="total env steps")
    budget.add_argument("--episodes", type=int, help="number of episodes")
    parser.add_argument("--medium-model", help="SB3 model file of a weaker agent (medium recipes), loaded as --model")
    parser.add_argument("--noise-std", type=float, default=0.5,
                        help="action noise of the noisy expert (medium without --medium-model), in half ranges")
    parser.add_argument("--algo", help="algorithm of --model when it cannot be detected (SAC, TQC, PPO, ...)")
    parser.add_argument("--medium-algo", help="algorithm of --medium-model when it cannot be detected")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--ref-min", type=float, help="reference min score (default: measured random policy)")
    parser.add_argument("--ref-max", type=float, help="reference max score (default: measured deterministic expert)")
    parser.add_argument("--ref-episodes", type=int, default=10, help="episodes per measured reference score")
    parser.add_argument("--root", help="Minari datasets folder (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    parser.add_argument("--trust-model-pickle", action="store_true", help=TRUST_MODEL_PICKLE_HELP)
    parser.add_argument("--agent-seed", choices=AGENT_SEEDS, default="seed",
                        help="seed the agents' sampled actions with --seed, or keep the seed stored in the model file")
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
        trust_model_pickle=args.trust_model_pickle,
        agent_seed=args.agent_seed,
    )
    info = minari_info(path)
    print(
        f"wrote {info.dataset_id} at {path}: {info.total_episodes} episodes, {info.total_steps} steps, "
        f"ref scores [{info.ref_min_score:.1f}, {info.ref_max_score:.1f}]"
    )
    return 0
