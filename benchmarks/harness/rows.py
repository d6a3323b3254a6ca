"""The report's tables as data: each group's seed mean and interval, the pairs and the
differences, from the per-run result files of a grid.

* :func:`collect` -- the finished results of a grid (and the errors of failed runs);
* :func:`aggregate` -- one row per (dataset, algorithm label): mean over seeds with a
  percentile-bootstrap interval (:func:`~.statistics.bootstrap_ci`), std, speed, time, the
  quantizer's health and the paper's number (:mod:`.paper`);
* :func:`pair_rows`, :func:`against_saq_bc_rows`, :func:`variant_rows` -- SAQ-X − X, SAQ-X −
  SAQ-BC on the same quantizer, and an ablation's variant − reference, each with a bootstrap
  interval of the difference of the seed means (:func:`~.statistics.bootstrap_difference_ci`);
* :func:`data_rows` -- which episodes (by SHA-256) each dataset's runs trained on.

:mod:`.markdown` turns these rows into ``results.md``; :mod:`.report` writes them to ``results.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .paper import paper_number
from .runner import failure_path, load_result
from .spec import RunSpec
from .statistics import BOOTSTRAP_REPS, bootstrap_ci, bootstrap_difference_ci, pair_labels

__all__ = ["PAPER_BASE", "against_saq_bc_rows", "aggregate", "collect", "data_identity", "data_rows",
           "infer_unrecorded_identities", "pair_rows", "variant_rows"]

#: The paper's baseline for SAQ-BRAC, which d3rlpy lacks (TD3+BC stands in for it).
PAPER_BASE = {"SAQ-BRAC": "BRAC"}


def collect(runs: list[RunSpec], out: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Finished results of ``runs`` (grid order) and the errors of failed ones."""
    results, failures = [], {}
    for spec in runs:
        stored = load_result(out, spec)
        if stored is not None:
            results.append(stored)
        elif failure_path(out, spec).is_file():
            failures[spec.run_id] = json.loads(failure_path(out, spec).read_text()).get("error", "?")
    return results, failures


def aggregate(results: list[dict[str, Any]], confidence: float = 0.95,
              reps: int = BOOTSTRAP_REPS, seed: int = 0,
              inferred: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
    """One row per (dataset, label): mean, bootstrap interval and std over seeds, speed, time and
    the paper's number. ``inferred``: :func:`infer_unrecorded_identities` of ``results`` when the
    caller already has it (worked out here otherwise)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["label"]), []).append(r)
    specs = {key: RunSpec.from_dict(members[0]["spec"]) for key, members in groups.items()}
    if inferred is None:
        inferred = infer_unrecorded_identities(results)
    codebook_sizes: dict[tuple[str, str], set[int]] = {}
    for spec in specs.values():
        if spec.is_saq and spec.quantizer.state_conditioned:
            codebook_sizes.setdefault((spec.dataset.name, spec.algo), set()).add(spec.quantizer.n_codes)
    rows = []
    for (dataset, label), members in groups.items():
        spec = specs[(dataset, label)]
        scores = np.array([m["score"] for m in members], dtype=float)
        interval = bootstrap_ci(scores, confidence, reps, seed)
        sweep = len(codebook_sizes.get((spec.dataset.name, spec.algo), ())) > 1
        paper = paper_number(spec.dataset.paper_key, spec.algo, spec.quantizer.n_codes,
                             spec.quantizer.state_conditioned, codebook_sweep=sweep) if spec.is_saq else \
            paper_number(spec.dataset.paper_key, spec.algo, arq_policy=spec.arq.policy)
        q = [m.get("quantizer") or {} for m in members]
        rows.append({
            "dataset": dataset, "label": label, "algo": spec.algo, "metric": members[0]["metric"],
            "paper_key": spec.dataset.paper_key,
            "n_codes": spec.quantizer.n_codes if spec.is_saq else None,
            "state_conditioned": spec.quantizer.state_conditioned if spec.is_saq else None,
            "quantizer": ([spec.quantizer.n_codes, spec.quantizer.state_conditioned, list(spec.quantizer.hidden),
                           spec.quantizer.steps] if spec.is_saq else None),
            "seeds": [m["seed"] for m in members], "scores": scores.tolist(),
            "data_sha256": [data_identity(m, inferred) for m in members],
            "mean": float(scores.mean()), "std": float(scores.std()),
            "ci_low": interval.low, "ci_high": interval.high, "confidence": confidence,
            "mean_return": float(np.mean([m["evaluation"]["mean_return"] for m in members])),
            "steps": float(np.mean([m["training"]["steps"] for m in members])),
            "updates_per_second": float(np.mean([m["training"]["updates_per_second"] for m in members])),
            "train_seconds": float(np.mean([m["training"]["train_seconds"] for m in members])),
            "eval_seconds": float(np.mean([m["eval_seconds"] for m in members])),
            "reconstruction_mse": _mean_or_none([x.get("reconstruction_mse") for x in q]),
            "codes_used": _mean_or_none([x.get("codes_used") for x in q]),
            "paper": paper[0] if paper else None, "paper_source": paper[1] if paper else None,
        })
    return rows


def _mean_or_none(values: list[Any]) -> Optional[float]:
    present = [float(v) for v in values if v is not None]
    return float(np.mean(present)) if present else None


def data_identity(result: dict[str, Any], inferred: Optional[dict[str, str]] = None) -> Optional[str]:
    """The SHA-256 of the episodes a run trained on: recorded, else ``inferred`` (see
    :func:`infer_unrecorded_identities`), else ``None`` (recorded before runs kept it)."""
    return (result.get("data") or {}).get("sha256") or (inferred or {}).get(result["run_id"])


def _episodes_summary(result: dict[str, Any]) -> tuple[Any, ...]:
    info = result.get("data") or {}
    return result["dataset"], info.get("transitions"), info.get("episodes"), info.get("mean_return")


def infer_unrecorded_identities(results: list[dict[str, Any]]) -> dict[str, str]:
    """``run_id -> SHA-256`` for runs recorded before run records kept the episodes' SHA-256 whose
    dataset, transitions, episodes and mean return (a float, to the last bit) equal those of
    exactly one recorded set: the same episodes, written again (``--agent-seed model`` writes the
    standard suite's first generation again). A run matching no set, or several, stays ``None``."""
    recorded: dict[tuple[Any, ...], set[str]] = {}
    for r in results:
        sha = data_identity(r)
        if sha is not None:
            recorded.setdefault(_episodes_summary(r), set()).add(sha)
    inferred = {}
    for r in results:
        matches = recorded.get(_episodes_summary(r), set())
        if data_identity(r) is None and len(matches) == 1 and None not in _episodes_summary(r):
            inferred[r["run_id"]] = next(iter(matches))
    return inferred


def data_rows(results: list[dict[str, Any]],
              inferred: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
    """Per dataset, one row per distinct set of episodes its runs trained on (most runs first):
    the same name can hold different episodes when the data were generated again. ``inferred`` as
    in :func:`aggregate`."""
    if inferred is None:
        inferred = infer_unrecorded_identities(results)
    groups: dict[tuple[str, Optional[str]], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], data_identity(r, inferred)), []).append(r)
    rows = []
    for (dataset, sha), members in groups.items():
        info = members[0].get("data") or {}
        rows.append({"dataset": dataset, "sha256": sha, "transitions": info.get("transitions"),
                     "episodes": info.get("episodes"), "mean_return": info.get("mean_return"),
                     "n_runs": len(members), "runs": [m["run_id"] for m in members],
                     "n_inferred": sum(m["run_id"] in inferred for m in members)})
    order = list(dict.fromkeys(r["dataset"] for r in results))
    rows.sort(key=lambda row: (order.index(row["dataset"]), -row["n_runs"]))
    return rows


def pair_rows(rows: list[dict[str, Any]], confidence: float = 0.95, reps: int = BOOTSTRAP_REPS,
              seed: int = 0) -> list[dict[str, Any]]:
    """X against SAQ-X per dataset where both finished: means, intervals, the difference with its
    bootstrap interval, the updates and training seconds of each, and the paper's difference."""
    by_key = {(r["dataset"], r["label"]): r for r in rows}
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        for base, saq in pair_labels(rows):
            if (ds, base) not in by_key or (ds, saq) not in by_key:
                continue
            x, y = by_key[(ds, base)], by_key[(ds, saq)]
            diff = bootstrap_difference_ci(x["scores"], y["scores"], confidence, reps, seed)
            paper_x = x["paper"]
            paper_base = base
            if paper_x is None and y["algo"] in PAPER_BASE:
                found = paper_number(y["paper_key"], PAPER_BASE[y["algo"]])
                paper_x, paper_base = (found[0], PAPER_BASE[y["algo"]]) if found else (None, base)
            out.append({
                "dataset": ds, "x": base, "saq_x": saq,
                "x_mean": x["mean"], "x_ci": [x["ci_low"], x["ci_high"]], "x_n": len(x["seeds"]),
                "saq_mean": y["mean"], "saq_ci": [y["ci_low"], y["ci_high"]], "saq_n": len(y["seeds"]),
                "difference": diff.point, "difference_ci": [diff.low, diff.high],
                "x_steps": x["steps"], "saq_steps": y["steps"],
                "x_train_seconds": x["train_seconds"], "saq_train_seconds": y["train_seconds"],
                "paper_difference": (y["paper"] - paper_x) if (y["paper"] is not None and paper_x is not None)
                else None,
                "paper_base": paper_base,
            })
    return out


def _against_base(rows: list[dict[str, Any]], base_key: Callable[[dict[str, Any]], Any],
                  is_base: Callable[[dict[str, Any]], bool], names: tuple[str, str], confidence: float,
                  reps: int, seed: int) -> list[dict[str, Any]]:
    """Each group minus the base group (``is_base``) with the same ``base_key``: the seed means'
    difference with the same bootstrap interval as :func:`pair_rows`. ``names``: the output's
    keys for the base and the compared group."""
    bases = {base_key(r): r for r in rows if is_base(r)}
    base_name, other_name = names
    out = []
    for row in rows:
        base = bases.get(base_key(row))
        if base is None or is_base(row):
            continue
        diff = bootstrap_difference_ci(base["scores"], row["scores"], confidence, reps, seed)
        out.append({"dataset": row["dataset"], base_name: base["label"], other_name: row["label"],
                    f"{base_name}_mean": base["mean"], f"{base_name}_n": len(base["seeds"]),
                    f"{other_name}_mean": row["mean"], f"{other_name}_n": len(row["seeds"]),
                    "difference": diff.point, "difference_ci": [diff.low, diff.high]})
    return out


def against_saq_bc_rows(rows: list[dict[str, Any]], confidence: float = 0.95, reps: int = BOOTSTRAP_REPS,
                        seed: int = 0) -> list[dict[str, Any]]:
    """Each SAQ-CQL / SAQ-IQL / SAQ-BRAC group against SAQ-BC on the same dataset and the same
    quantizer (K, state conditioning, size, fit updates): what the RL adds to imitating the codes
    (SAQ eq. 8's policy)."""
    return _against_base(rows, lambda r: (r["dataset"], json.dumps(r["quantizer"])),
                         lambda r: r["algo"] == "SAQ-BC", ("saq_bc", "saq_x"), confidence, reps, seed)


def variant_rows(rows: list[dict[str, Any]], reference_labels: set[str], confidence: float = 0.95,
                 reps: int = BOOTSTRAP_REPS, seed: int = 0) -> list[dict[str, Any]]:
    """An ablation's answer: each variant group (another K, no state, another quantizer budget,
    another acting rule) minus the reference group of the same algorithm on the same dataset
    (``reference_labels``, from :func:`~benchmarks.harness.spec.is_ablation_reference`)."""
    return _against_base(rows, lambda r: (r["dataset"], r["algo"]), lambda r: r["label"] in reference_labels,
                         ("reference", "variant"), confidence, reps, seed)
