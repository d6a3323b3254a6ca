"""``saq quickstart``: SAQ-X next to continuous X on one dataset, trained and evaluated in minutes.

The default needs no network and no pre-trained agent: the package's scripted Pendulum expert
(:mod:`saq_wrappers.experts`) produces a narrow, noisy expert dataset, cached after the first
run. The job fits the quantizer, relabels the data to codes, trains the SAQ algorithm with d3rlpy
and the continuous d3rlpy counterpart on the same data for the same wall-clock (or step) budget,
evaluates both in the env, and writes a table, a JSON of every number, the learning-curve PNG,
the quantizer and both models to one output folder.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any, Callable

import d3rlpy
import gymnasium as gym
import numpy as np

from saq_wrappers.errors import DataError, OutputPathError
from saq_wrappers.evaluation import normalized_score
from saq_wrappers.experts import quickstart_dataset
from saq_wrappers.integrations.d3rlpy import presets
from saq_wrappers.integrations.d3rlpy.datasets import to_continuous_dataset, to_discrete_dataset
from saq_wrappers.integrations.d3rlpy.evaluation import evaluate_algo
from saq_wrappers.integrations.d3rlpy.training import TrainingRecord, train_with_budget
from saq_wrappers.io import atomic_output
from saq_wrappers.transitions import Transitions, relabel
from saq_wrappers.vqvae import VQVAEQuantizer

#: The dataset used when none is given.
BUILTIN_DATASET = "builtin:pendulum-expert"
ALGORITHMS = ("cql", "bc", "iql", "brac")


@dataclasses.dataclass
class QuickstartConfig:
    """Options of :func:`run_quickstart` (and of ``saq quickstart``)."""

    dataset: str = BUILTIN_DATASET
    algo: str = "cql"
    n_codes: int = 16
    quantizer_steps: int = 3000
    time_budget: float | None = 90.0
    steps: int | None = None
    eval_episodes: int = 10
    curve_points: int = 6
    seed: int = 0
    output_dir: str | None = None
    baseline: bool = True
    progress: bool = True


@dataclasses.dataclass
class LoadedDataset:
    """A dataset with the env to evaluate in and its reference returns."""

    name: str
    transitions: Transitions
    make_env: Callable[[], gym.Env[Any, Any]]
    random_return: float | None
    expert_return: float | None


def load_dataset(spec: str, progress: bool = True) -> LoadedDataset:
    """``builtin:pendulum-expert``, or a local Minari dataset id / path (never downloaded here:
    ``minari download ID`` first). Minari's ``ref_min_score``/``ref_max_score`` give the
    normalized score."""
    if spec == BUILTIN_DATASET:
        transitions, meta = quickstart_dataset(progress=progress)
        return LoadedDataset(
            name=spec,
            transitions=transitions,
            make_env=lambda: gym.make(meta["env_id"]),
            random_return=meta["random_return"],
            expert_return=meta["expert_return"],
        )
    from saq_wrappers.integrations.minari import load_minari, minari_info

    info = minari_info(spec)
    return LoadedDataset(
        name=info.dataset_id,
        transitions=load_minari(spec),
        make_env=info.make_env,
        random_return=info.ref_min_score,
        expert_return=info.ref_max_score,
    )


def saq_config(algo: str, n_steps: int | None = None) -> Any:
    """The SAQ preset of ``algo`` (a d3rlpy discrete config).

    SAQ-BRAC learns pi_beta in a first phase; a short run gives that phase a tenth of its steps
    (1,000 updates under a time budget, where the step count is not known in advance).
    """
    if algo not in ALGORITHMS:
        raise DataError(f"unknown algorithm {algo!r}: expected one of {', '.join(ALGORITHMS)}")
    if algo == "brac":
        pretrain = max(1, n_steps // 10) if n_steps is not None else 1000
        return presets.saq_brac_config(behavior_pretrain_steps=pretrain)
    factories = {"cql": presets.saq_cql_config, "bc": presets.saq_bc_config, "iql": presets.saq_iql_config}
    return factories[algo]()


def continuous_baseline(algo: str, action_space: gym.spaces.Box) -> tuple[str, Any]:
    """The continuous d3rlpy counterpart of ``algo``, with d3rlpy's default networks.

    d3rlpy ships no BRAC; its nearest behavior-regularized actor-critic is TD3+BC.
    """
    scalers: dict[str, Any] = dict(
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        action_scaler=d3rlpy.preprocessing.MinMaxActionScaler(
            minimum=np.asarray(action_space.low, dtype=np.float32),
            maximum=np.asarray(action_space.high, dtype=np.float32),
        ),
    )
    configs: dict[str, tuple[str, Callable[..., Any]]] = {
        "cql": ("CQL", d3rlpy.algos.CQLConfig),
        "bc": ("BC", d3rlpy.algos.BCConfig),
        "iql": ("IQL", d3rlpy.algos.IQLConfig),
        "brac": ("TD3+BC", d3rlpy.algos.TD3PlusBCConfig),
    }
    name, factory = configs[algo]
    return name, factory(batch_size=256, **scalers)


def _output_folder(config: QuickstartConfig) -> Path:
    if config.output_dir is not None:
        folder = Path(config.output_dir)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = Path("saq_runs") / f"quickstart-{config.algo}-{stamp}"
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"cannot create output folder {str(folder)!r}: {str(parent)!r} does not exist")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"cannot create output folder {str(folder)!r}: {error}") from error
    probe = folder / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputPathError(f"output folder {str(folder)!r} is not writable: {error}") from error
    return folder


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    """Run the whole job; returns (and writes) the results. See the module docstring."""
    if config.algo not in ALGORITHMS:
        raise DataError(f"unknown algorithm {config.algo!r}: expected one of {', '.join(ALGORITHMS)}")
    if config.n_codes < 2:
        raise DataError(f"n_codes (K) must be >= 2, got {config.n_codes}")
    folder = _output_folder(config)
    say = print if config.progress else (lambda *_: None)
    started = time.perf_counter()

    data = load_dataset(config.dataset, progress=config.progress)
    env = data.make_env()
    say(f"dataset {data.name}: {len(data.transitions)} transitions, {data.transitions.n_episodes} episodes")

    quantizer = VQVAEQuantizer(env.observation_space, env.action_space, n_codes=config.n_codes, seed=config.seed)
    fit_started = time.perf_counter()
    fit_metrics = quantizer.fit(data.transitions, n_steps=config.quantizer_steps, progress=config.progress)
    fit_seconds = time.perf_counter() - fit_started
    quantizer.save(folder / "quantizer.safetensors")
    relabeled = relabel(data.transitions, quantizer, progress=config.progress)
    discrete = to_discrete_dataset(data.transitions, relabeled)

    def score_of(algo: Any, action_set: Any, episodes: int) -> float:
        return evaluate_algo(algo, env, action_set, n_episodes=episodes, seed=config.seed + 1000,
                             progress=False).mean_return

    runs: list[dict[str, Any]] = []
    saq_name = f"SAQ-{config.algo.upper()}"
    d3rlpy.seed(config.seed)
    saq_algo = saq_config(config.algo, config.steps).create(device="cpu")
    record = train_with_budget(
        saq_algo, discrete, time_budget=config.time_budget, n_steps=config.steps,
        evaluate=lambda a: score_of(a, quantizer, 3), n_evaluations=config.curve_points,
        progress=config.progress, desc=saq_name,
    )
    final = evaluate_algo(saq_algo, env, quantizer, config.eval_episodes, config.seed, progress=False)
    saq_algo.save(str(folder / f"saq_{config.algo}.d3"))
    runs.append(_run_row(saq_name, record, final, data, relabeled.stats))

    if config.baseline:
        baseline_name, baseline_config = continuous_baseline(config.algo, env.action_space)
        d3rlpy.seed(config.seed)
        baseline = baseline_config.create(device="cpu")
        record = train_with_budget(
            baseline, to_continuous_dataset(data.transitions), time_budget=config.time_budget,
            n_steps=config.steps, evaluate=lambda a: score_of(a, None, 3),
            n_evaluations=config.curve_points, progress=config.progress, desc=baseline_name,
        )
        final = evaluate_algo(baseline, env, None, config.eval_episodes, config.seed, progress=False)
        baseline.save(str(folder / f"{config.algo}.d3"))
        runs.append(_run_row(baseline_name, record, final, data, None))

    results = {
        "config": dataclasses.asdict(config),
        "output_dir": str(folder),
        "dataset": {"name": data.name, "transitions": len(data.transitions),
                    "episodes": data.transitions.n_episodes,
                    "mean_return": float(data.transitions.episode_returns().mean()),
                    "random_return": data.random_return, "expert_return": data.expert_return},
        "quantizer": {"n_codes": config.n_codes, "fit_steps": config.quantizer_steps,
                      "fit_seconds": fit_seconds, "relabel": relabeled.stats,
                      "n_restarted_codes": fit_metrics.get("n_restarted_codes")},
        "runs": runs,
        "total_seconds": time.perf_counter() - started,
    }
    table = results_table(results)
    with atomic_output(folder / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_output(folder / "results.md") as tmp:
        tmp.write_text(table + "\n")
    plot_learning_curves(runs, folder / "learning_curves.png", data)
    print("\n" + table)
    say(f"\nartifacts in {folder}/ (quantizer.safetensors, models, results.json, learning_curves.png)")
    return results


def _run_row(name: str, record: TrainingRecord, final: Any, data: LoadedDataset,
             relabel_stats: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"method": name, **record.to_dict(), "evaluation": final.to_dict()}
    if data.random_return is not None and data.expert_return is not None:
        row["normalized_score"] = normalized_score(final.mean_return, data.random_return, data.expert_return)
    if relabel_stats is not None:
        row["reconstruction_mse"] = relabel_stats["mse"]
        row["codes_used"] = relabel_stats["used_codes"]
        row["perplexity"] = relabel_stats["perplexity"]
    return row


def results_table(results: dict[str, Any]) -> str:
    """The Markdown table ``saq quickstart`` prints."""
    lines = [
        "| method | return (mean ± std) | normalized score | updates | updates/s | train time (s) | recon. MSE | codes used (perplexity) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    k = results["quantizer"]["n_codes"]
    for run in results["runs"]:
        ev = run["evaluation"]
        norm = f"{run['normalized_score']:.1f}" if "normalized_score" in run else "n/a"
        recon = f"{run['reconstruction_mse']:.4f}" if "reconstruction_mse" in run else "-"
        usage = f"{run['codes_used']}/{k} ({run['perplexity']:.1f})" if "codes_used" in run else "-"
        lines.append(
            f"| {run['method']} | {ev['mean_return']:.1f} ± {ev['std_return']:.1f} | {norm} | "
            f"{run['steps']} | {run['updates_per_second']:.1f} | {run['train_seconds']:.1f} | {recon} | {usage} |"
        )
    return "\n".join(lines)


def plot_learning_curves(runs: list[dict[str, Any]], path: Path, data: LoadedDataset) -> None:
    """Score against training wall-clock seconds, one line per method, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for run in runs:
        curve = run["curve"]
        axis.plot([p["seconds"] for p in curve], [p["score"] for p in curve], marker="o", label=run["method"])
    for value, label in ((data.expert_return, "expert"), (data.random_return, "random")):
        if value is not None:
            axis.axhline(value, linestyle="--", linewidth=1, color="gray")
            axis.text(0, value, f" {label}", va="bottom", color="gray", fontsize=8)
    axis.set_xlabel("training time (s)")
    axis.set_ylabel("mean return")
    axis.set_title(f"quickstart: {data.name}")
    axis.legend()
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
