"""Wrapper overhead: steps/s of SAQActionWrapper(Hopper-v5) vs the raw env, single and vector.

Measured side by side in one run (raw and wrapped alternate, each measurement repeated and the
median taken), because shared machines are noisy and only ratios are comparable across runs:

1. single env: raw ``Hopper-v5`` vs ``SAQActionWrapper(Hopper-v5, VQVAEQuantizer())`` with the
   default quantizer config (K=64, 512-512 MLPs). The quantizer is fitted for a few updates on
   random rows only so its normalization is set: an untrained decoder costs the same to run.
   Target: wrapped >= 0.7x raw steps/s.
2. decode: one ``decode`` call for a batch of 16 observations vs for one observation.
   Target: batch-16 < 2x single.
3. vector: ``SyncVectorEnv`` of 16 Hopper envs, raw vs ``SAQVectorActionWrapper``.
4. where the time goes: the wrapper's own bookkeeping (with a zero-cost action set), the
   quantizer's input checks, and each layer of the quantizer's numpy decode path.
5. mode averaging (``acting=ModeAveraging()``, uniform weights): the price of acting at the mean of
   the chosen mode, which decodes all K codes and climbs every step (an agent's ``code_weights``
   forward pass comes on top). No target: the plain path is the one the target is for.

Hopper is made with ``terminate_when_unhealthy=False`` so that every episode lasts exactly 1000
steps whatever the actions: random continuous actions and decoded random codes would otherwise
end episodes at different rates, and the reset cost would differ between the two sides.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_wrapper.py            # full run
    OMP_NUM_THREADS=1 python benchmarks/bench_wrapper.py --quick    # smoke run, a few seconds (wrapper_quick.*)

Writes ``benchmarks/results/wrapper.json`` and ``wrapper.md`` (atomically).
"""

from __future__ import annotations

import os

# Per-step decoding is a handful of tiny matrix products: extra BLAS threads only add overhead,
# and the machines this runs on are shared. Must be set before numpy is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from saq_wrappers.io import atomic_output
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.vqvae import VQVAEQuantizer
from saq_wrappers.wrappers import SAQActionWrapper, SAQVectorActionWrapper

ENV_ID = "Hopper-v5"
ENV_KWARGS: dict[str, Any] = {"terminate_when_unhealthy": False}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class ConstantActionSet:
    """A zero-cost action set (decode returns a preallocated row): isolates wrapper bookkeeping."""

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Box, n: int):
        self.observation_space = observation_space
        self.action_space = action_space
        self._n = n
        self._row = np.zeros((1, action_space.shape[0]), dtype=np.float32)

    @property
    def n(self) -> int:
        return self._n

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = len(obs)
        return (
            np.zeros((batch, self._n, self._row.shape[1]), np.float32),
            np.ones((batch, self._n), bool),
        )

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        return self._row if len(obs) == 1 else np.zeros((len(obs), self._row.shape[1]), np.float32)


class NullEnv(gym.Env[np.ndarray, np.ndarray]):
    """An env with Hopper's spaces and no physics: isolates the wrapper's own per-step cost."""

    def __init__(self, like: gym.Env[Any, Any]) -> None:
        self.observation_space = like.observation_space
        self.action_space = like.action_space
        self._obs = np.zeros(like.observation_space.shape, like.observation_space.dtype)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self._obs.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return self._obs.copy(), 0.0, False, False, {}


class TimedActionSet:
    """Forwards to an action set and accumulates the wall time spent in ``decode``.

    Decoding inside the env loop can cost more than in a tight micro-benchmark loop: the physics
    step in between evicts the decoder's weights (about 1 MB for 512x512 float32) from the CPU
    caches. This proxy measures the cost where it is actually paid.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.observation_space = inner.observation_space
        self.action_space = inner.action_space
        self.seconds = 0.0
        self.calls = 0

    @property
    def n(self) -> int:
        return self.inner.n

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.candidates(obs)

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = self.inner.decode(obs, index)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


class StepTimer(gym.Wrapper[Any, Any, Any, Any]):
    """Accumulates the wall time of the wrapped env's ``step`` (the physics, when innermost)."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.seconds = 0.0
        self.calls = 0

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        start = time.perf_counter()
        result = self.env.step(action)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return result


def make_quantizer(env: gym.Env[Any, Any], seed: int = 0) -> VQVAEQuantizer:
    """Default-config quantizer, fitted briefly on random rows so normalization is set."""
    rng = np.random.default_rng(seed)
    obs_dim = env.observation_space.shape[0]
    act_space = env.action_space
    obs = rng.normal(size=(512, obs_dim)).astype(np.float32)
    actions = rng.uniform(act_space.low, act_space.high, (512, act_space.shape[0]))
    quantizer = VQVAEQuantizer(env.observation_space, env.action_space, seed=seed)
    quantizer.fit(obs, actions.astype(np.float32), n_steps=20, progress=False)
    return quantizer


def steps_per_second(env: Any, actions: list[Any], vector: bool = False) -> float:
    """Step ``env`` once per entry of ``actions`` (resetting single envs at episode ends)."""
    env.reset(seed=0)
    start = time.perf_counter()
    if vector:  # vector envs autoreset
        for action in actions:
            env.step(action)
    else:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
    elapsed = time.perf_counter() - start
    return len(actions) / elapsed


def calls_per_second(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return number / (time.perf_counter() - start)


def paired_ratio(samples: dict[str, dict[str, Any]], top: str, bottom: str) -> float:
    """Median over repeats of ``top / bottom`` measured back to back in the same repeat."""
    pairs = zip(samples[top]["samples"], samples[bottom]["samples"])
    return statistics.median(a / b for a, b in pairs)


def median_interleaved(
    measures: dict[str, Callable[[], float]], repeats: int
) -> dict[str, dict[str, Any]]:
    """Run every measure ``repeats`` times, alternating, and keep all samples and the median."""
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            samples[name].append(measure())
    return {
        name: {"median": statistics.median(values), "samples": values}
        for name, values in samples.items()
    }


def decode_profile(
    quantizer: VQVAEQuantizer, obs: np.ndarray, number: int, repeats: int
) -> dict[str, float]:
    """Microseconds per call of a single-observation decode and of each piece of its arithmetic.

    The pieces are timed on synthetic float32 arrays of the decoder's shapes (SAQ's decoder is an
    MLP on ``concat(s, e_k)``; a fast path precomputes the code half of layer 1 for all ``K``
    codes), so the profile does not depend on the quantizer's private attributes. Tight loops,
    hot caches, median of ``repeats``.
    """
    cfg = quantizer.config
    obs_dim, act_dim, k = quantizer.obs_dim, quantizer.act_dim, quantizer.n
    widths = list(cfg.hidden_sizes)
    rng = np.random.default_rng(0)

    def array(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def per_call_us(fn: Callable[[], Any]) -> float:
        calls_per_second(fn, max(number // 10, 1))  # warm caches
        return statistics.median(1e6 / calls_per_second(fn, number) for _ in range(repeats))

    index = np.array([7], dtype=np.int64)
    s, mean = array(obs_dim), array(obs_dim)
    w_state, table = array(obs_dim, widths[0]), array(k, widths[0])
    low, high = np.full(act_dim, -1.0, np.float32), np.full(act_dim, 1.0, np.float32)
    profile: dict[str, float] = {
        "decode, tight loop (public, with checks)": per_call_us(
            lambda: quantizer.decode(obs, index)
        ),
        f"layer 1 state part: center + ({obs_dim}) @ ({obs_dim}x{widths[0]})": per_call_us(
            lambda: np.dot(s - mean, w_state)
        ),
        f"layer 1 code part: row of the {k}x{widths[0]} code table": per_call_us(
            lambda: table[7].copy()
        ),
    }
    arithmetic = sum(profile[name] for name in list(profile)[1:])
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        h, weight, bias = array(fan_in), array(fan_in, fan_out), array(fan_out)
        name = f"hidden layer: relu + ({fan_in}) @ ({fan_in}x{fan_out}) + bias"
        profile[name] = per_call_us(
            lambda h=h, weight=weight, bias=bias: np.dot(np.maximum(h, 0.0), weight) + bias
        )
        arithmetic += profile[name]
    h, w_out, b_out = array(widths[-1]), array(widths[-1], act_dim), array(act_dim)

    def output_layer() -> np.ndarray:
        out = np.dot(np.maximum(h, 0.0), w_out)
        out += b_out
        np.maximum(out, low, out=out)
        return np.minimum(out, high, out=out)

    name = f"output layer: relu + ({widths[-1]}) @ ({widths[-1]}x{act_dim}) + bias + clip"
    profile[name] = per_call_us(output_layer)
    arithmetic += profile[name]
    profile["sum of the arithmetic above"] = arithmetic
    profile["rest of decode (checks, dispatch, python)"] = (
        profile["decode, tight loop (public, with checks)"] - arithmetic
    )
    return profile


def run(quick: bool) -> dict[str, Any]:
    # Many short interleaved blocks rather than a few long ones: on a shared machine a burst of
    # load then hits a few blocks of both sides instead of one whole measurement.
    repeats = 5 if quick else 25
    single_steps = 300 if quick else 1000
    vector_steps = 20 if quick else 80
    decode_calls = 300 if quick else 2000
    num_envs = 16
    rng = np.random.default_rng(0)

    raw = gym.make(ENV_ID, **ENV_KWARGS)
    quantizer = make_quantizer(raw)
    wrapped = SAQActionWrapper(gym.make(ENV_ID, **ENV_KWARGS), quantizer)
    mode_averaged = SAQActionWrapper(gym.make(ENV_ID, **ENV_KWARGS), quantizer, acting=ModeAveraging())
    bookkeeping = SAQActionWrapper(
        gym.make(ENV_ID, **ENV_KWARGS),
        ConstantActionSet(raw.observation_space, raw.action_space, quantizer.n),
    )
    timed = TimedActionSet(quantizer)
    step_timer = StepTimer(gym.make(ENV_ID, **ENV_KWARGS))
    timed_env = SAQActionWrapper(step_timer, timed)
    inner_step_us: list[float] = []
    raw.action_space.seed(0)
    raw_actions = [raw.action_space.sample() for _ in range(single_steps)]
    indices = [int(k) for k in rng.integers(quantizer.n, size=single_steps)]

    def in_loop_decode_us() -> float:
        timed.seconds, timed.calls = 0.0, 0
        step_timer.seconds, step_timer.calls = 0.0, 0
        steps_per_second(timed_env, indices)
        inner_step_us.append(1e6 * step_timer.seconds / step_timer.calls)
        return 1e6 * timed.seconds / timed.calls

    single = median_interleaved(
        {
            "raw": lambda: steps_per_second(raw, raw_actions),
            "wrapped": lambda: steps_per_second(wrapped, indices),
            "wrapped, zero-cost action set": lambda: steps_per_second(bookkeeping, indices),
            "wrapped, mode-averaged": lambda: steps_per_second(mode_averaged, indices[: max(single_steps // 10, 10)]),
            "us per decode inside the env loop": in_loop_decode_us,
        },
        repeats,
    )
    null_raw = NullEnv(raw)
    null_wrapped = SAQActionWrapper(
        NullEnv(raw), ConstantActionSet(raw.observation_space, raw.action_space, quantizer.n)
    )
    null = median_interleaved(
        {
            "raw": lambda: steps_per_second(null_raw, raw_actions),
            "wrapped": lambda: steps_per_second(null_wrapped, indices),
        },
        repeats,
    )

    obs1 = rng.normal(size=(1, raw.observation_space.shape[0])).astype(np.float32)
    obs16 = rng.normal(size=(num_envs, raw.observation_space.shape[0])).astype(np.float32)
    idx1 = np.array([3], dtype=np.int64)
    idx16 = rng.integers(quantizer.n, size=num_envs).astype(np.int64)
    decode_measures: dict[str, Callable[[], float]] = {
        "single": lambda: calls_per_second(lambda: quantizer.decode(obs1, idx1), decode_calls),
        "batch16": lambda: calls_per_second(lambda: quantizer.decode(obs16, idx16), decode_calls),
    }
    if hasattr(quantizer, "decode_torch"):  # the quantizer's torch path, for comparison
        decode_measures["batch16, torch path"] = lambda: calls_per_second(
            lambda: quantizer.decode_torch(obs16, idx16), max(decode_calls // 4, 10)
        )
    decode = median_interleaved(decode_measures, repeats)

    raw_vec = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync", **ENV_KWARGS)
    wrapped_vec = SAQVectorActionWrapper(
        gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync", **ENV_KWARGS),
        quantizer,
    )
    raw_vec.action_space.seed(0)
    vec_actions = [raw_vec.action_space.sample() for _ in range(vector_steps)]
    vec_indices = [rng.integers(quantizer.n, size=num_envs) for _ in range(vector_steps)]
    vector = median_interleaved(
        {
            "raw": lambda: steps_per_second(raw_vec, vec_actions, vector=True),
            "wrapped": lambda: steps_per_second(wrapped_vec, vec_indices, vector=True),
        },
        repeats,
    )
    raw_vec.close()
    wrapped_vec.close()

    single["us per base env.step inside the wrapped loop"] = {
        "median": statistics.median(inner_step_us),
        "samples": inner_step_us,
    }
    profile = {
        "decode inside the env loop (cold caches)": single["us per decode inside the env loop"][
            "median"
        ]
    }
    profile.update(decode_profile(quantizer, obs1, decode_calls, repeats))

    raw_us = 1e6 / single["raw"]["median"]
    wrapped_us = 1e6 / single["wrapped"]["median"]
    bookkeeping_us = 1e6 / single["wrapped, zero-cost action set"]["median"]
    return {
        "config": {
            "env": ENV_ID,
            "env_kwargs": ENV_KWARGS,
            "quantizer": repr(quantizer),
            "num_envs": num_envs,
            "repeats": repeats,
            "single_steps_per_repeat": single_steps,
            "vector_steps_per_repeat": vector_steps,
            "decode_calls_per_repeat": decode_calls,
            "quick": quick,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "gymnasium": gym.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "single_env": {
            **single,
            "ratio_wrapped_over_raw": paired_ratio(single, "wrapped", "raw"),
            "ratio_of_medians": single["wrapped"]["median"] / single["raw"]["median"],
            "ratio_mode_averaged_over_raw": paired_ratio(single, "wrapped, mode-averaged", "raw"),
            "target_ratio": 0.7,
            "us_per_step": {
                "raw": raw_us,
                "wrapped": wrapped_us,
                "wrapped, zero-cost action set": bookkeeping_us,
                "overhead: total": wrapped_us - raw_us,
                "overhead: wrapper bookkeeping": bookkeeping_us - raw_us,
                "overhead: wrapper bookkeeping, no-physics env": 1e6 / null["wrapped"]["median"]
                - 1e6 / null["raw"]["median"],
            },
            "no-physics env": null,
        },
        "decode": {
            **decode,
            "batch16_time_over_single_time": paired_ratio(decode, "single", "batch16"),
            "target_ratio": 2.0,
        },
        "vector_env": {
            **vector,
            "ratio_wrapped_over_raw": paired_ratio(vector, "wrapped", "raw"),
            "ratio_of_medians": vector["wrapped"]["median"] / vector["raw"]["median"],
            "unit": f"vector steps/s ({num_envs} env steps each)",
        },
        "single_decode_profile_us": profile,
    }


def to_markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    single, decode, vector = result["single_env"], result["decode"], result["vector_env"]
    us = single["us_per_step"]
    n = cfg["num_envs"]
    check = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    lines = [
        f"## Wrapper overhead ({cfg['env']}, {cfg['quantizer']})",
        "",
        f"Medians of {cfg['repeats']} interleaved repeats (ratios: median of per-repeat ratios); `OMP_NUM_THREADS={cfg['omp_num_threads']}`,"
        f" {cfg['cpu_count']} CPUs, `terminate_when_unhealthy=False`.",
        "",
        "| measurement | raw | wrapped | ratio | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
        f"| single env, steps/s | {single['raw']['median']:,.0f} | {single['wrapped']['median']:,.0f}"
        f" | {single['ratio_wrapped_over_raw']:.3f}x | >= 0.70x"
        f" | {check(single['ratio_wrapped_over_raw'] >= 0.7)} |",
    ]
    if "wrapped, mode-averaged" in single:
        lines.append(f"| single env, mode-averaged (uniform weights), steps/s | {single['raw']['median']:,.0f}"
                     f" | {single['wrapped, mode-averaged']['median']:,.0f}"
                     f" | {single['ratio_mode_averaged_over_raw']:.3f}x | | |")
    lines += [
        f"| SyncVectorEnv x{n}, vector steps/s | {vector['raw']['median']:,.1f}"
        f" | {vector['wrapped']['median']:,.1f} | {vector['ratio_wrapped_over_raw']:.3f}x | | |",
        "",
        "| decode call | calls/s | us/call | time vs single | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    ratio16 = decode["batch16_time_over_single_time"]
    for name in ("single", "batch16", "batch16, torch path"):
        if name not in decode:
            continue
        rate = decode[name]["median"]
        rel = ratio16 if name == "batch16" else decode["single"]["median"] / rate
        target = "< 2.00x" if name == "batch16" else ""
        met = check(ratio16 < 2.0) if name == "batch16" else ""
        lines.append(f"| {name} | {rate:,.0f} | {1e6 / rate:.1f} | {rel:.2f}x | {target} | {met} |")
    lines += [
        "",
        "Where a wrapped single-env step's time goes (us):",
        "",
        "| part | us |",
        "|---|---:|",
        f"| raw env step | {us['raw']:.1f} |",
        "| wrapper bookkeeping (no-physics env, zero-cost action set)"
        f" | {us['overhead: wrapper bookkeeping, no-physics env']:.1f} |",
        f"| total overhead with the quantizer | {us['overhead: total']:.1f} |",
        "| base env.step measured inside the wrapped loop (vs raw step above)"
        f" | {single['us per base env.step inside the wrapped loop']['median']:.1f} |",
    ]
    for part, value in result["single_decode_profile_us"].items():
        lines.append(f"| decode: {part} | {value:.1f} |")
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], markdown: str, out_dir: Path, stem: str = "wrapper") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    with atomic_output(out_dir / f"{stem}.md") as tmp:
        tmp.write_text(markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps and repeats (smoke run)")
    parser.add_argument(
        "--out-dir", type=Path, default=RESULTS_DIR, help=f"where to write (default {RESULTS_DIR})"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium's passive-checker notes on Hopper
        result = run(args.quick)
    markdown = to_markdown(result)
    print(markdown)
    # a smoke run never replaces the committed measurement (``*_quick.*`` is git-ignored)
    stem = "wrapper_quick" if args.quick else "wrapper"
    write_results(result, markdown, args.out_dir, stem)
    print(f"wrote {args.out_dir / f'{stem}.json'} and {args.out_dir / f'{stem}.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
