"""Updates/s of SAQ-CQL and SAQ-BC (d3rlpy DiscreteCQL / DiscreteBC on codes) vs continuous
d3rlpy CQL and BC, on the same Hopper-sized data and batch size (256), side by side in one run.

The continuous algorithms run twice: with d3rlpy's default networks (what a d3rlpy user gets)
and with the same 512-512 torso as the SAQ presets (equal network sizes). Each rate is the
median of ``--repeats`` timed windows of ``--updates`` updates, after a warm-up, interleaved
across algorithms so machine noise hits all of them alike. Timing covers batch sampling and the
update, exactly what ``fit`` does per step.

Usage::

    python -m benchmarks.bench_saq_cql            # full run (a few minutes on 2 cores)
    python -m benchmarks.bench_saq_cql --quick    # smoke run

Writes ``benchmarks/results/saq_cql.json`` and ``saq_cql.md`` (atomically).
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import d3rlpy
import numpy as np
import structlog
import torch

from saq_wrappers.integrations.d3rlpy import saq_bc_config, saq_cql_config
from saq_wrappers.integrations.d3rlpy.presets import saq_encoder

from benchmarks.timing import built_and_warmed, interleaved_update_rates, rate_parser, write_results

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OBS_DIM, ACT_DIM, N_CODES, BATCH = 11, 3, 64, 256


def datasets(n_rows: int, seed: int = 0) -> tuple[Any, Any]:
    """The same random Hopper-sized transitions, once with codes and once with actions."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n_rows, OBS_DIM)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(n_rows, ACT_DIM)).astype(np.float32)
    codes = rng.integers(0, N_CODES, size=(n_rows, 1))
    rewards = rng.normal(size=(n_rows, 1)).astype(np.float32)
    terminals = np.zeros(n_rows, np.float32)
    timeouts = np.zeros(n_rows, np.float32)
    timeouts[999::1000] = 1.0
    timeouts[-1] = 1.0
    discrete = d3rlpy.dataset.MDPDataset(obs, codes, rewards, terminals, timeouts,
                                         action_space=d3rlpy.ActionSpace.DISCRETE, action_size=N_CODES)
    continuous = d3rlpy.dataset.MDPDataset(obs, actions, rewards, terminals, timeouts,
                                           action_space=d3rlpy.ActionSpace.CONTINUOUS)
    return discrete, continuous


def algorithms() -> dict[str, tuple[Callable[[], Any], bool]]:
    """name -> (config factory, uses the discrete dataset)."""
    wide = saq_encoder()
    return {
        "SAQ-CQL (DiscreteCQL, 512-512)": (lambda: saq_cql_config(), True),
        "SAQ-BC (DiscreteBC, 512-512)": (lambda: saq_bc_config(), True),
        "CQL (d3rlpy default, 256-256)": (lambda: d3rlpy.algos.CQLConfig(batch_size=BATCH), False),
        "CQL (512-512)": (lambda: d3rlpy.algos.CQLConfig(batch_size=BATCH, actor_encoder_factory=wide,
                                                         critic_encoder_factory=wide), False),
        "BC (d3rlpy default)": (lambda: d3rlpy.algos.BCConfig(batch_size=BATCH), False),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = rate_parser(__doc__ or "", RESULTS_DIR).parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    updates = args.updates or (5 if args.quick else 40)
    repeats = args.repeats or (1 if args.quick else 3)

    discrete, continuous = datasets(20_000)
    built: dict[str, tuple[Any, Any]] = {}
    for name, (factory, is_discrete) in algorithms().items():
        data = discrete if is_discrete else continuous
        built[name] = (built_and_warmed(factory(), data, BATCH), data)

    rates = interleaved_update_rates(built, BATCH, updates, repeats)

    reference = statistics.median(rates["CQL (d3rlpy default, 256-256)"])
    rows = [{"algorithm": name, "updates_per_second": statistics.median(values),
             "vs_continuous_cql": statistics.median(values) / reference, "windows": values}
            for name, values in rates.items()]
    table = ["| algorithm | updates/s | x continuous CQL (default nets) |", "|---|---|---|"]
    table += [f"| {r['algorithm']} | {r['updates_per_second']:.1f} | {r['vs_continuous_cql']:.2f}x |" for r in rows]
    markdown = "\n".join(table)
    result = {"benchmark": "saq_cql_updates", "batch_size": BATCH, "obs_dim": OBS_DIM, "act_dim": ACT_DIM,
              "n_codes": N_CODES, "updates_per_window": updates, "repeats": repeats,
              "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
              "cpu_count": __import__("os").cpu_count(), "date": time.strftime("%Y-%m-%d"), "rows": rows}
    print(markdown)
    write_results(args.out, "saq_cql" + ("_quick" if args.quick else ""), result, markdown)
    return result


if __name__ == "__main__":
    main()
