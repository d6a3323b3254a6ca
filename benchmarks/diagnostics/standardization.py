"""Which observation dimensions the near-constant rule scales differently, per dataset.

The library standardizes observations with one rule
(:func:`~saq_wrappers.vqvae.normalization.robust_std`): a dimension whose std is below
:data:`~saq_wrappers.vqvae.normalization.NEGLIGIBLE_SPREAD` of the reference spread (the median
std of the dimensions that vary) is divided by that reference instead of by its own (near-)zero
std. Every other dimension is scaled exactly as before. This script shows, for each dataset, the
reference, the dimensions the rule changes, and for each of them the divisor before and after
in the three places it is used:

* ``d3rlpy``: every preset's observation scaler, ``(x - mean) / (std + 1e-3)``;
* ``quantizer``: the VQ-VAE's normalizer, ``(x - mean) / max(std, 1e-3)``;
* ``arq``: the score sampler's normalizer, ``(x - mean) / max(std, 0.05)`` (its default floor).

It also prints how close the data sit to the threshold (the largest near-constant std and the
smallest varying one, as fractions of the reference), so a default can be checked on datasets it
was not chosen on. It trains nothing and writes nothing.

Usage::

    python -m benchmarks.diagnostics.standardization                      # the standard suite's data
    python -m benchmarks.diagnostics.standardization --suite none \\
        d4rl:../shared/data/d4rl-kitchen/kitchen-complete-v0.hdf5 builtin:pendulum-expert

Datasets are ``[NAME=]KIND:SOURCE`` as for ``benchmarks.run --dataset`` (a D4RL-style file needs
no ``@ENV_ID`` here). A suite's datasets are read from ``--data-dir`` and reported as missing
when they are not on disk; nothing is generated or downloaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from benchmarks.harness.spec import SUITES, suite_datasets
from saq_wrappers.app.datasets import DATASET_KINDS, DatasetSpec, load_dataset
from saq_wrappers.vqvae.normalization import NEGLIGIBLE_SPREAD, STD_FLOOR, near_constant_dimensions, robust_std

#: d3rlpy's ``StandardObservationScaler`` eps, kept by the presets' scaler.
D3RLPY_EPS = 1e-3
#: The score sampler's default ``std_floor``.
ARQ_FLOOR = 0.05
#: A run-time move of a near-constant dimension (the D4RL kitchen environment's observation
#: noise is of this order), shown as standardized input before and after.
RUN_TIME_MOVE = 0.01


def divisors(std: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per consumer, the observation divisors ``(before, after)`` the rule."""
    robust = robust_std(std)
    return {
        "d3rlpy": (std + D3RLPY_EPS, robust + D3RLPY_EPS),
        "quantizer": (np.maximum(std, STD_FLOOR), np.maximum(robust, STD_FLOOR)),
        "arq": (np.maximum(std, ARQ_FLOOR), np.maximum(robust, ARQ_FLOOR)),
    }


def runs(indices: np.ndarray, std: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive ``indices`` whose stds are within a factor 1.5 of each other (or all zero),
    as ``(first, last)``."""
    groups: list[tuple[int, int]] = []
    for index in indices.tolist():
        if groups and groups[-1][1] == index - 1:
            values = std[groups[-1][0]:index + 1]
            if values.max() <= 1.5 * values.min() or not values.any():
                groups[-1] = (groups[-1][0], index)
                continue
        groups.append((index, index))
    return groups


def report(name: str, observations: np.ndarray) -> dict[str, Any]:
    """Print and return what the rule changes on ``observations (N, ...)``."""
    flat = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
    std = flat.std(axis=0)
    mask, reference = near_constant_dimensions(std)
    varying = ~mask & np.isfinite(std)
    print(f"\n== {name}: {len(flat)} rows, {flat.shape[1]}-D observations")
    print(f"   reference spread {reference:.4g} (median std of the {int(varying.sum())} dims that vary); "
          f"near-constant below {NEGLIGIBLE_SPREAD * reference:.3g}")
    closest_kept = f"{std[varying].min() / reference:.3g} x reference" if varying.any() else "none"
    largest_flagged = f"{std[mask].max() / reference:.3g} x reference" if mask.any() else "none"
    print(f"   smallest varying std {closest_kept}; largest near-constant std {largest_flagged} "
          f"(threshold {NEGLIGIBLE_SPREAD:g})")
    scales = divisors(std)
    changed = {consumer: np.flatnonzero(before != after) for consumer, (before, after) in scales.items()}
    if not mask.any():
        print("   the rule changes nothing: every dimension keeps its scale in every consumer")
    else:
        print(f"   {int(mask.sum())} near-constant dims; divisor before -> after, and a run-time move of "
              f"{RUN_TIME_MOVE:g} as standardized input (d3rlpy)")
        for first, last in runs(np.flatnonzero(mask), std):
            label = f"{first}" if first == last else f"{first}-{last}"
            cells = []
            for consumer, (before, after) in scales.items():
                mark = "" if before[first] != after[first] else " (unchanged)"
                cells.append(f"{consumer} {before[first]:.3g} -> {after[first]:.3g}{mark}")
            move = (RUN_TIME_MOVE / scales["d3rlpy"][0][first], RUN_TIME_MOVE / scales["d3rlpy"][1][first])
            spread = std[first:last + 1]
            stds = f"{spread.min():.3g}" if spread.min() == spread.max() else f"{spread.min():.3g}..{spread.max():.3g}"
            ptp = np.ptp(flat[:, first:last + 1], axis=0).max()
            print(f"   dims {label:>7s}  std {stds}  ptp <= {ptp:.3g}  "
                  + "  ".join(cells) + f"  move {move[0]:.3g} -> {move[1]:.3g}")
    return {"name": name, "rows": len(flat), "dims": flat.shape[1], "reference": reference,
            "near_constant": np.flatnonzero(mask).tolist(),
            "changed": {consumer: idx.tolist() for consumer, idx in changed.items()}}


def parse(text: str) -> tuple[str, Callable[[], np.ndarray]]:
    """``[NAME=]KIND:SOURCE`` -> its name and a reader of its observations; a ``d4rl`` file needs
    no env id here (nothing is evaluated)."""
    head = text.split(":", 1)[0]
    name, _, rest = text.partition("=") if "=" in head else ("", "", text)
    kind, sep, source = rest.partition(":")
    if sep and kind == "d4rl":
        path = source.rsplit("@", 1)[0]

        def read() -> np.ndarray:
            from saq_wrappers.integrations.d4rl import load_d4rl_hdf5

            return load_d4rl_hdf5(path).observations

        return name or Path(path).stem, read
    return from_spec(DatasetSpec.parse(text))


def from_spec(spec: DatasetSpec) -> tuple[str, Callable[[], np.ndarray]]:
    return spec.name, lambda: load_dataset(spec).transitions.observations


def main(argv: Optional[list[str]] = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="*", help=f"[NAME=]KIND:SOURCE, KIND in {'|'.join(DATASET_KINDS)}")
    parser.add_argument("--suite", default="standard", help=f"a suite's datasets too: {', '.join(SUITES)} or none")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the suite's data live (default: benchmarks.run's, $SAQ_BENCH_DATA or "
                             "~/.cache/saq_wrappers/benchmark-data)")
    args = parser.parse_args(argv)
    sources = [parse(text) for text in args.datasets]
    if args.suite != "none":
        from benchmarks.run import default_data_dir

        data_dir = args.data_dir or default_data_dir()
        for spec in suite_datasets(args.suite, data_dir):
            if spec.kind == "builtin" or Path(spec.source).exists():
                sources.append(from_spec(spec))
            else:
                print(f"{args.suite} suite: {spec.name} is not on disk ({spec.source}); not generated here")
    return [report(name, read()) for name, read in sources]


if __name__ == "__main__":
    main()
