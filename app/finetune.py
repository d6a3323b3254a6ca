"""``saq finetune``: offline SAQ-CQL, then online SB3 DQN from it; return vs env steps.

A recipe, not an integration: d3rlpy trains the offline model (SAQ-CQL, SAQ section 4.2),
Stable-Baselines3 fine-tunes it online through ``SAQActionWrapper`` with the quantizer frozen
(:mod:`saq_wrappers.integrations.sb3`), and the data come from the built-in expert, a Minari
dataset, or an SB3 zoo agent rolled out into a Minari dataset (:mod:`saq_wrappers.app.generate`).
The SAQ paper leaves online fine-tuning open (SAQ section 6); this recipe measures one answer
against DQN from scratch and the offline policy alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from saq_wrappers.errors import DataError
from saq_wrappers.experts import default_cache_dir
from saq_wrappers.integrations.sb3 import (
    SAQDQN,
    EvaluationCurveCallback,
    add_offline_transitions,
    dqn_policy_kwargs,
    make_saq_vec_env,
    warm_started_dqn,
)
from saq_wrappers.io import file_sha256
from saq_wrappers.validation import check_int, check_number, check_regular_file, check_seed
from saq_wrappers.wrappers import SAQActionWrapper

from .datasets import BUILTIN_DATASET, DatasetSpec, LoadedDataset, check_env_id, load_dataset
from .experiment import (
    MAX_STEPS,
    EvaluationSettings,
    ExperimentSpec,
    QuantizerSettings,
    check_episode_count,
    check_steps,
)
from .generate import MAX_DATASET_STEPS, MODEL_FILE_HELP, TRUST_MODEL_PICKLE_HELP, generate_dataset
from .outputs import resolve_run_folder, run_folder
from .pipeline import ArtifactStore, ExperimentOutcome, run_experiment
from .plots import pyplot, save_figure

if TYPE_CHECKING:  # SB3 itself is imported through saq_wrappers.integrations (its gym notice silenced)
    from stable_baselines3.common.vec_env import VecEnv

__all__ = [
    "ARMS",
    "FinetuneConfig",
    "build_parser",
    "finetune_table",
    "plot_finetune_curves",
    "run",
    "run_finetune",
]


#: The arms :func:`run_finetune` can compare (the offline policy alone is always measured).
ARMS = ("finetune", "finetune-plain", "finetune-mixed", "scratch")
_ARM_LABELS = {
    "finetune": "DQN from SAQ-CQL (+ decaying conservative term)",
    "finetune-plain": "DQN from SAQ-CQL (plain DQN loss)",
    "finetune-mixed": "DQN from SAQ-CQL (+ conservative term, offline data in replay)",
    "scratch": "DQN from scratch (same wrapper, same net)",
}


@dataclasses.dataclass
class FinetuneConfig:
    """Options of :func:`run_finetune` (and of ``saq finetune``).

    Defaults fit a 2-core CPU in about 5-10 minutes on the built-in Pendulum expert data. Every
    option is checked when the config is made (:meth:`validate`), before any work.
    """

    dataset: str = BUILTIN_DATASET
    zoo_model: str | None = None
    env_id: str | None = None
    trust_model_pickle: bool = False
    trust_env_spec: bool = False
    dataset_steps: int = 50_000
    noise_std: float = 0.5
    n_codes: int = 16
    quantizer_steps: int = 3000
    offline_steps: int = 3000
    cql_alpha: float = 10.0
    online_steps: int = 8000
    eval_every: int = 1000
    eval_episodes: int = 10
    conservative_alpha: float = 1.0
    conservative_steps: int = 5000
    learning_starts: int = 1000
    scratch_exploration_fraction: float = 0.2
    arms: tuple[str, ...] = ("finetune", "finetune-plain", "finetune-mixed", "scratch")
    seed: int = 0
    output_dir: str | None = None
    name: str = "finetune"
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a bad option: every count is an integer within its bound, every weight a finite
        number >= 0 (a NaN ``cql_alpha`` gives a NaN loss), the seed in ``0 .. 2**32 - 1``, the
        arms known and distinct, the name a plain file stem (it names the result files).

        Raises:
            DataError: naming the option, what was expected and the value given.
        """
        check_seed("seed", self.seed)
        check_int("dataset_steps", self.dataset_steps, 1, MAX_DATASET_STEPS)
        for name in ("online_steps", "eval_every", "conservative_steps"):
            check_steps(name, getattr(self, name))
        check_int("learning_starts", self.learning_starts, 0, MAX_STEPS)
        check_episode_count("eval_episodes", self.eval_episodes)
        for name in ("noise_std", "cql_alpha", "conservative_alpha"):
            check_number(name, getattr(self, name), 0)
        check_number("scratch_exploration_fraction", self.scratch_exploration_fraction, 0, 1, exclusive_minimum=True)
        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown:
            raise DataError(f"unknown arms {unknown}: expected some of {', '.join(ARMS)}")
        if len(set(self.arms)) != len(self.arms):
            raise DataError(f"arms {list(self.arms)} name an arm twice: expected distinct arms")
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", self.name):
            raise DataError(f"name {self.name!r}: expected a file stem of letters, digits and . _ + - "
                            "(it names the result files inside the output folder)")
        if self.zoo_model is not None and self.env_id is None:
            raise DataError("--zoo-model needs --env (the Gymnasium id the model acts in, e.g. Hopper-v5)")
        if self.env_id is not None:
            check_env_id(self.env_id, "--env")
        _offline_spec(self, DatasetSpec.parse(BUILTIN_DATASET))  # sizes, steps and seed of the offline phase

    @classmethod
    def quick(cls, **overrides: Any) -> FinetuneConfig:
        """A smoke-test sized run (about a minute)."""
        settings: dict[str, Any] = dict(
            quantizer_steps=500, offline_steps=500, online_steps=1200, eval_every=400,
            eval_episodes=2, conservative_steps=600, learning_starts=200, dataset_steps=5000,
            name="finetune_quick",
        )
        settings.update(overrides)
        return cls(**settings)


def _dataset_spec(config: FinetuneConfig) -> DatasetSpec:
    """The dataset: built-in, a local Minari id/path, or (``zoo_model``) a ``medium`` dataset
    rolled out from an SB3 model file into the cache, once per model, size and noise level.

    ``trust_env_spec`` goes into the spec (the loader rebuilds a Minari dataset's env only from
    the Gymnasium registry without it); ``trust_model_pickle`` to the model loader."""
    if config.zoo_model is None:
        return dataclasses.replace(DatasetSpec.parse(config.dataset), trust_env_spec=config.trust_env_spec)
    assert config.env_id is not None  # FinetuneConfig.validate
    model_file = check_regular_file(config.zoo_model, "--zoo-model", "an SB3 model file (.zip)")
    model_sha256 = file_sha256(model_file)  # hashed once: generate_dataset records it
    digest = model_sha256[:10]
    env_name = config.env_id.split("-")[0].lower()
    # Minari ids allow no '.' in the name: the noise level is written as e.g. 0p5
    noise = f"{config.noise_std:g}".replace(".", "p").replace("-", "m")
    name = f"{env_name}-medium-{digest}-s{config.dataset_steps}-n{noise}-v0"
    dataset_id = f"saq-finetune/{name}"
    root = default_cache_dir() / "minari"
    folder = root / dataset_id
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        generate_dataset(config.zoo_model, config.env_id, dataset_id, "medium", n_steps=config.dataset_steps,
                         noise_std=config.noise_std, seed=config.seed, root=root, progress=config.progress,
                         trust_model_pickle=config.trust_model_pickle, model_sha256=model_sha256)
    return DatasetSpec(name=name, kind="minari", source=str(folder), trust_env_spec=config.trust_env_spec)


def _offline_spec(config: FinetuneConfig, dataset: DatasetSpec) -> ExperimentSpec:
    """The offline phase as one pipeline experiment: SAQ's quantizer (SAQ eqs. 5-7, frozen from
    here on) and SAQ-CQL (d3rlpy ``DiscreteCQL`` on the ``K`` codes, SAQ section 4.2), evaluated
    on the same seeded episodes as the online curves' points."""
    return ExperimentSpec(
        dataset=dataset, algo="SAQ-CQL", seed=config.seed, steps=config.offline_steps,
        quantizer=QuantizerSettings(n_codes=config.n_codes, steps=config.quantizer_steps),
        evaluation=EvaluationSettings(episodes=config.eval_episodes, curve_points=0, seed_offset=_EVAL_SEED_OFFSET),
        options=(("alpha", config.cql_alpha),), tag="finetune",
    )


#: The online curves and the offline policy are evaluated on episodes seeded from seed + this.
_EVAL_SEED_OFFSET = 10_000


def _arm_agent(
    arm: str, config: FinetuneConfig, venv: VecEnv, data: LoadedDataset, offline: ExperimentOutcome
) -> SAQDQN:
    """The online learner of one arm, built on ``venv`` (see :func:`run_finetune` for the arms)."""
    common: dict[str, Any] = dict(seed=config.seed, learning_starts=config.learning_starts,
                                  buffer_size=config.online_steps + len(data.transitions))
    if arm == "scratch":
        return SAQDQN("MlpPolicy", venv, double_q=True, learning_rate=3e-4, batch_size=256, gamma=0.99,
                      train_freq=1, gradient_steps=1, target_update_interval=200,
                      exploration_initial_eps=1.0, exploration_final_eps=0.05,
                      exploration_fraction=config.scratch_exploration_fraction, device="cpu",
                      policy_kwargs={**dqn_policy_kwargs(offline.algo), "optimizer_kwargs": {"weight_decay": 1e-3}},
                      **common)
    alpha = 0.0 if arm == "finetune-plain" else config.conservative_alpha
    agent = warm_started_dqn(venv, offline.algo, conservative_alpha=alpha,
                             conservative_steps=config.conservative_steps, **common)
    if arm == "finetune-mixed":
        assert offline.relabeled is not None  # SAQ-CQL trains on codes
        add_offline_transitions(agent, data.transitions, offline.relabeled.codes)
    return agent


def run_finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Offline SAQ-CQL, then online DQN from it; curves of return vs env steps.

    Steps: fit the VQ-VAE quantizer on the dataset and relabel it to ``K`` codes; train d3rlpy
    ``DiscreteCQL`` with the SAQ-CQL preset for ``offline_steps`` updates; evaluate it (the
    *offline policy alone*); then, on ``SAQActionWrapper(env, quantizer)`` with the quantizer
    frozen, train for ``online_steps`` env steps each arm of ``config.arms``:

    - ``finetune``: :func:`~saq_wrappers.integrations.sb3.warm_started_dqn` from the SAQ-CQL
      model with the decaying conservative term (``conservative_alpha`` -> 0 over
      ``conservative_steps``);
    - ``finetune-plain``: the same warm start with SB3's plain DQN loss;
    - ``finetune-mixed``: ``finetune`` with the offline transitions (relabeled to codes) put in
      the replay buffer first (:func:`~saq_wrappers.integrations.sb3.add_offline_transitions`;
      each run records ``offline_transitions_in_replay``, the buffer's size before its first
      online step);
    - ``scratch``: the same :class:`~saq_wrappers.integrations.sb3.SAQDQN` (same net,
      observation normalization and hyperparameters) from random weights with SB3's usual
      epsilon schedule (1 -> 0.05 over ``scratch_exploration_fraction`` of the run).

    Every arm is evaluated greedily every ``eval_every`` env steps on the same seeded episodes
    (the first point is before any update: for the warm-started arms it equals the offline
    policy's return). Writes ``{name}.json``, ``{name}.md``, ``{name}.png``, the quantizer and the
    SAQ-CQL model to the output folder, which appears only when the run has finished
    (:mod:`saq_wrappers.app.outputs`), and returns the results.
    """
    config.validate()  # a config changed after it was made is checked again, before any work
    if config.zoo_model is None:
        _dataset_spec(config).check()
    else:
        check_regular_file(config.zoo_model, "--zoo-model", "an SB3 model file (.zip)")
    target = resolve_run_folder(config.output_dir, "finetune")
    say = print if config.progress else (lambda *_: None)
    started = time.perf_counter()
    load_at_start = os.getloadavg()

    with run_folder(target) as folder:
        dataset = _dataset_spec(config)
        data = load_dataset(dataset, progress=config.progress)
        env_maker = data.make_env
        say(f"dataset {data.name}: {len(data.transitions)} transitions, {data.transitions.n_episodes} episodes, "
            f"mean return {float(data.transitions.episode_returns().mean()):.1f}")
        offline = run_experiment(_offline_spec(config, dataset), ArtifactStore(folder, keyed=False), data=data,
                                 progress=config.progress, model_path=folder / "saq_cql.d3", say=say)
        record = offline.record
        say(f"offline SAQ-CQL: return {record['evaluation']['mean_return']:.1f} ± "
            f"{record['evaluation']['std_return']:.1f}")
        eval_seed = config.seed + _EVAL_SEED_OFFSET

        runs: list[dict[str, Any]] = []
        for arm in config.arms:
            phase = time.perf_counter()
            venv = make_saq_vec_env(env_maker, offline.action_set, n_envs=1, seed=config.seed)
            agent = _arm_agent(arm, config, venv, data, offline)
            # Measured in the replay buffer before any online step: only the offline rows are there.
            offline_in_replay = int(agent.replay_buffer.size())  # type: ignore[union-attr]
            eval_env = SAQActionWrapper(env_maker(), offline.action_set)
            callback = EvaluationCurveCallback(eval_env, config.eval_every, config.eval_episodes, seed=eval_seed,
                                               verbose=int(config.progress))
            say(f"{arm}: {_ARM_LABELS[arm]}")
            agent.learn(config.online_steps, callback=callback, progress_bar=False)
            curve = callback.curve
            runs.append({
                "arm": arm,
                "label": _ARM_LABELS[arm],
                "curve": curve,
                "start_return": curve[0]["mean_return"],
                "final_return": curve[-1]["mean_return"],
                "min_return": min(p["mean_return"] for p in curve),
                "max_return": max(p["mean_return"] for p in curve),
                "seconds": time.perf_counter() - phase,
                "updates": int(agent._n_updates),
                "conservative_alpha": float(getattr(agent, "conservative_alpha", 0.0)),
                "conservative_steps": int(getattr(agent, "conservative_steps", 0)),
                "offline_transitions_in_replay": offline_in_replay,
            })
            venv.close()
            eval_env.close()

        quantizer = record["quantizer"]
        results: dict[str, Any] = {
            "config": dataclasses.asdict(config),
            "output_dir": str(target),
            "dataset": record["data"],
            "quantizer": {"n_codes": config.n_codes, "used_codes": quantizer["codes_used"],
                          "reconstruction_mse": quantizer["reconstruction_mse"], "seconds": quantizer["fit_seconds"]},
            "offline": {"algo": "SAQ-CQL (d3rlpy DiscreteCQL, saq_cql_config)", "steps": config.offline_steps,
                        "seconds": record["training"]["train_seconds"], "evaluation": record["evaluation"],
                        "record": record},
            "runs": runs,
            "total_seconds": time.perf_counter() - started,
            "load_average_at_start": list(load_at_start),
            "load_average_at_end": list(os.getloadavg()),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        }
        table = finetune_table(results)
        (folder / f"{config.name}.json").write_text(json.dumps(results, indent=2))
        (folder / f"{config.name}.md").write_text(table + "\n")
        plot_finetune_curves(results, folder / f"{config.name}.png")
    print("\n" + table)
    say(f"\nwrote {target / config.name}.json/.md/.png (and the quantizer and the SAQ-CQL model)")
    return results


def finetune_table(results: dict[str, Any]) -> str:
    """Markdown: the offline policy, then each arm's return at the start, worst, final."""
    offline = results["offline"]["evaluation"]
    lines = [
        (f"Dataset {results['dataset']['name']} ({results['dataset']['transitions']} transitions, mean return "
        f"{results['dataset']['mean_return']:.1f}); K={results['quantizer']['n_codes']} codes "
        f"({results['quantizer']['used_codes']} used); SAQ-CQL {results['offline']['steps']} updates; "
        f"{results['config']['online_steps']} online env steps; evaluation "
        f"{results['config']['eval_episodes']} seeded episodes per point; load average "
        f"{results['load_average_at_start'][0]:.1f} -> {results['load_average_at_end'][0]:.1f} "
        f"on {results['cpu_count']} CPUs; total {results['total_seconds']:.0f} s."),
        "",
        "| method | return at step 0 | worst point | final return | best point | online time (s) |",
        "|---|---|---|---|---|---|",
        f"| offline SAQ-CQL alone | {offline['mean_return']:.1f} | - | {offline['mean_return']:.1f} | - | - |",
    ]
    for run in results["runs"]:
        lines.append(
            f"| {run['label']} | {run['start_return']:.1f} | {run['min_return']:.1f} | {run['final_return']:.1f} | "
            f"{run['max_return']:.1f} | {run['seconds']:.0f} |"
        )
    lines += ["", "Return vs env steps:", "",
              "| env steps | " + " | ".join(run["arm"] for run in results["runs"]) + " |",
              "|---|" + "---|" * len(results["runs"])]
    steps = sorted({p["env_steps"] for run in results["runs"] for p in run["curve"]})
    for step in steps:
        cells = []
        for run in results["runs"]:
            point = next((p for p in run["curve"] if p["env_steps"] == step), None)
            cells.append("" if point is None else f"{point['mean_return']:.1f}")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_finetune_curves(results: dict[str, Any], path: Path) -> None:
    """Return vs env steps for each arm, the offline policy as a horizontal line (atomic PNG)."""
    figure, axis = pyplot().subplots(figsize=(7, 4.5))
    for run in results["runs"]:
        curve = run["curve"]
        x = [p["env_steps"] for p in curve]
        y = np.array([p["mean_return"] for p in curve])
        s = np.array([p["std_return"] for p in curve])
        axis.plot(x, y, marker="o", markersize=3, label=run["label"])
        axis.fill_between(x, y - s, y + s, alpha=0.15)
    offline = results["offline"]["evaluation"]["mean_return"]
    axis.axhline(offline, color="black", linestyle="--", linewidth=1.2, label="offline SAQ-CQL alone")
    for key, label in (("expert_return", "expert"), ("random_return", "random")):
        value = results["dataset"].get(key)
        if value is not None:
            axis.axhline(value, color="gray", linestyle=":", linewidth=1)
            axis.text(0, value, f" {label}", va="bottom", color="gray", fontsize=8)
    axis.set_xlabel("online env steps")
    axis.set_ylabel(f"greedy return ({results['config']['eval_episodes']} seeded episodes)")
    axis.set_title(f"offline SAQ-CQL -> online DQN: {results['dataset']['name']}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``saq finetune`` (added to ``parser`` when given)."""
    parser = parser or argparse.ArgumentParser(
        prog="saq finetune",
        description=(
            "Offline SAQ-CQL (d3rlpy) then online DQN (SB3) through the SAQ wrapper with the "
            "quantizer frozen; curves of return vs env steps for DQN fine-tuned from SAQ-CQL, DQN "
            "from scratch and the offline policy alone (JSON, Markdown, PNG)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = FinetuneConfig()
    parser.add_argument("--dataset", default=d.dataset,
                        help="built-in dataset, local Minari dataset id, or Minari dataset folder")
    parser.add_argument("--zoo-model", default=None,
                        help=f"SB3 model file: generate a 'medium' dataset from it instead (with --env). "
                             f"{MODEL_FILE_HELP}")
    parser.add_argument("--trust-model-pickle", action="store_true", help=TRUST_MODEL_PICKLE_HELP)
    parser.add_argument("--env", dest="env_id", default=None, help="Gymnasium id for --zoo-model, e.g. Hopper-v5")
    parser.add_argument("--trust-dataset-env", dest="trust_env_spec", action="store_true",
                        help="rebuild the dataset's env from whatever entry point its Minari metadata names "
                             "(this imports and runs that code); without it only the installed Gymnasium "
                             "registry's entry point for the env id is used")
    parser.add_argument("--dataset-steps", type=int, default=d.dataset_steps, help="env steps of the generated dataset")
    parser.add_argument("--noise-std", type=float, default=d.noise_std,
                        help="action noise of the generated medium dataset (half ranges)")
    parser.add_argument("--n-codes", "-k", type=int, default=d.n_codes, help="codebook size K")
    parser.add_argument("--quantizer-steps", type=int, default=d.quantizer_steps, help="VQ-VAE updates")
    parser.add_argument("--offline-steps", type=int, default=d.offline_steps, help="SAQ-CQL updates")
    parser.add_argument("--cql-alpha", type=float, default=d.cql_alpha, help="SAQ-CQL alpha (offline)")
    parser.add_argument("--online-steps", type=int, default=d.online_steps, help="online env steps per arm")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=d.eval_episodes, help="episodes per evaluation point")
    parser.add_argument("--conservative-alpha", type=float, default=d.conservative_alpha,
                        help="initial weight of the online conservative term")
    parser.add_argument("--conservative-steps", type=int, default=d.conservative_steps,
                        help="env steps over which that weight decays to 0")
    parser.add_argument("--learning-starts", type=int, default=d.learning_starts, help="env steps before updates")
    parser.add_argument("--arms", default=",".join(d.arms),
                        help=f"comma-separated arms among {', '.join(ARMS)}")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed")
    parser.add_argument("--output", default=None, help="output folder (default: saq_runs/finetune-TIMESTAMP)")
    parser.add_argument("--name", default=None, help="file stem of the results (default: finetune[_quick])")
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes (about a minute)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``saq finetune`` from parsed arguments."""
    defaults = FinetuneConfig.quick() if args.quick else FinetuneConfig()
    explicit = {
        "dataset": args.dataset, "zoo_model": args.zoo_model, "env_id": args.env_id,
        "trust_model_pickle": args.trust_model_pickle, "trust_env_spec": args.trust_env_spec,
        "noise_std": args.noise_std, "n_codes": args.n_codes, "cql_alpha": args.cql_alpha,
        "conservative_alpha": args.conservative_alpha, "seed": args.seed, "output_dir": args.output,
        "progress": not args.quiet, "arms": tuple(a.strip() for a in args.arms.split(",") if a.strip()),
    }
    # Size options: --quick changes their defaults, an explicitly given value still wins.
    parser_defaults = FinetuneConfig()
    for field in ("dataset_steps", "quantizer_steps", "offline_steps", "online_steps", "eval_every",
                  "eval_episodes", "conservative_steps", "learning_starts"):
        value = getattr(args, field)
        explicit[field] = value if value != getattr(parser_defaults, field) else getattr(defaults, field)
    explicit["name"] = args.name or defaults.name
    run_finetune(dataclasses.replace(defaults, **explicit))
    return 0
