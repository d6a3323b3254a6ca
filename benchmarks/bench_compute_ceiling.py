"""How close each standard-suite algorithm's d3rlpy update is to this CPU's arithmetic ceiling,
and what that means for the standard suite's time budget (issue 12: about 8 hours on 2 cores).

For every d3rlpy algorithm of the ``standard`` suite, built exactly as the suite builds it
(``registry.make_config``: 256-256 networks, batch 256, K = 64 codes for SAQ-X) on random
Hopper-sized data (11-dim states, 3-dim actions):

* **GFLOP per update**: the floating-point work of one ``algo.update`` (forward, backward and
  optimizer), counted by torch's ``FlopCounterMode``, which counts matrix products; the
  elementwise rest is small next to them at these sizes;
* **updates/s**: measured on one torch thread (what each of the suite's 2 workers gets), median
  of ``--repeats`` windows, interleaved across algorithms;
* **ceiling**: the GFLOP/s of one dense matrix product of CQL's largest shape on the same thread
  (``(batch x 3 x n_action_samples, 256) @ (256, 256)``), the best this core does on the work
  these updates consist of. ``ceiling updates/s`` = ceiling GFLOP/s / GFLOP per update: no
  implementation of the same update with the same networks can run faster on this core.

From these it projects the worker-hours the suite's training would need (15 runs of 20,000
updates per algorithm) at the measured and at the ceiling rate, against the 16 worker-hours that
8 hours of both cores give. ARQ (its own candidate table) and the suite's evaluations, quantizer
fits and ARQ score models are not in the projection, so it is a lower bound on the suite's time.

Usage::

    python -m benchmarks.bench_compute_ceiling            # under a minute on one core
    python -m benchmarks.bench_compute_ceiling --quick    # smoke run

Run it with nothing else CPU-heavy running. Writes ``benchmarks/results/compute_ceiling.json``
and ``compute_ceiling.md`` (atomically).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import structlog
import torch
from gymnasium.spaces import Box
import numpy as np
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.bench_saq_cql import ACT_DIM, BATCH, datasets
from benchmarks.timing import built_and_warmed, interleaved_update_rates, rate_parser, write_results
from saq_wrappers.integrations.d3rlpy import registry

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: The standard suite's d3rlpy algorithms, each pair X / SAQ-X side by side (ARQ needs its table).
SUITE_ALGOS: tuple[str, ...] = ("BC", "SAQ-BC", "CQL", "SAQ-CQL", "IQL", "SAQ-IQL", "TD3+BC", "SAQ-BRAC")
#: The standard suite's networks, runs per algorithm (5 datasets x 3 seeds) and updates per run.
SUITE_HIDDEN, SUITE_RUNS, SUITE_UPDATES = (256, 256), 15, 20_000
#: 8 hours of 2 cores, the issue's budget for the whole suite.
BUDGET_WORKER_HOURS = 16.0
#: d3rlpy CQL's default importance samples per source (policy at s, policy at s', uniform).
CQL_ACTION_SAMPLES = 10


def build(name: str, discrete: Any, continuous: Any) -> tuple[Any, Any]:
    """The algorithm as the standard suite configures it, built on its dataset, warmed up."""
    action_space = Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)
    config = registry.make_config(name, action_space, hidden=SUITE_HIDDEN, batch_size=BATCH)
    data = discrete if registry.is_saq(name) else continuous
    return built_and_warmed(config, data, BATCH), data


def flops_per_update(algo: Any, data: Any) -> int:
    """Floating-point operations of one update, as torch's counter sees them (matrix products)."""
    with FlopCounterMode(display=False) as counter:
        algo.update(data.sample_transition_batch(BATCH))
    return int(counter.get_total_flops())


def gemm_gflops(rows: int, inner: int, cols: int, repeats: int) -> float:
    """GFLOP/s of ``(rows, inner) @ (inner, cols)`` on this thread: the median of ``repeats`` windows."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    for _ in range(5):
        torch.mm(a, b)
    per_window = 50
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(per_window):
            torch.mm(a, b)
        rates.append(2.0 * rows * inner * cols * per_window / (time.perf_counter() - started) / 1e9)
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = rate_parser(__doc__ or "", RESULTS_DIR).parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    torch.set_num_threads(1)  # one suite worker's share
    updates = args.updates or (3 if args.quick else 30)
    repeats = args.repeats or (1 if args.quick else 3)

    discrete, continuous = datasets(20_000)
    built = {name: build(name, discrete, continuous) for name in SUITE_ALGOS}
    flops = {name: flops_per_update(algo, data) for name, (algo, data) in built.items()}
    rates = interleaved_update_rates(built, BATCH, updates, repeats)
    ceiling = gemm_gflops(BATCH * 3 * CQL_ACTION_SAMPLES, SUITE_HIDDEN[0], SUITE_HIDDEN[1], max(3, repeats))
    batch_gemm = gemm_gflops(BATCH, SUITE_HIDDEN[0], SUITE_HIDDEN[1], max(3, repeats))

    rows = []
    for name in SUITE_ALGOS:
        gflop = flops[name] / 1e9
        rate = statistics.median(rates[name])
        ceiling_rate = ceiling / gflop
        rows.append({"algorithm": name, "gflop_per_update": gflop, "updates_per_second": rate,
                     "achieved_gflops": gflop * rate, "fraction_of_ceiling": gflop * rate / ceiling,
                     "ceiling_updates_per_second": ceiling_rate,
                     "suite_worker_hours": SUITE_RUNS * SUITE_UPDATES / rate / 3600,
                     "suite_worker_hours_at_ceiling": SUITE_RUNS * SUITE_UPDATES / ceiling_rate / 3600,
                     "windows": rates[name]})
    total = sum(r["suite_worker_hours"] for r in rows)
    total_ceiling = sum(r["suite_worker_hours_at_ceiling"] for r in rows)
    table = [f"One torch thread. Ceiling: {ceiling:.1f} GFLOP/s, a ({BATCH * 3 * CQL_ACTION_SAMPLES} x "
             f"{SUITE_HIDDEN[0]}) @ ({SUITE_HIDDEN[0]} x {SUITE_HIDDEN[1]}) product; a batch-sized "
             f"({BATCH} x {SUITE_HIDDEN[0]}) product runs at {batch_gemm:.1f}.", "",
             "| algorithm | GFLOP / update | updates/s | GFLOP/s | of ceiling | ceiling updates/s "
             "| suite worker-h | at ceiling |", "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['algorithm']} | {r['gflop_per_update']:.3f} | {r['updates_per_second']:.1f} | "
              f"{r['achieved_gflops']:.1f} | {r['fraction_of_ceiling']:.0%} | {r['ceiling_updates_per_second']:.1f} | "
              f"{r['suite_worker_hours']:.2f} | {r['suite_worker_hours_at_ceiling']:.2f} |" for r in rows]
    table += ["", f"Training alone, {SUITE_RUNS} runs x {SUITE_UPDATES:,} updates per algorithm (ARQ, "
              f"evaluations and quantizer fits not counted): {total:.1f} worker-hours measured, "
              f"{total_ceiling:.1f} at the ceiling; 8 hours of 2 cores give {BUDGET_WORKER_HOURS:.0f}."]
    markdown = "\n".join(table)
    result = {"benchmark": "compute_ceiling", "batch_size": BATCH, "hidden": list(SUITE_HIDDEN),
              "updates_per_window": updates, "repeats": repeats, "torch_threads": torch.get_num_threads(),
              "ceiling_gflops": ceiling, "batch_gemm_gflops": batch_gemm,
              "suite_worker_hours": total, "suite_worker_hours_at_ceiling": total_ceiling,
              "budget_worker_hours": BUDGET_WORKER_HOURS, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "machine": platform.platform(), "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "rows": rows}
    print(markdown)
    write_results(args.out, "compute_ceiling" + ("_quick" if args.quick else ""), result, markdown)
    return result


if __name__ == "__main__":
    main()
