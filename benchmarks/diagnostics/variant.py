"""One standard-suite run with config overrides, next to the suite's own run.

A standard-suite run of ``--algo`` (e.g. SAQ-BRAC, SAQ-IQL) is re-run with fields of its d3rlpy
config overridden (e.g. SAQ-BRAC's ``entropy_in_target``, SAQ-IQL's ``policy_extraction``),
reusing the suite's quantizer, so the variants differ only in the overridden fields. Each variant
is a harness run in ``--out`` (resumable; its options are part of its fingerprint).

Usage::

    python -m benchmarks.diagnostics.variant --data-dir DIR --algo SAQ-BRAC --set entropy_in_target=true
    python -m benchmarks.diagnostics.variant --data-dir DIR --algo SAQ-IQL --set policy_extraction=closed_form
    python -m benchmarks.diagnostics.variant --data-dir DIR --algo SAQ-BRAC --acting sampled

Writes ``<out>/runs/<run id>.json`` (``--out`` defaults to
``benchmarks/results/variant_diagnosis/<algo>/<field=value,...>``, with ``,sampled`` or ``,greedy``
appended when ``--acting`` differs from the suite's rule for that algorithm); prints the final score, the learning curve and
the last training metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from benchmarks.harness.backends import run_grid
from benchmarks.harness.runner import ARTIFACTS, result_path
from benchmarks.harness.spec import build_suite

ROOT = Path(__file__).resolve().parents[2]

SUITE_OUT = ROOT / "benchmarks" / "results" / "harness" / "standard"


def _value(text: str) -> Any:
    """``true``/``false``/``none``, a number, or else the text itself (e.g. a policy name)."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the standard suite's --data-dir")
    parser.add_argument("--algo", required=True, help="a standard-suite algorithm, e.g. SAQ-BRAC, SAQ-IQL")
    parser.add_argument("--dataset", default="hopper-expert")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="config field override (repeatable), e.g. entropy_in_target=true")
    parser.add_argument("--acting", choices=("greedy", "sampled"), default=None,
                        help="evaluate by the policy's argmax or by sampling it (default: the suite's rule, "
                             "sampled for SAQ-IQL as its authors do, greedy otherwise)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default benchmarks/results/variant_diagnosis/<algo>/<field=value,...>")
    args = parser.parse_args(argv)
    malformed = [item for item in args.set if "=" not in item or not item.split("=", 1)[0]]
    if malformed:
        parser.error(f"--set expects FIELD=VALUE, got {', '.join(map(repr, malformed))}")
    options = tuple(sorted((key, _value(value)) for key, value in (item.split("=", 1) for item in args.set)))
    runs = [r for r in build_suite("standard", args.data_dir, algos=[args.algo], seeds=[args.seed])
            if r.dataset.name == args.dataset]
    if not runs:
        parser.error(f"no standard-suite run of {args.algo!r} on dataset {args.dataset!r}")
    run = dataclasses.replace(runs[0], options=options)
    variant = ",".join(f"{key}={value}" for key, value in options) or "suite-settings"
    greedy = run.evaluation.greedy if args.acting is None else args.acting == "greedy"
    if greedy != run.evaluation.greedy:  # only a change of the suite's acting rule names a variant
        run = dataclasses.replace(run, evaluation=dataclasses.replace(run.evaluation, greedy=greedy))
        variant += f",{args.acting}"
    out: Path = args.out or ROOT / "benchmarks" / "results" / "variant_diagnosis" / args.algo / variant
    quantizers = SUITE_OUT / ARTIFACTS / "quantizers"
    if quantizers.is_dir():  # the suite's quantizer: the variants differ only in the overrides
        shutil.copytree(quantizers, out / ARTIFACTS / "quantizers", dirs_exist_ok=True)
    run_grid([run], out, backend="serial")
    record = json.loads(result_path(out, run).read_text())
    summary = {"options": dict(options), "score": record["score"],
               "curve": [round(p["score"], 1) for p in record["training"]["curve"]],
               "last_metrics": record["training"]["last_metrics"]}
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
