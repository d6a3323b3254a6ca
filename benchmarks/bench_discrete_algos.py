"""Updates/s of SAQ-IQL, SAQ-BRAC and ARQ against d3rlpy's IQL, in a plain d3rlpy script.

What a user gets who drops our configs into an existing d3rlpy script: no pipeline, no
``torch.set_flush_denormal``, ``algo.update(dataset.sample_transition_batch(256))`` as ``fit``
runs it, one process, the same data and batch for every algorithm. Every algorithm trains from
scratch, all of them in turns: ``--rounds`` rounds of ``--chunk`` updates each (ARQ's chunks are
``--arq-chunk``), so a slow spell of the machine falls on all of them alike. An algorithm's rate
is the median of its chunk rates over the last third of the rounds (the steady state: the
denormal slowdown of plain Adam with weight decay builds up over the first thousands of
updates). Then the whole measurement is repeated after ``torch.set_flush_denormal(True)``.

Rows:

* ``IQL (d3rlpy)``: d3rlpy's ``IQLConfig`` at its defaults (256-256 networks, Adam) with
  standardized observations, the baseline a d3rlpy user has;
* ``SAQ-IQL``, ``SAQ-BRAC``: ``saq_iql_config()``, ``saq_brac_config()`` on K=64 codes;
* ``SAQ-BRAC, kl_budget=None``: SAQ-BRAC without its per-state KL budget (eq. 4 with the fixed
  ``beta``, as the paper prints it), to show what the budget's Newton solve costs (no target);
* ``ARQ, N=...``: ``ARQConfig`` with 256-256 networks, without and with the AWR policy the suites
  act with, at N=16 candidates per state (the standard suite's) and N=30 (the paper's, and the
  kitchen suite's);
* ``... (before)``: SAQ-IQL and SAQ-BRAC configured as before the presets' speed settings:
  d3rlpy's own ``AdamFactory(weight_decay=1e-3)`` (no denormal sweep, no fused kernel), and
  SAQ-IQL fitting ``pi_beta`` (``fit_behavior_policy=True``), to show the optimizer's share of
  the time (the update code itself is the current one).

Arithmetic: every row's floating-point work per update (torch's ``FlopCounterMode``, which counts
the matrix products) against this thread's matrix-product ceiling (``(B x N, 256) @ (256, 256)``,
the shape of ARQ's candidate products, as :mod:`benchmarks.bench_compute_ceiling` measures it):
``of ceiling`` is the share of the ceiling a row's measured rate achieves, and ``ceiling vs IQL``
the rate no implementation of the same update could exceed on this thread, as a multiple of
IQL's measured rate. A row can reach a target only if its ``ceiling vs IQL`` is above it.

Data: ``--data PATH`` reads a D4RL-style hdf5 file (the D4RL kitchen file is what issue 39 was
measured on); without it, kitchen-shaped synthetic data (3,680 rows, 60-D observations of which
38 are constant, as the kitchen's goal and resting objects are, 9-D actions). Codes are the
nearest of 64 fixed prototype actions and ARQ's candidates are uniform actions: update cost does
not depend on how either was made.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_discrete_algos                 # ~15 min
    OMP_NUM_THREADS=1 python -m benchmarks.bench_discrete_algos --data kitchen-complete-v0.hdf5
    OMP_NUM_THREADS=1 python -m benchmarks.bench_discrete_algos --quick         # smoke run

Writes ``benchmarks/results/discrete_algos.json`` and ``discrete_algos.md`` atomically
(``discrete_algos_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional

import d3rlpy
import numpy as np
import torch

from torch.utils.flop_counter import FlopCounterMode

from benchmarks.bench_compute_ceiling import gemm_gflops
from saq_wrappers.integrations.d3rlpy.arq import ARQConfig, arq_table_states
from saq_wrappers.integrations.d3rlpy.presets import every_encoder, saq_brac_config, saq_iql_config
from saq_wrappers.io import atomic_output
from saq_wrappers.score.candidate_table import CandidateTable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
N_CODES, BATCH, HIDDEN = 64, 256, (256, 256)
#: Candidates per state of the ARQ rows: the standard suite's, and the paper's (and kitchen's).
N_CANDIDATES = (16, 30)
#: The SAQ-BRAC row without the per-state KL budget (eq. 4 with a fixed beta, as the paper prints
#: it): what the budget's solve costs. Informational, no target.
NO_KL_BUDGET = "SAQ-BRAC, kl_budget=None"
#: Targets of issue 39, as a fraction of d3rlpy IQL's updates/s (by row-name prefix).
TARGETS = {"SAQ-IQL": 1.0, "SAQ-BRAC": 1.0, "ARQ": 0.5}

Datasets = dict[str, d3rlpy.dataset.MDPDataset]


def kitchen_shaped_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """3,680 rows in 19 episodes like D4RL kitchen-complete: 22 moving and 38 constant observation
    dimensions, 9-D actions in [-1, 1] that depend on the state."""
    rng = np.random.default_rng(seed)
    n_rows, moving = 3680, 22
    obs = np.zeros((n_rows, 60), np.float32)
    obs[:, :moving] = np.cumsum(rng.standard_normal((n_rows, moving)) * 0.05, axis=0)
    obs[:, moving:] = rng.uniform(-1, 1, 60 - moving)  # the same value in every row
    weights = rng.standard_normal((moving, 9)) / np.sqrt(moving)
    actions = np.clip(np.tanh(obs[:, :moving] @ weights) + 0.1 * rng.standard_normal((n_rows, 9)), -1, 1)
    terminals = np.zeros(n_rows, np.float32)
    terminals[np.linspace(0, n_rows, 20).astype(int)[1:] - 1] = 1.0
    return {"observations": obs, "actions": actions.astype(np.float32),
            "rewards": rng.integers(0, 5, n_rows).astype(np.float32), "terminals": terminals}


def d4rl_arrays(path: Path) -> dict[str, np.ndarray]:
    """The rows of a D4RL-style file (episode ends from terminals and timeouts)."""
    from saq_wrappers.integrations.d4rl import load_d4rl_hdf5

    data = load_d4rl_hdf5(path)
    return {"observations": data.observations, "actions": data.actions, "rewards": data.rewards,
            "terminals": data.terminals.astype(np.float32), "timeouts": data.timeouts.astype(np.float32)}


def datasets(arrays: dict[str, np.ndarray]) -> Datasets:
    """The rows as d3rlpy datasets: continuous actions, and the nearest of 64 prototype codes."""
    rng = np.random.default_rng(1)
    actions = arrays["actions"]
    prototypes = actions[rng.choice(len(actions), N_CODES, replace=False)]
    codes = ((actions[:, None, :] - prototypes[None]) ** 2).sum(-1).argmin(1)
    timeouts = arrays.get("timeouts", np.zeros(len(actions), np.float32))
    common = (arrays["observations"], arrays["rewards"], arrays["terminals"], timeouts)
    continuous = d3rlpy.dataset.MDPDataset(common[0], actions, *common[1:])
    discrete = d3rlpy.dataset.MDPDataset(common[0], codes[:, None], *common[1:],
                                         action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=N_CODES)
    return {"continuous": continuous, "discrete": discrete}


def candidate_table(data: Datasets, n_candidates: int) -> CandidateTable:
    """``n_candidates`` uniform candidate actions at every state ARQ's updates look up."""
    states = arq_table_states(data["continuous"])
    rng = np.random.default_rng(2)
    action_size = data["continuous"].episodes[0].actions.shape[1]
    return CandidateTable(observations=states,
                          actions=rng.uniform(-1, 1, (len(states), n_candidates, action_size)).astype(np.float32),
                          log_lik=np.zeros((len(states), n_candidates), np.float32), log_eps=-5.0)


def before(make: Callable[..., Any], **extra: Any) -> Any:
    """A preset as it was before the speed changes: d3rlpy's own Adam with weight decay 1e-3."""
    config = make(**extra)
    plain = {field: d3rlpy.optimizers.AdamFactory(weight_decay=1e-3)
             for field in vars(config) if field.endswith("optim_factory")}
    return make(**plain, **extra)


def arq(table: CandidateTable, awr: bool) -> Any:
    config = ARQConfig(batch_size=BATCH, use_awr_policy=awr,
                       observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
                       **every_encoder(ARQConfig, HIDDEN))
    algo = config.create(device="cpu:0")
    algo.attach_candidates(table)
    return algo


def rows(data: Datasets, with_before: bool) -> list[tuple[str, str, Callable[[], Any]]]:
    """(label, dataset kind, algorithm factory) of every row."""
    listed: list[tuple[str, str, Callable[[], Any]]] = [
        ("IQL (d3rlpy)", "continuous", lambda: d3rlpy.algos.IQLConfig(
            batch_size=BATCH, observation_scaler=d3rlpy.preprocessing.StandardObservationScaler()).create()),
        ("SAQ-IQL", "discrete", lambda: saq_iql_config().create()),
        ("SAQ-BRAC", "discrete", lambda: saq_brac_config().create()),
        (NO_KL_BUDGET, "discrete", lambda: saq_brac_config(kl_budget=None).create()),
    ]
    for n in N_CANDIDATES:
        table = candidate_table(data, n)
        listed += [(f"ARQ, N={n}", "continuous", lambda table=table: arq(table, awr=False)),
                   (f"ARQ, N={n}, AWR policy", "continuous", lambda table=table: arq(table, awr=True))]
    if with_before:
        listed += [
            ("SAQ-IQL (before)", "discrete", lambda: before(saq_iql_config, fit_behavior_policy=True).create()),
            ("SAQ-BRAC (before)", "discrete", lambda: before(saq_brac_config).create()),
        ]
    return listed


def build(make: Callable[[], Any], dataset: d3rlpy.dataset.MDPDataset) -> Any:
    """A fresh algorithm, built on ``dataset`` (scalers fitted), seeded alike for every row."""
    torch.manual_seed(0)
    algo = make()
    d3rlpy.algos.utility.build_scalers_with_transition_picker(algo, dataset)
    algo.build_with_dataset(dataset)
    return algo


def gflop_per_update(algo: Any, dataset: d3rlpy.dataset.MDPDataset) -> float:
    """GFLOP of one update (forward, backward, optimizer), as torch's counter sees them."""
    with FlopCounterMode(display=False) as counter:
        algo.update(dataset.sample_transition_batch(BATCH))
    return counter.get_total_flops() / 1e9


def interleaved_rates(algos: dict[str, tuple[Any, d3rlpy.dataset.MDPDataset, int]],
                      rounds: int) -> dict[str, dict[str, float]]:
    """Train every ``(algo, dataset, chunk)`` for ``rounds`` chunks, in turns, sampling each batch
    as ``fit`` does; per algorithm the median chunk rate over the last third of the rounds and
    the rate over all of them."""
    chunk_rates: dict[str, list[float]] = {name: [] for name in algos}
    seconds = dict.fromkeys(algos, 0.0)
    for _ in range(rounds):
        for name, (algo, dataset, chunk) in algos.items():
            start = time.perf_counter()
            for _ in range(chunk):
                algo.update(dataset.sample_transition_batch(BATCH))
            elapsed = time.perf_counter() - start
            seconds[name] += elapsed
            chunk_rates[name].append(chunk / elapsed)
    steady = max(1, rounds // 3)
    return {name: {"steady_updates_per_s": float(np.median(rates[-steady:])),
                   "mean_updates_per_s": algos[name][2] * rounds / seconds[name]}
            for name, rates in chunk_rates.items()}


def target_of(name: str) -> Optional[float]:
    if "before" in name or name == NO_KL_BUDGET:
        return None
    return next((share for prefix, share in TARGETS.items() if name.startswith(prefix)), None)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="a D4RL-style hdf5 file (default: kitchen-shaped synthetic data)")
    parser.add_argument("--rounds", type=int, default=30, help="turns of every algorithm")
    parser.add_argument("--chunk", type=int, default=100, help="updates per turn (SAQ, IQL)")
    parser.add_argument("--arq-chunk", type=int, default=20, help="updates per turn (ARQ)")
    parser.add_argument("--no-before", action="store_true", help="skip the rows of the earlier settings")
    parser.add_argument("--quick", action="store_true", help="few updates, for a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.chunk, args.arq_chunk = 3, 10, 2
    torch.set_num_threads(args.threads)
    data = datasets(d4rl_arrays(args.data) if args.data else kitchen_shaped_arrays())

    results: list[dict[str, Any]] = []
    gflop: dict[str, float] = {}
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        algos = {label: (build(make, data[kind]), data[kind], args.arq_chunk if label.startswith("ARQ") else args.chunk)
                 for label, kind, make in rows(data, with_before=not args.no_before)}
        if not flush:  # the arithmetic of an update does not depend on the flag: counted once
            gflop = {label: gflop_per_update(algo, dataset) for label, (algo, dataset, _) in algos.items()}
        for label, rate in interleaved_rates(algos, args.rounds).items():
            updates = algos[label][2] * args.rounds
            results.append({"algorithm": label, "flush_denormal": flush, "updates": updates, **rate})
            print(f"flush_denormal={flush!s:5} {label:24s} {rate['steady_updates_per_s']:6.1f} updates/s "
                  f"(mean over {updates} updates {rate['mean_updates_per_s']:.1f})", flush=True)
    torch.set_flush_denormal(False)
    ceiling = gemm_gflops(BATCH * N_CANDIDATES[0], HIDDEN[0], HIDDEN[1], repeats=3 if args.quick else 7)

    baseline = {r["flush_denormal"]: r["steady_updates_per_s"] for r in results if r["algorithm"] == "IQL (d3rlpy)"}
    for row in results:
        row["vs_iql"] = round(row["steady_updates_per_s"] / baseline[row["flush_denormal"]], 2)
        row["gflop_per_update"] = round(gflop[row["algorithm"]], 3)
        row["of_ceiling"] = round(gflop[row["algorithm"]] * row["steady_updates_per_s"] / ceiling, 3)
        row["ceiling_vs_iql"] = round(ceiling / gflop[row["algorithm"]] / baseline[row["flush_denormal"]], 2)
        row["steady_updates_per_s"] = round(row["steady_updates_per_s"], 1)
        row["mean_updates_per_s"] = round(row["mean_updates_per_s"], 1)
    names = list(dict.fromkeys(r["algorithm"] for r in results))
    target_met = {name: all(r["vs_iql"] >= target_of(name) for r in results if r["algorithm"] == name)
                  for name in names if target_of(name) is not None}
    result = {
        "benchmark": "discrete_algos",
        "quick": args.quick,
        "data": str(args.data) if args.data else "kitchen-shaped synthetic (3,680 rows, 60-D obs, 38 constant, 9-D actions)",
        "machine": f"{platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()}".strip(),
        "torch_threads": args.threads,
        "device": "cpu:0",
        "torch": torch.__version__,
        "d3rlpy": d3rlpy.__version__,
        "settings": {"batch_size": BATCH, "n_codes": N_CODES, "n_candidates": list(N_CANDIDATES),
                     "rounds": args.rounds, "chunk": args.chunk, "arq_chunk": args.arq_chunk},
        "ceiling_gflops": round(ceiling, 1),
        "rows": results,
        "targets": {prefix: f">= {share}x IQL (d3rlpy), with and without the flag" for prefix, share in TARGETS.items()},
        "target_met": target_met,
    }
    by_row: dict[str, dict[bool, dict[str, Any]]] = {}
    for row in results:
        by_row.setdefault(row["algorithm"], {})[row["flush_denormal"]] = row
    lines = [
        f"Updates/s in a plain d3rlpy script ({Path(result['data']).name if args.data else result['data']}), batch "
        f"{BATCH}, {args.threads} thread(s): every algorithm trained from scratch, in turns of {args.chunk} updates "
        f"({args.arq_chunk} for ARQ) over {args.rounds} rounds; the median rate over the last "
        f"{max(1, args.rounds // 3)} rounds{' (quick)' if args.quick else ''}. Arithmetic: GFLOP per update "
        f"(matrix products) against this thread's ceiling of {ceiling:.1f} GFLOP/s (a ({BATCH * N_CANDIDATES[0]} x "
        f"{HIDDEN[0]}) @ ({HIDDEN[0]} x {HIDDEN[1]}) product); `ceiling vs IQL`: the most any implementation of the "
        "update could run, as a multiple of IQL's measured rate (no flag).",
        "",
        "| algorithm | no flag: updates/s | vs IQL | mean over the run | flush_denormal: updates/s | vs IQL | target "
        "| GFLOP / update | of ceiling | ceiling vs IQL |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, pair in by_row.items():
        off, on = pair[False], pair[True]
        share = target_of(name)
        target = f">= {share}x: {'met' if target_met[name] else 'NOT met'}" if share is not None else ""
        lines.append(f"| {name} | {off['steady_updates_per_s']} | {off['vs_iql']}x | {off['mean_updates_per_s']} | "
                     f"{on['steady_updates_per_s']} | {on['vs_iql']}x | {target} | {off['gflop_per_update']:.2f} | "
                     f"{off['of_ceiling']:.0%} | {off['ceiling_vs_iql']}x |")
    table_text = "\n".join(lines)
    print(table_text)

    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    with atomic_output(args.out / f"discrete_algos{suffix}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_output(args.out / f"discrete_algos{suffix}.md") as tmp:
        tmp.write_text(table_text + "\n")


if __name__ == "__main__":
    main()
