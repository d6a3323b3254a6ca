"""Quantizer throughput: fit updates/s, encode rows/s and single-observation decode latency.

Data are Hopper-sized (obs 11, act 3) synthetic rows with four state-dependent action modes
(``a = tanh(W_m s / 2) + noise``, ``m`` uniform in 0..3), so the VQ-VAE has something real to
quantize. Measured in one run, side by side:

1. fit: updates/s and samples/s of the default quantizer (512-512 MLPs, D=128, batch 256) for a
   few codebook sizes K (a short fit each; the k-means++ init and final health pass are excluded
   by timing two fit lengths and taking the difference).
2. convergence (full run only): reconstruction loss over a fit of ``2 x DEFAULT_N_STEPS``
   updates, to show where the default ``n_steps`` sits on the curve.
3. encode: rows/s of ``encode`` on all rows (batched torch).
4. decode: one ``decode`` call for one observation (the wrapper's per-step call): numpy path vs
   the torch path (``decode_torch``), alternated and the median of repeats taken; plus batch 256.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_quantizer_fit.py            # full run (~5 min)
    OMP_NUM_THREADS=1 python benchmarks/bench_quantizer_fit.py --quick    # smoke run (~30 s)

Writes ``benchmarks/results/quantizer_fit.json`` and ``quantizer_fit.md`` (atomically).
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

import gymnasium as gym
import numpy as np
import torch

from saq_wrappers.io import atomic_output
from saq_wrappers.vqvae import DEFAULT_N_STEPS, VQVAEQuantizer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OBS_DIM, ACT_DIM = 11, 3


def hopper_like_data(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows with four state-dependent action modes, actions inside [-1, 1]."""
    rng = np.random.default_rng(seed)
    obs = (rng.standard_normal((n_rows, OBS_DIM)) * rng.uniform(0.1, 3.0, OBS_DIM)).astype(
        np.float32
    )
    weights = rng.standard_normal((4, OBS_DIM, ACT_DIM)) / np.sqrt(OBS_DIM)
    mode = rng.integers(0, 4, n_rows)
    z = np.einsum("ni,nij->nj", obs / obs.std(axis=0), weights[mode])
    actions = np.clip(np.tanh(z) + 0.05 * rng.standard_normal((n_rows, ACT_DIM)), -1, 1)
    return obs, actions.astype(np.float32)


def spaces() -> tuple[gym.spaces.Box, gym.spaces.Box]:
    return (
        gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32),
        gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32),
    )


def time_fit(obs: np.ndarray, actions: np.ndarray, n_codes: int, steps: int) -> dict[str, Any]:
    """Updates/s of the training loop: ``(T(1 + steps) - T(1)) / steps``, so the k-means++ init
    and the final health pass over the data (paid once per fit) are left out and reported
    separately as ``fixed_overhead_s``."""
    obs_space, act_space = spaces()
    seconds = []
    for n in (1, 1 + steps):
        q = VQVAEQuantizer(obs_space, act_space, n_codes=n_codes)
        start = time.perf_counter()
        q.fit(obs, actions, n_steps=n, progress=False)
        seconds.append(time.perf_counter() - start)
    per_update = max(seconds[1] - seconds[0], 1e-9) / steps
    batch = q.config.batch_size
    return {
        "n_codes": n_codes,
        "updates_per_s": 1.0 / per_update,
        "samples_per_s": batch / per_update,
        "fixed_overhead_s": seconds[0],
        "seconds_for_default_n_steps": DEFAULT_N_STEPS * per_update + seconds[0],
    }


def median_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return 1e6 * (time.perf_counter() - start) / calls


def run(quick: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    n_rows = 20_000 if quick else 100_000
    obs, actions = hopper_like_data(n_rows)
    ks = (64,) if quick else (16, 64, 128)
    fit_steps = 60 if quick else 300
    warm = VQVAEQuantizer(*spaces(), n_codes=ks[0])  # first-call costs (allocator, kernels)
    warm.fit(obs, actions, n_steps=3, progress=False)
    fit = [time_fit(obs, actions, k, fit_steps) for k in ks]

    obs_space, act_space = spaces()
    q = VQVAEQuantizer(obs_space, act_space, n_codes=64)
    convergence: list[dict[str, float]] = []
    conv_steps = 200 if quick else 2 * DEFAULT_N_STEPS
    start = time.perf_counter()
    metrics = q.fit(obs, actions, n_steps=conv_steps, progress=not quick)
    conv_seconds = time.perf_counter() - start
    marks = {conv_steps // 10, conv_steps // 4, conv_steps // 2, conv_steps}
    for entry in metrics["loss_history"]:
        if entry["step"] in marks or (entry["step"] % (conv_steps // 10 or 1)) == 0:
            convergence.append(
                {
                    "step": entry["step"],
                    "reconstruction": entry["reconstruction"],
                    "perplexity": entry["perplexity"],
                }
            )

    # encode throughput (all rows, batched)
    encode_s = []
    for _ in range(3):
        start = time.perf_counter()
        codes = q.encode(obs, actions)
        encode_s.append(time.perf_counter() - start)
    encode_rows_per_s = n_rows / min(encode_s)

    # decode latency: numpy vs torch, alternated
    calls = 300 if quick else 2000
    one_obs, one_idx = obs[:1].copy(), codes[:1].copy()
    obs256, idx256 = obs[:256].copy(), codes[:256].copy()
    np.testing.assert_allclose(
        q.decode(one_obs, one_idx), q.decode_torch(one_obs, one_idx), atol=1e-5, rtol=1e-5
    )
    samples: dict[str, list[float]] = {k: [] for k in ("np1", "t1", "np256", "t256", "cand1")}
    for _ in range(5 if quick else 15):
        samples["np1"].append(median_us(lambda: q.decode(one_obs, one_idx), calls))
        samples["t1"].append(median_us(lambda: q.decode_torch(one_obs, one_idx), calls // 4))
        samples["np256"].append(median_us(lambda: q.decode_numpy(obs256, idx256), calls // 20))
        samples["t256"].append(median_us(lambda: q.decode_torch(obs256, idx256), calls // 20))
        samples["cand1"].append(median_us(lambda: q.candidates(one_obs), calls // 10))
    decode = {k: statistics.median(v) for k, v in samples.items()}

    return {
        "quick": quick,
        "n_rows": n_rows,
        "default_n_steps": DEFAULT_N_STEPS,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "fit": fit,
        "convergence": {
            "n_steps": conv_steps,
            "seconds": conv_seconds,
            "final_reconstruction_mse_on_data": metrics["reconstruction"]["mse"],
            "final_perplexity": metrics["perplexity"],
            "final_dead_codes": metrics["dead_codes"],
            "restarted_codes": metrics["n_restarted_codes"],
            "history": convergence,
        },
        "encode_rows_per_s": encode_rows_per_s,
        "decode_us": {
            "single_obs_numpy": decode["np1"],
            "single_obs_torch": decode["t1"],
            "batch256_numpy": decode["np256"],
            "batch256_torch": decode["t256"],
            "candidates_single_obs_K64": decode["cand1"],
        },
    }


def to_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Quantizer fit / encode / decode ({'quick' if result['quick'] else 'full'} run)",
        "",
        f"Hopper-sized synthetic data: {result['n_rows']} rows, obs {OBS_DIM}, act {ACT_DIM}; "
        f"default model (512-512, D=128, batch 256); torch threads: {result['torch_threads']}; "
        f"{result['cpu_count']} CPUs, 1-min load average at the end "
        f"{result['load_average_1min_at_end']:.1f} (shared machine: compare ratios).",
        "",
        "| K | updates/s | samples/s | fixed overhead per fit (s) | s for default n_steps |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in result["fit"]:
        lines.append(
            f"| {row['n_codes']} | {row['updates_per_s']:.1f} | {row['samples_per_s']:.0f} | "
            f"{row['fixed_overhead_s']:.1f} | "
            f"{row['seconds_for_default_n_steps']:.0f} ({result['default_n_steps']} updates) |"
        )
    conv = result["convergence"]
    lines += [
        "",
        f"Convergence (K=64, {conv['n_steps']} updates in {conv['seconds']:.0f} s; "
        f"final data MSE {conv['final_reconstruction_mse_on_data']:.4f}, perplexity "
        f"{conv['final_perplexity']:.1f}, dead codes {conv['final_dead_codes']}, restarted "
        f"{conv['restarted_codes']}):",
        "",
        "| update | reconstruction (normalized, window mean) | perplexity (window) |",
        "|---:|---:|---:|",
    ]
    for entry in conv["history"]:
        lines.append(
            f"| {entry['step']} | {entry['reconstruction']:.4f} | {entry['perplexity']:.1f} |"
        )
    d = result["decode_us"]
    lines += [
        "",
        f"Encode: {result['encode_rows_per_s']:.0f} rows/s.",
        "",
        "| decode call | numpy path (us) | torch path (us) |",
        "|---|---:|---:|",
        f"| 1 observation | {d['single_obs_numpy']:.1f} | {d['single_obs_torch']:.1f} |",
        f"| 256 observations | {d['batch256_numpy']:.1f} | {d['batch256_torch']:.1f} |",
        f"| candidates, 1 observation x 64 codes | {d['candidates_single_obs_K64']:.1f} | |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (~30 s)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    args = parser.parse_args()
    result = run(args.quick)
    markdown = to_markdown(result)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out / "quantizer_fit.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    with atomic_output(args.out / "quantizer_fit.md") as tmp:
        tmp.write_text(markdown)


if __name__ == "__main__":
    main()
