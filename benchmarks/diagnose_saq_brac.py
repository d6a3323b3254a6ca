"""SAQ-BRAC on one standard-suite dataset with config overrides, next to the suite's own run.

The standard suite's SAQ-BRAC run (eqs. 3-4 with the per-state KL budget) is re-run with
``DiscreteBRACConfig`` fields overridden (e.g. ``entropy_in_target``, ``kl_budget``), reusing the
suite's quantizer, so the variants differ only in the overridden fields. Each variant is a
harness run in ``--out`` (resumable; its options are part of its fingerprint).

Usage::

    python benchmarks/diagnose_saq_brac.py --data-dir DIR --set entropy_in_target=true

Writes ``<out>/runs/<run id>.json``; prints the final score, the learning curve and the last
training metrics (KL to pi_beta, the per-state weight, critic loss).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness.backends import run_grid  # noqa: E402
from benchmarks.harness.runner import ARTIFACTS, result_path  # noqa: E402
from benchmarks.harness.spec import build_suite  # noqa: E402

SUITE_OUT = ROOT / "benchmarks" / "results" / "harness" / "standard"


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    return float(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the standard suite's --data-dir")
    parser.add_argument("--dataset", default="hopper-expert")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="DiscreteBRACConfig field override (repeatable), e.g. entropy_in_target=true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "saq_brac_diagnosis")
    args = parser.parse_args(argv)
    options = tuple(sorted((key, _value(value)) for key, value in (item.split("=", 1) for item in args.set)))
    runs = [r for r in build_suite("standard", args.data_dir, algos=["SAQ-BRAC"], seeds=[args.seed])
            if r.dataset.name == args.dataset]
    if not runs:
        parser.error(f"no standard-suite dataset {args.dataset!r}")
    run = dataclasses.replace(runs[0], options=options)
    quantizers = SUITE_OUT / ARTIFACTS / "quantizers"
    if quantizers.is_dir():  # the suite's quantizer: the variants differ only in the overrides
        shutil.copytree(quantizers, args.out / ARTIFACTS / "quantizers", dirs_exist_ok=True)
    run_grid([run], args.out, backend="serial")
    record = json.loads(result_path(args.out, run).read_text())
    summary = {"options": dict(options), "score": record["score"],
               "curve": [round(p["score"], 1) for p in record["training"]["curve"]],
               "last_metrics": record["training"]["last_metrics"]}
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
