"""What the update-rate benchmarks share: interleaved timing windows and atomic result files."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import d3rlpy
from d3rlpy.algos.utility import build_scalers_with_transition_picker

from saq_wrappers.io import atomic_output


def rate_parser(description: str, results_dir: Path) -> argparse.ArgumentParser:
    """The options of an update-rate benchmark: ``--quick``, ``--updates``, ``--repeats``, ``--out``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few updates, one repeat")
    parser.add_argument("--updates", type=int, default=None, help="updates per timed window")
    parser.add_argument("--repeats", type=int, default=None, help="timed windows per algorithm")
    parser.add_argument("--out", type=Path, default=results_dir, help="results folder")
    return parser


def built_and_warmed(config: Any, data: Any, batch_size: int) -> Any:
    """``config``'s algorithm on the CPU, seeded with 0, built on ``data`` as ``fit`` builds it
    (scalers fitted first), after 3 warm-up updates."""
    d3rlpy.seed(0)
    algo = config.create(device="cpu")
    build_scalers_with_transition_picker(algo, data)
    algo.build_with_dataset(data)
    for _ in range(3):
        algo.update(data.sample_transition_batch(batch_size))
    return algo


def interleaved_update_rates(built: dict[str, tuple[Any, Any]], batch_size: int, updates: int,
                             repeats: int) -> dict[str, list[float]]:
    """Updates/s of each ``name -> (algo, dataset)``: ``repeats`` windows of ``updates`` updates,
    the algorithms taking turns so that machine noise hits all of them alike. A window times batch
    sampling and the update, exactly what ``fit`` does per step."""
    rates: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(repeats):
        for name, (algo, data) in built.items():
            started = time.perf_counter()
            for _ in range(updates):
                algo.update(data.sample_transition_batch(batch_size))
            rates[name].append(updates / (time.perf_counter() - started))
    return rates


def write_results(out: Path, stem: str, result: dict[str, Any], markdown: str) -> None:
    """``out/<stem>.json`` and ``out/<stem>.md``, each written to a temporary file and renamed."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    with atomic_output(out / f"{stem}.md") as tmp:
        tmp.write_text(markdown + "\n")
