"""``saq quickstart``: SAQ-X next to continuous X on one dataset, trained and evaluated in minutes.

The default needs no network and no pre-trained agent: the package's scripted Pendulum expert
(:mod:`saq_wrappers.experts`) produces a narrow, noisy expert dataset, cached after the first
run. Two experiments of the one pipeline (:func:`~saq_wrappers.app.pipeline.run_experiment`) run
on the same data, seed and budget: SAQ-X on the quantizer's codes, then its continuous d3rlpy
counterpart. The output folder gets a table, a JSON of every number, the learning-curve PNG,
the quantizer and both models; it appears only when the run has finished
(:mod:`saq_wrappers.app.outputs`).

Importing this module is cheap (the CLI reads its defaults); the pipeline is imported when a
run starts.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Optional

from saq_wrappers.errors import DataError
from saq_wrappers.integrations import algorithms

from .datasets import BUILTIN_DATASET, DatasetSpec
from .experiment import EvaluationSettings, ExperimentSpec, QuantizerSettings, check_time_budget
from .outputs import resolve_run_folder, run_folder

#: ``--algo`` choice (the SAQ algorithm's family, lowercase) -> the continuous counterpart of its
#: SAQ-X (:data:`saq_wrappers.integrations.algorithms.COUNTERPARTS`).
COUNTERPARTS: dict[str, str] = {saq.removeprefix(algorithms.SAQ_PREFIX).lower(): counterpart
                                for saq, counterpart in algorithms.COUNTERPARTS.items()}
#: ``--algo`` choices.
ALGORITHMS: tuple[str, ...] = tuple(COUNTERPARTS)


@dataclasses.dataclass
class QuickstartConfig:
    """Options of :func:`run_quickstart` (and of ``saq quickstart``).

    ``time_budget`` seconds of training per algorithm (the same wall-clock for both), or
    ``steps`` updates each when given (then the time budget is ignored). ``trust_env_spec``
    lets a Minari dataset's metadata name any env code to rebuild for evaluation (see
    :class:`~saq_wrappers.app.datasets.DatasetSpec`); off, only registered entry points.
    """

    dataset: str = BUILTIN_DATASET
    algo: str = "cql"
    n_codes: int = 16
    quantizer_steps: int = 3000
    time_budget: Optional[float] = 90.0
    steps: Optional[int] = None
    eval_episodes: int = 10
    curve_points: int = 6
    seed: int = 0
    output_dir: Optional[str] = None
    baseline: bool = True
    progress: bool = True
    trust_env_spec: bool = False

    def experiments(self) -> list[ExperimentSpec]:
        """The SAQ-X spec, then (with ``baseline``) its continuous counterpart; validates every
        option, so a bad one fails before any work."""
        if self.algo not in ALGORITHMS:
            raise DataError(f"unknown algorithm {self.algo!r}: expected one of {', '.join(ALGORITHMS)}")
        if self.time_budget is not None:
            check_time_budget(self.time_budget)  # also when ``steps`` overrides it: a bad value is a mistake
        dataset = dataclasses.replace(DatasetSpec.parse(self.dataset), trust_env_spec=self.trust_env_spec)
        common: dict[str, Any] = dict(
            dataset=dataset, seed=self.seed,
            steps=self.steps, time_budget=None if self.steps is not None else self.time_budget,
            quantizer=QuantizerSettings(n_codes=self.n_codes, steps=self.quantizer_steps),
            evaluation=EvaluationSettings(episodes=self.eval_episodes, curve_points=self.curve_points,
                                          curve_episodes=3),
            tag="quickstart",
        )
        specs = [ExperimentSpec(algo=algorithms.SAQ_PREFIX + self.algo.upper(), **common)]
        if self.baseline:
            specs.append(ExperimentSpec(algo=COUNTERPARTS[self.algo], **common))
        return specs


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    """Run the whole job; returns (and writes) the results. See the module docstring.

    Raises:
        DataError: a bad option or dataset (before any work).
        OutputPathError: the output folder cannot be made, or already holds files.
    """
    specs = config.experiments()
    specs[0].dataset.check()
    target = resolve_run_folder(config.output_dir, f"quickstart-{config.algo}")
    say = print if config.progress else (lambda *_: None)

    from .datasets import load_dataset
    from .pipeline import ArtifactStore, run_experiment

    started = time.perf_counter()
    with run_folder(target) as folder:
        data = load_dataset(specs[0].dataset, progress=config.progress)
        say(f"dataset {data.name}: {len(data.transitions)} transitions, {data.transitions.n_episodes} episodes")
        store = ArtifactStore(folder, keyed=False)
        runs = []
        for spec in specs:
            model = folder / (f"saq_{config.algo}.d3" if spec.is_saq else f"{config.algo}.d3")
            outcome = run_experiment(spec, store, data=data, progress=config.progress, model_path=model, say=say)
            runs.append(_run_row(outcome.record))
        results = {
            "config": dataclasses.asdict(config),
            "output_dir": str(target),
            "dataset": dict(runs[0]["data"]),
            "quantizer": {"n_codes": config.n_codes, "fit_steps": config.quantizer_steps,
                          **{k: runs[0].get(k) for k in ("fit_seconds", "n_restarted_codes")}},
            "runs": runs,
            "total_seconds": time.perf_counter() - started,
        }
        table = results_table(results)
        (folder / "results.json").write_text(json.dumps(results, indent=2))
        (folder / "results.md").write_text(table + "\n")
        _plot(results, folder / "learning_curves.png")
    print("\n" + table)
    say(f"\nartifacts in {target}/ (quantizer.safetensors, models, results.json, learning_curves.png)")
    return results


def _run_row(record: dict[str, Any]) -> dict[str, Any]:
    """One table row: the pipeline's record, flattened the way the table and the JSON read it."""
    row: dict[str, Any] = {"method": record["algo"], **record["training"], "evaluation": record["evaluation"],
                           "data": record["data"]}
    data = record["data"]
    if data["random_return"] is not None and data["expert_return"] is not None:
        row["normalized_score"] = record["score"]
    quantizer = record.get("quantizer")
    if quantizer:
        row.update(reconstruction_mse=quantizer["reconstruction_mse"], codes_used=quantizer["codes_used"],
                   perplexity=quantizer["perplexity"], fit_seconds=quantizer["fit_seconds"],
                   n_restarted_codes=quantizer["n_restarted_codes"])
    return row


def results_table(results: dict[str, Any]) -> str:
    """The Markdown table ``saq quickstart`` prints."""
    lines = [
        "| method | return (mean ± std) | normalized score | updates | updates/s | train time (s) | recon. MSE | codes used (perplexity) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    k = results["quantizer"]["n_codes"]
    for run in results["runs"]:
        ev = run["evaluation"]
        norm = f"{run['normalized_score']:.1f}" if "normalized_score" in run else "n/a"
        recon = f"{run['reconstruction_mse']:.4f}" if "reconstruction_mse" in run else "-"
        usage = f"{run['codes_used']}/{k} ({run['perplexity']:.1f})" if "codes_used" in run else "-"
        lines.append(
            f"| {run['method']} | {ev['mean_return']:.1f} ± {ev['std_return']:.1f} | {norm} | "
            f"{run['steps']} | {run['updates_per_second']:.1f} | {run['train_seconds']:.1f} | {recon} | {usage} |"
        )
    return "\n".join(lines)


def _plot(results: dict[str, Any], path: Path) -> None:
    from .plots import plot_curves

    dataset = results["dataset"]
    curves = {run["method"]: [(p["seconds"], p["score"]) for p in run["curve"]] for run in results["runs"]}
    normalized = "normalized_score" in results["runs"][0]
    plot_curves({f"quickstart: {dataset['name']}": curves}, path, "training time (s)",
                "normalized score" if normalized else "mean return",
                reference_lines={"expert": 100.0, "random": 0.0} if normalized else None)
