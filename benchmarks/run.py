"""Benchmark harness: X vs SAQ-X vs ARQ on the same data, resumable, with a table and plots.

Usage (from the repository root)::

    # generate the small suite's data from SB3 zoo agents + the scripted Lift demonstrator
    python -m benchmarks.run --suite small --prepare-only --zoo /path/to/sb3-zoo
    # run it (2 workers, one torch thread each); re-running skips finished runs
    python -m benchmarks.run --suite small
    # ablations (SAQ Tables 3 and 4, Figure 2)
    python -m benchmarks.run --suite ablation-k
    python -m benchmarks.run --suite ablation-state
    python -m benchmarks.run --suite ablation-penalty
    # any datasets / algorithms / seeds / budget
    python -m benchmarks.run --suite tiny --dataset builtin:pendulum-expert \\
        --algos BC,CQL,SAQ-CQL,ARQ --seeds 0,1 --steps 2000 --out /tmp/bench

Suites (estimated wall time, 2 workers on 2 CPU cores, measured speeds under some load):

* ``small`` (~25-30 min after ~1.5 min of ``prepare``): hopper-expert (10k steps, TQC zoo agent),
  hopper-medium-expert (10k SAC-zoo + 10k TQC steps), lift-ph (100 scripted Lift demos, robomimic
  format, success rate, horizon 200) x BC, CQL, IQL, SAQ-BC, SAQ-CQL, SAQ-IQL, SAQ-BRAC, ARQ x seed 0;
  4000 updates each, 256-256 networks everywhere, K = 64, 5 final evaluation episodes.
* ``paper``: hopper/halfcheetah/walker2d x expert/medium-expert/medium (100k-200k steps) and lift-ph
  (200 demos, horizon 400) x the 8 algorithms + TD3+BC x seeds 0-2, 200k updates, the authors'
  network sizes: 270 runs, for GPU machines (``--device cuda:0``) or a Ray cluster.
* ``ablation-k`` (~8 min): SAQ-CQL/IQL/BRAC at K in {16, 32, 64, 128} on hopper-expert.
* ``ablation-state`` (~4 min): the same three with and without state conditioning, K = 16, on
  hopper-medium-expert.
* ``ablation-penalty`` (~7 min): CQL and SAQ-CQL on hopper-expert, logging CQL's penalty at 8 points
  (sampled estimate vs a 1024-sample reference; exact over the codes for SAQ-CQL).

Writes ``<out>/runs/<run_id>.json`` per finished run, then ``<out>/results.json``,
``<out>/results.md`` and PNG plots (default ``<out>`` = ``benchmarks/results/harness/<suite>``).
See :mod:`benchmarks.harness` for the pieces.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported, here and in workers

import argparse  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Sequence  # noqa: E402

from saq_wrappers.errors import SAQError  # noqa: E402

from .harness.backends import BACKENDS, run_grid  # noqa: E402
from .harness.data import check_available, prepare  # noqa: E402
from .harness.report import write_report  # noqa: E402
from .harness.spec import ALGORITHMS, SUITES, DatasetSpec, build_suite  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "harness"


def default_data_dir() -> Path:
    """``$SAQ_BENCH_DATA``, else ``<saq cache>/benchmark-data`` (outside the repository)."""
    if os.environ.get("SAQ_BENCH_DATA"):
        return Path(os.environ["SAQ_BENCH_DATA"])
    from saq_wrappers.experts import default_cache_dir

    return default_cache_dir() / "benchmark-data"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--suite", choices=SUITES, default="small", help="grid and budgets")
    parser.add_argument("--dataset", action="append", default=[],
                        help="[NAME=]KIND:SOURCE (repeatable), KIND in builtin|minari|robomimic|d4rl, "
                             "e.g. builtin:pendulum-expert, hopper=minari:mujoco/hopper/expert-v0, "
                             "lift=robomimic:lift.hdf5, d4rl:hopper.hdf5@Hopper-v5; replaces the suite's")
    parser.add_argument("--algos", help=f"comma list from {','.join(ALGORITHMS)} (default: the suite's)")
    parser.add_argument("--seeds", help="comma list of seeds (default: the suite's)")
    parser.add_argument("--steps", type=int, help="gradient updates per run (default: the suite's)")
    parser.add_argument("--time-budget", type=float, help="wall-clock cap per run's training, seconds")
    parser.add_argument("--eval-episodes", type=int, help="final evaluation episodes (default: the suite's)")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/harness/<suite>)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where prepare writes / the suites read their data "
                             "(default $SAQ_BENCH_DATA or ~/.cache/saq_wrappers/benchmark-data)")
    parser.add_argument("--prepare", action="store_true", help="generate missing suite data first")
    parser.add_argument("--prepare-only", action="store_true", help="generate missing suite data and stop")
    parser.add_argument("--zoo", type=Path, help="SB3 zoo agents folder (<algo>/<Env>-v3/model.zip) for prepare")
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="local: spawn process pool; serial: in this process; ray: Ray tasks")
    parser.add_argument("--workers", type=int, default=2, help="parallel runs (one torch thread each)")
    parser.add_argument("--device", default="cpu:0", help="torch device of the algorithms, e.g. cuda:0")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from finished runs")
    parser.add_argument("--list", action="store_true", help="print the grid and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = list(argv) if argv is not None else sys.argv[1:]
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in given)
    data_dir = args.data_dir or default_data_dir()
    try:
        if args.prepare or args.prepare_only:
            for line in prepare(args.suite, data_dir, args.zoo):
                print(line)
            if args.prepare_only:
                return 0
        runs = build_suite(
            args.suite, data_dir,
            seeds=[int(s) for s in args.seeds.split(",")] if args.seeds else None,
            algos=[a.strip() for a in args.algos.split(",")] if args.algos else None,
            datasets=[DatasetSpec.parse(text) for text in args.dataset] or None,
            steps=args.steps, time_budget=args.time_budget, eval_episodes=args.eval_episodes,
        )
        if args.list:
            for run in runs:
                print(f"{run.run_id}: {run.steps} steps, hidden {run.hidden}, data {run.dataset.source}")
            return 0
        out = (args.out or RESULTS / args.suite).resolve()
        out.mkdir(parents=True, exist_ok=True)
        if not args.report_only:
            missing = check_available(list(dict.fromkeys(r.dataset for r in runs)))
            if missing:
                print("missing datasets (run with --prepare --zoo DIR, or pass --dataset):\n  " + "\n  ".join(missing),
                      file=sys.stderr)
                return 2
            summary = run_grid(runs, out, backend=args.backend, workers=args.workers, device=args.device)
            print(f"executed {len(summary.executed)}, skipped {len(summary.skipped)} finished, "
                  f"failed {len(summary.failed)} in {summary.seconds / 60:.1f} min")
        report = write_report(runs, out, args.suite, command)
        print("\n" + report["markdown"])
        print(f"wrote {out}/results.json, results.md, {', '.join(report['plots']) or 'no plots'}")
        return 1 if report["failures"] else 0
    except SAQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
