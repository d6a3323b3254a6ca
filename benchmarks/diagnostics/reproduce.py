"""Rerun committed runs of a suite with the current code and compare their scores.

A change meant to be fast without changing results (the denormal sweep of the presets' Adam,
SAQ-IQL's skipped pi_beta, the KL bisection's early stop, SAQ-IQL's reused target Q) must give
the committed runs' scores again; one that changes only float rounding (the KL multiplier's
Newton solve, the fused Adam) must give scores that differ as reruns on another CPU would, not
systematically. This reruns the named runs of a suite into a folder of their
own (the suite's specs, data and seeds; nothing in the results tree is touched) and prints the
committed score, the score now, and whether every evaluation return is the same to the bit.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.diagnostics.reproduce --data-dir /work/bench-data \\
        --runs hopper-expert__SAQ-IQL-K64-sampled__seed0 walker2d-expert__SAQ-BRAC-K64__seed0 \\
        --out /tmp/reproduce
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Optional

from benchmarks.harness.backends import run_grid
from benchmarks.harness.runner import load_result
from benchmarks.harness.spec import SUITES, build_suite
from benchmarks.run import default_data_dir
from saq_wrappers.io import atomic_output

RESULTS = Path(__file__).resolve().parents[1] / "results" / "harness"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=SUITES, default="standard")
    parser.add_argument("--runs", nargs="+", required=True, help="run ids (the committed runs/<id>.json names)")
    parser.add_argument("--committed", type=Path, help="the committed results folder (default: the suite's)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True, help="where the reruns go (not the committed folder)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the comparison there (JSON)")
    parser.add_argument("--what", default="", help="what changed since the committed runs (written to --json)")
    args = parser.parse_args(argv)
    committed = (args.committed or RESULTS / args.suite).resolve()
    out = args.out.resolve()
    if out == committed:
        raise SystemExit("--out must not be the committed folder: the reruns are compared against it")
    specs = {spec.run_id: spec for spec in build_suite(args.suite, args.data_dir or default_data_dir())}
    unknown = [run for run in args.runs if run not in specs]
    if unknown:
        raise SystemExit(f"not runs of suite {args.suite!r}: {', '.join(unknown)}")
    chosen = [specs[run] for run in args.runs]
    out.mkdir(parents=True, exist_ok=True)
    run_grid(chosen, out, workers=args.workers)
    rows, records = [], []
    for spec in chosen:
        before = json.loads((committed / "runs" / f"{spec.run_id}.json").read_text())
        now = load_result(out, spec)
        same = now is not None and before["evaluation"]["returns"] == now["evaluation"]["returns"]
        records.append({"run": spec.run_id, "committed_score": before["score"],
                        "score_now": None if now is None else now["score"], "same_returns": same})
        shown = "failed" if now is None else f"{now['score']:.1f}"
        rows.append(f"| {spec.run_id} | {before['score']:.1f} | {shown} | {'yes' if same else 'no'} |")
    print("| run | committed score | score now | every evaluation return the same |\n|---|---:|---:|---|")
    print("\n".join(rows))
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps({"suite": args.suite, "committed": str(committed), "what": args.what,
                                       "command": "python -m benchmarks.diagnostics.reproduce "
                                                  + shlex.join(argv if argv is not None else sys.argv[1:]),
                                       "runs": records}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
