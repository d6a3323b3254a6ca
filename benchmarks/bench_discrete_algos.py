"""Updates/s of SAQ-IQL (DiscreteIQL) and SAQ-BRAC (DiscreteBRAC) vs d3rlpy's continuous IQL.

Same data, same batch size (256), same network width (256-256 ReLU MLPs), same observation
scaler, one run, side by side. Target (issue 3): each discrete algorithm >= 2x continuous IQL.

Data: a Hopper-sized synthetic dataset (obs 11, actions 3, 1000-step episodes) with
state-dependent action modes; the discrete view labels every action with the nearest of K=64
fixed prototype actions (a stand-in for VQ-VAE codes: update cost does not depend on how the
codes were made). Continuous IQL trains on the actions, the discrete algorithms on the codes.

Measured per algorithm, alternating algorithms over several rounds and taking the median:

- ``update``: ``algo.update(batch)`` on pre-sampled batches (the algorithm's own cost);
- ``fit loop``: ``dataset.sample_transition_batch`` + ``update``, what ``fit`` runs per step.

DiscreteBRAC is timed after its ``pi_beta`` first phase (critic + actor updates, ``pi_beta``
frozen: its steady state); DiscreteIQL always trains critics, ``V`` and ``pi_beta`` together.

Why the 2x target is not reached on CPU (measured ~1.0-1.15x): per update the cost is the
256x256 GEMMs, and counting MLP passes (forward = 1, backward ~ 2) continuous IQL does about 18
(critics 6, target critics on (s,a) twice 4, V 3 + 1 + 1, actor 3), DiscreteIQL about 15
(critics 6, target critics 2, V 3 + 1, pi_beta 3) with K=64-wide output layers, DiscreteBRAC
about 16 after its pi_beta phase. Exact sums over K codes are nearly free, but no sampled
estimator is removed here: continuous IQL samples nothing either. (The large gap is CQL's:
d3rlpy's continuous CQL evaluates its critics on 3 x 10 sampled actions per state.)

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_discrete_algos.py            # full run (~4 min)
    OMP_NUM_THREADS=1 python benchmarks/bench_discrete_algos.py --quick    # smoke run (~20 s)
    python benchmarks/bench_discrete_algos.py --device cuda:0 --threads 4

Writes ``benchmarks/results/discrete_algos.json`` and ``discrete_algos.md`` atomically.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import d3rlpy
import numpy as np
import torch

from saq_wrappers.integrations.d3rlpy.presets import saq_brac_config, saq_encoder, saq_iql_config, saq_optimizer
from saq_wrappers.io import atomic_output

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OBS_DIM, ACT_DIM, N_CODES, BATCH = 11, 3, 64, 256
HIDDEN = (256, 256)


def hopper_sized_data(n_rows: int, seed: int = 0) -> tuple[d3rlpy.dataset.MDPDataset, d3rlpy.dataset.MDPDataset]:
    """The same rows as a continuous dataset and as a K=64-code discrete dataset."""
    rng = np.random.default_rng(seed)
    obs = (rng.standard_normal((n_rows, OBS_DIM)) * rng.uniform(0.1, 3.0, OBS_DIM)).astype(np.float32)
    weights = rng.standard_normal((4, OBS_DIM, ACT_DIM)) / np.sqrt(OBS_DIM)
    mode = rng.integers(0, 4, n_rows)
    z = np.einsum("ni,nij->nj", obs / obs.std(axis=0), weights[mode])
    actions = np.clip(np.tanh(z) + 0.05 * rng.standard_normal((n_rows, ACT_DIM)), -0.999, 0.999).astype(np.float32)
    rewards = (1.0 + 0.1 * obs[:, 0] - 0.01 * (actions**2).sum(1)).astype(np.float32)
    terminals = np.zeros(n_rows, dtype=np.float32)
    timeouts = np.zeros(n_rows, dtype=np.float32)
    timeouts[999::1000] = 1.0
    timeouts[-1] = 1.0
    prototypes = rng.uniform(-1, 1, (N_CODES, ACT_DIM)).astype(np.float32)
    codes = ((actions[:, None, :] - prototypes[None]) ** 2).sum(-1).argmin(1)
    continuous = d3rlpy.dataset.MDPDataset(obs, actions, rewards, terminals, timeouts)
    discrete = d3rlpy.dataset.MDPDataset(
        obs, codes, rewards, terminals, timeouts,
        action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=N_CODES,
    )
    return continuous, discrete


def continuous_iql() -> Any:
    """d3rlpy IQL with the same widths, optimizer and scaler as the SAQ presets."""
    encoder = saq_encoder(HIDDEN)
    return d3rlpy.algos.IQLConfig(
        batch_size=BATCH,
        actor_encoder_factory=encoder,
        critic_encoder_factory=encoder,
        value_encoder_factory=encoder,
        actor_optim_factory=saq_optimizer(),
        critic_optim_factory=saq_optimizer(),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
    )


def build(name: str, device: str, continuous: Any, discrete: Any, warmup: int) -> tuple[Any, Any]:
    if name == "IQL (continuous, d3rlpy)":
        config, dataset = continuous_iql(), continuous
    elif name == "DiscreteIQL (SAQ-IQL)":
        config, dataset = saq_iql_config(batch_size=BATCH), discrete
    else:
        # the pi_beta phase ends inside the warm-up, so the timed updates are its steady state
        config, dataset = saq_brac_config(batch_size=BATCH, behavior_pretrain_steps=max(1, warmup // 2)), discrete
    algo = config.create(device=device)
    d3rlpy.algos.utility.build_scalers_with_transition_picker(algo, dataset)
    algo.build_with_dataset(dataset)
    batches = [dataset.sample_transition_batch(BATCH) for _ in range(16)]
    for i in range(warmup):
        algo.update(batches[i % len(batches)])
    return algo, dataset


def rate(step: Callable[[int], None], n: int, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(n):
        step(i)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps, for a smoke run")
    parser.add_argument("--device", default="cpu:0")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n_rows, warmup, steps, rounds = (20_000, 20, 60, 2) if args.quick else (100_000, 50, 300, 3)

    continuous, discrete = hopper_sized_data(n_rows)
    names = ["IQL (continuous, d3rlpy)", "DiscreteIQL (SAQ-IQL)", "DiscreteBRAC (SAQ-BRAC)"]
    algos = {name: build(name, args.device, continuous, discrete, warmup) for name in names}
    samples: dict[str, dict[str, list[float]]] = {n: {"update": [], "fit_loop": []} for n in names}
    for _ in range(rounds):
        for name in names:
            algo, dataset = algos[name]
            batches = [dataset.sample_transition_batch(BATCH) for _ in range(16)]
            samples[name]["update"].append(rate(lambda i: algo.update(batches[i % 16]), steps, args.device))
            samples[name]["fit_loop"].append(
                rate(lambda i: algo.update(dataset.sample_transition_batch(BATCH)), steps, args.device)
            )

    base = {kind: statistics.median(samples[names[0]][kind]) for kind in ("update", "fit_loop")}
    rows = []
    for name in names:
        update = statistics.median(samples[name]["update"])
        fit_loop = statistics.median(samples[name]["fit_loop"])
        rows.append(
            {
                "algorithm": name,
                "updates_per_s": round(update, 1),
                "fit_loop_updates_per_s": round(fit_loop, 1),
                "speedup_vs_iql": round(update / base["update"], 2),
                "fit_loop_speedup_vs_iql": round(fit_loop / base["fit_loop"], 2),
            }
        )
    meets = all(row["speedup_vs_iql"] >= 2.0 for row in rows[1:])
    result = {
        "benchmark": "discrete_algos",
        "quick": args.quick,
        "device": args.device,
        "torch_threads": args.threads,
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()}".strip(),
        "torch": torch.__version__,
        "d3rlpy": d3rlpy.__version__,
        "dataset": {"rows": n_rows, "obs_dim": OBS_DIM, "act_dim": ACT_DIM, "n_codes": N_CODES},
        "batch_size": BATCH,
        "hidden_units": list(HIDDEN),
        "timed_updates_per_round": steps,
        "rounds": rounds,
        "rows": rows,
        "target": "each discrete algorithm >= 2x continuous IQL updates/s",
        "target_met": meets,
    }
    lines = [
        f"Updates/s at batch {BATCH}, 256-256 MLPs, Hopper-sized data (obs {OBS_DIM}, act {ACT_DIM}, "
        f"K={N_CODES}), device {args.device}, {args.threads} thread(s), median of {rounds} rounds "
        f"x {steps} updates{' (quick)' if args.quick else ''}.",
        "",
        "| algorithm | updates/s | vs IQL | fit-loop updates/s | vs IQL |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['algorithm']} | {row['updates_per_s']} | {row['speedup_vs_iql']}x | "
            f"{row['fit_loop_updates_per_s']} | {row['fit_loop_speedup_vs_iql']}x |"
        )
    lines += ["", f"Target (each discrete >= 2x continuous IQL): {'met' if meets else 'NOT met'}."]
    table = "\n".join(lines)
    print(table)

    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    with atomic_output(args.out / f"discrete_algos{suffix}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_output(args.out / f"discrete_algos{suffix}.md") as tmp:
        tmp.write_text(table + "\n")


if __name__ == "__main__":
    main()
