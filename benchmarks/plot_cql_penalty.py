"""SAQ Figure 2 style plot: exact SAQ-CQL penalty vs continuous CQL's sampled estimate.

Trains, briefly and side by side on the same narrow dataset,

- **SAQ-CQL**: d3rlpy ``DiscreteCQL`` (``saq_cql_config``) on K VQ-VAE codes; its conservative
  penalty ``E[logsumexp_k Q(s,k) - Q(s,code)]`` is computed exactly;
- **CQL**: d3rlpy's continuous ``CQL``; its penalty ``E[log ∫ exp Q(s,a) da - Q(s,a)]`` is
  logged twice: the 3 x ``n_action_samples`` importance-sampled estimate its loss uses, and an
  accurate reference with many more importance samples (``--reference-samples``),

logging both every ``--interval`` steps with
:class:`saq_wrappers.integrations.d3rlpy.CQLPenaltyMonitor`, and greedy returns every
``--eval-interval`` steps. It draws ``benchmarks/results/cql_penalty.png`` (returns; continuous
sampled vs reference penalty; SAQ-CQL exact penalty) and writes the curves to
``cql_penalty.json`` (both atomically).

**Dataset.** The paper uses maze2d-large with three optimal demonstrations. That dataset is not
shipped here (and this script makes no network access), so by default it generates a small,
narrow dataset itself: ``--episodes`` episodes of ``Pendulum-v1`` from the package's scripted
swing-up expert with little action noise (``--noise``), quantized with a freshly fitted
``saq_wrappers.VQVAEQuantizer`` (K = ``--codes``). Pendulum has a 1-D action, where sampling the
log-integral is easy, so expect a smaller gap than the paper's 2-D maze; a narrower dataset or
a longer run widens it.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/plot_cql_penalty.py            # ~5-10 min on 2 CPU cores
    OMP_NUM_THREADS=1 python benchmarks/plot_cql_penalty.py --quick    # smoke run (~1 min)
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import time
from pathlib import Path
from typing import Any

import d3rlpy
import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from saq_wrappers import VQVAEQuantizer  # noqa: E402
from saq_wrappers.experts import PendulumSwingUpExpert  # noqa: E402
from saq_wrappers.integrations.d3rlpy import (  # noqa: E402
    CQLPenaltyMonitor,
    PenaltyStates,
    evaluate_algo,
    saq_cql_config,
    to_continuous_dataset,
    to_discrete_dataset,
)
from saq_wrappers.integrations.d3rlpy.presets import saq_encoder, saq_optimizer  # noqa: E402
from saq_wrappers.io import atomic_output  # noqa: E402
from saq_wrappers.rollouts import noisy_policy, rollout  # noqa: E402
from saq_wrappers.transitions import Transitions  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class Recorder:
    """``fit(callback=...)``: the penalty monitor every ``interval`` steps, returns every
    ``eval_interval`` steps."""

    def __init__(self, monitor: CQLPenaltyMonitor, env: gym.Env, action_set: Any, eval_interval: int, episodes: int):
        self.monitor, self.env, self.action_set = monitor, env, action_set
        self.eval_interval, self.episodes = eval_interval, episodes
        self.returns: list[dict[str, float]] = []

    def __call__(self, algo: Any, epoch: int, total_step: int) -> None:
        self.monitor(algo, epoch, total_step)
        if total_step % self.eval_interval == 0:
            result = evaluate_algo(algo, self.env, self.action_set, n_episodes=self.episodes, seed=123, progress=False)
            self.returns.append({"step": float(total_step), "mean_return": result.mean_return})


def train(algo: Any, dataset: Any, recorder: Recorder, steps: int) -> float:
    start = time.perf_counter()
    algo.fit(
        dataset,
        n_steps=steps,
        n_steps_per_epoch=steps,
        show_progress=False,
        save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        callback=recorder,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--interval", type=int, default=150)
    parser.add_argument("--eval-interval", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=10, help="expert episodes in the dataset")
    parser.add_argument("--noise", type=float, default=0.04, help="expert action noise std (in half action ranges)")
    parser.add_argument("--codes", type=int, default=16)
    parser.add_argument("--quantizer-steps", type=int, default=1500)
    parser.add_argument("--reference-samples", type=int, default=4096)
    parser.add_argument("--states", type=int, default=256, help="dataset states the penalty is measured on")
    parser.add_argument("--hidden", type=int, default=128, help="width of the 2-layer MLPs of both algorithms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.interval, args.eval_interval = 300, 50, 150
        args.quantizer_steps, args.reference_samples, args.states, args.eval_episodes = 300, 1024, 64, 1
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    d3rlpy.seed(args.seed)

    env = gym.make("Pendulum-v1")
    expert = noisy_policy(PendulumSwingUpExpert().step_policy(), env.action_space, args.noise, args.seed)
    transitions = Transitions.from_episodes(rollout(env, expert, n_episodes=args.episodes, seed=args.seed, progress=False))
    quantizer = VQVAEQuantizer(
        env.observation_space, env.action_space, n_codes=args.codes, hidden_sizes=(256, 256), seed=args.seed
    )
    quantizer.fit(transitions, n_steps=args.quantizer_steps, progress=False)
    discrete = to_discrete_dataset(transitions, quantizer, progress=False)
    continuous = to_continuous_dataset(transitions)

    encoder = saq_encoder((args.hidden, args.hidden))
    saq_cql = saq_cql_config(encoder_factory=encoder).create(device="cpu:0")
    low, high = env.action_space.low, env.action_space.high
    cql = d3rlpy.algos.CQLConfig(
        batch_size=256,
        actor_encoder_factory=encoder,
        critic_encoder_factory=encoder,
        critic_optim_factory=saq_optimizer(),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        action_scaler=d3rlpy.preprocessing.MinMaxActionScaler(minimum=low, maximum=high),
    ).create(device="cpu:0")

    # the same dataset rows for both (the discrete dataset holds codes for the same transitions)
    states_discrete = PenaltyStates(discrete, args.states, args.seed)
    states_continuous = PenaltyStates(continuous, args.states, args.seed)
    runs = {}
    for name, algo, dataset, states, action_set in (
        ("SAQ-CQL", saq_cql, discrete, states_discrete, quantizer),
        ("CQL", cql, continuous, states_continuous, None),
    ):
        monitor = CQLPenaltyMonitor(
            interval=args.interval, n_reference_samples=args.reference_samples, seed=args.seed, states=states
        )
        recorder = Recorder(monitor, env, action_set, args.eval_interval, args.eval_episodes)
        seconds = train(algo, dataset, recorder, args.steps)
        runs[name] = {"penalty": monitor.history, "returns": recorder.returns, "train_seconds": seconds}
        print(f"{name}: {args.steps} steps in {seconds:.0f} s; last penalty {monitor.history[-1]}")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, color in (("SAQ-CQL", "tab:green"), ("CQL", "tab:blue")):
        curve = runs[name]["returns"]
        axes[0].plot([r["step"] for r in curve], [r["mean_return"] for r in curve], "o-", color=color, label=name)
    axes[0].set(title="average return (greedy)", xlabel="gradient steps", ylabel="return")
    axes[0].legend()
    cont = runs["CQL"]["penalty"]
    steps = [r["step"] for r in cont]
    axes[1].plot(steps, [r["sampled_penalty"] for r in cont], color="tab:blue", label="CQL: sampled estimate (3x10 IS)")
    axes[1].plot(
        steps, [r["reference_penalty"] for r in cont], color="black", ls="--",
        label=f"CQL: reference ({args.reference_samples} IS samples)",
    )
    axes[1].set(title="continuous CQL penalty", xlabel="gradient steps", ylabel="E[log∫exp Q - Q(s,a)]")
    axes[1].legend()
    disc = runs["SAQ-CQL"]["penalty"]
    axes[2].plot([r["step"] for r in disc], [r["exact_penalty"] for r in disc], color="tab:green", label="SAQ-CQL: exact")
    axes[2].set(title=f"SAQ-CQL penalty (K={args.codes}, exact)", xlabel="gradient steps", ylabel="E[logsumexp Q - Q(s,k)]")
    axes[2].legend()
    fig.suptitle(
        f"Pendulum-v1 scripted expert, {args.episodes} episodes, noise {args.noise} "
        f"({len(transitions)} transitions){' [quick]' if args.quick else ''}"
    )
    fig.tight_layout()

    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    png = args.out / f"cql_penalty{suffix}.png"
    with atomic_output(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    with atomic_output(args.out / f"cql_penalty{suffix}.json") as tmp:
        tmp.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1) + "\n")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
