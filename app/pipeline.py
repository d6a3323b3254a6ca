"""The one offline pipeline: dataset -> action set -> relabel -> algorithm -> train -> evaluate -> record.

:func:`run_experiment` runs one :class:`~saq_wrappers.app.experiment.ExperimentSpec` and returns
an :class:`ExperimentOutcome`: one JSON-ready result record plus the live objects (the trained
algorithm, the quantizer, the relabeled codes) a recipe may go on with. ``saq quickstart``, the
offline phase of ``saq finetune`` and every benchmark suite call it, so a setting or a step
exists once.

* **Action set.** SAQ-X fits (or reuses) the state-conditioned VQ-VAE of SAQ eqs. 5-7 and
  relabels every action to its code; ARQ fits (or reuses) the score model and precomputes the
  candidate table of ARQ eq. 5. Both are cached in an :class:`ArtifactStore`, keyed by every
  setting that changes them, so the SAQ-X runs of one seed share one quantizer.
* **Algorithm.** From the one registry (:mod:`saq_wrappers.integrations.d3rlpy.registry`).
* **Budget.** Gradient updates and/or training seconds (:func:`train_with_budget`);
  evaluation time is not charged to the budget.
* **Score.** Success rate in % for robomimic tasks, else the D4RL-style normalized score,
  else the mean return.
* **Twins.** Specs that differ only in how the trained policy acts (greedy or sampled, mode
  averaging or not) share one training: each twin's curve points and final episodes are
  evaluated on the same trained algorithm, with the global random generators restored after
  each, so the training, and the main spec's record, are what they would be alone.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from saq_wrappers.errors import CheckpointError, DataError
from saq_wrappers.candidate_observations import with_candidate_observations
from saq_wrappers.evaluation import normalized_score
from saq_wrappers.integrations.d3rlpy import (
    evaluate_algo,
    presets,
    registry,
    to_continuous_dataset,
    to_discrete_dataset,
)
from saq_wrappers.integrations.d3rlpy.training import seed_everything, train_with_budget
from saq_wrappers.io import atomic_output, read_json_file
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.transitions import Relabeled, relabel
from saq_wrappers.vqvae import VQVAEQuantizer

from .datasets import LoadedDataset, load_dataset
from .experiment import CURVE_SEED_OFFSET, ExperimentSpec
from .rng import global_rng_kept

__all__ = ["ArtifactStore", "ExperimentOutcome", "flush_denormals", "machine", "run_experiment", "score_of"]


@dataclasses.dataclass(frozen=True)
class ArtifactStore:
    """Where fitted action sets live, so runs that need the same one share it.

    ``keyed`` (the benchmarks): ``root/quantizers/<key>.safetensors`` and ``root/arq/<key>/``,
    the key naming every setting that changes the artifact. Not keyed (one run's output folder):
    ``root/quantizer.safetensors`` and ``root/arq/``.
    """

    root: Path
    keyed: bool = True

    def quantizer_path(self, spec: ExperimentSpec) -> Path:
        if not self.keyed:
            return self.root / "quantizer.safetensors"
        q = spec.quantizer
        hidden = "x".join(str(h) for h in q.hidden)
        state = "" if q.state_conditioned else "-nostate"
        key = f"{spec.dataset.name}__K{q.n_codes}{state}__h{hidden}__n{q.steps}__seed{spec.seed}"
        return self.root / "quantizers" / f"{key}.safetensors"

    def arq_folder(self, spec: ExperimentSpec) -> Path:
        if not self.keyed:
            return self.root / "arq"
        a = spec.arq
        key = (f"{spec.dataset.name}__N{a.n_samples}-h{a.hidden}-b{a.n_blocks}-o{a.ode_steps}"
               f"-n{a.fit_steps}-bs{a.fit_batch}-lr{a.fit_lr:g}__seed{spec.seed}")
        return self.root / "arq" / key


@dataclasses.dataclass
class ExperimentOutcome:
    """What :func:`run_experiment` made: the result record and the live objects behind it."""

    record: dict[str, Any]
    algo: Any
    action_set: Optional[Any]
    data: LoadedDataset
    relabeled: Optional[Relabeled]
    dataset: Any  # the d3rlpy dataset the algorithm was trained on
    twin_records: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # one per twin, in order


def score_of(spec: ExperimentSpec, data: LoadedDataset, result: Any) -> float:
    """Success rate in % (robomimic-style tasks), else the normalized score, else the mean return."""
    if spec.dataset.metric == "success":
        return 100.0 * float(result.success_rate)
    if data.random_return is not None and data.expert_return is not None:
        return float(normalized_score(result.mean_return, data.random_return, data.expert_return))
    return float(result.mean_return)


def _spaces(data: LoadedDataset) -> tuple[Any, Any]:
    env = data.make_env()
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


#: The largest fit record (``*.fit.json``, ARQ's ``meta.json``) read back from the artifact store.
_MAX_RECORD_BYTES = 1 << 20


def ensure_quantizer(spec: ExperimentSpec, store: ArtifactStore, data: LoadedDataset,
                     spaces: Optional[tuple[Any, Any]] = None, progress: bool = False) -> tuple[VQVAEQuantizer, dict[str, Any]]:
    """The spec's fitted quantizer (SAQ eqs. 5-7): loaded from the store, or fitted and saved."""
    path = store.quantizer_path(spec)
    meta_path = path.with_suffix(".fit.json")
    data_sha256 = data.transitions.content_sha256()
    if path.is_file() and meta_path.is_file():
        meta = read_json_file(meta_path, "fit record", max_bytes=_MAX_RECORD_BYTES)
        _check_fitted_on(meta, data_sha256, path, spec)
        return VQVAEQuantizer.load(path), meta
    obs_space, act_space = spaces or _spaces(data)
    q = spec.quantizer
    quantizer = VQVAEQuantizer(obs_space, act_space, n_codes=q.n_codes, hidden_sizes=q.hidden,
                               state_conditioned=q.state_conditioned, seed=spec.seed)
    started = time.perf_counter()
    metrics = quantizer.fit(data.transitions, n_steps=q.steps, progress=progress)
    meta = {"fit_seconds": time.perf_counter() - started, "fit_steps": q.steps,
            "n_restarted_codes": metrics.get("n_restarted_codes"), "data_sha256": data_sha256}
    path.parent.mkdir(parents=True, exist_ok=True)
    quantizer.save(path)
    with atomic_output(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return quantizer, meta


def ensure_arq(spec: ExperimentSpec, store: ArtifactStore, data: LoadedDataset,
               spaces: Optional[tuple[Any, Any]] = None, progress: bool = False) -> tuple[Path, Path, dict[str, Any]]:
    """ARQ's score-model checkpoint and candidate table (ARQ eq. 5's support), fitted and
    precomputed when missing; the table resumes chunk by chunk after an interruption."""
    from saq_wrappers.integrations.d3rlpy import arq_table_states
    from saq_wrappers.score import ScoreSupportSampler, precompute_candidate_table

    folder = store.arq_folder(spec)
    folder.mkdir(parents=True, exist_ok=True)
    sampler_path, table_dir, meta_path = folder / "sampler.safetensors", folder / "table", folder / "meta.json"
    data_sha256 = data.transitions.content_sha256()
    if meta_path.is_file():
        stored = read_json_file(meta_path, "fit record", max_bytes=_MAX_RECORD_BYTES)
        _check_fitted_on(stored, data_sha256, folder, spec)
        return sampler_path, table_dir, stored
    meta: dict[str, Any] = {"data_sha256": data_sha256}
    a = spec.arq
    if sampler_path.is_file():
        sampler = ScoreSupportSampler.load(sampler_path)
    else:
        obs_space, act_space = spaces or _spaces(data)
        sampler = ScoreSupportSampler(obs_space, act_space, n_samples=a.n_samples, hidden=a.hidden,
                                      n_blocks=a.n_blocks, steps=a.ode_steps, seed=spec.seed)
        started = time.perf_counter()
        sampler.fit(data.transitions.observations, data.transitions.actions, n_steps=a.fit_steps,
                    batch_size=a.fit_batch, learning_rate=a.fit_lr, progress=progress)
        meta["fit_seconds"] = time.perf_counter() - started
        sampler.save(sampler_path)
    states = arq_table_states(data.transitions)
    started = time.perf_counter()
    table = precompute_candidate_table(sampler, states, table_dir, progress=progress)
    meta.update(table_seconds=time.perf_counter() - started, table_states=len(states),
                valid_fraction=float(table.valid.mean()))
    with atomic_output(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return sampler_path, table_dir, meta


def _check_fitted_on(meta: dict[str, Any], data_sha256: str, artifact: Path, spec: ExperimentSpec) -> None:
    """Refuse a stored artifact fitted on other episodes than ``spec``'s dataset holds now (the
    data were generated again): its codes or candidates would belong to other data. Artifacts
    stored before their meta kept the hash are taken as they are."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"the fit record of {artifact} is not a JSON object: delete it to fit the artifact again")
    fitted_on = meta.get("data_sha256")
    if fitted_on is not None and fitted_on != data_sha256:
        raise DataError(
            f"{artifact} was fitted on other episodes of dataset {spec.dataset.name!r} (SHA-256 "
            f"{fitted_on[:16]}..., the data now: {data_sha256[:16]}...): delete it to fit it again "
            "on the current data, or restore the data it was fitted on")


def prepare_artifact(spec: ExperimentSpec, store: ArtifactStore, data: Optional[LoadedDataset] = None) -> None:
    """Build the action set ``spec`` needs (nothing for a continuous baseline).

    Flushes denormals first, as :func:`run_experiment` does, so an artifact built first thing in
    a fresh worker process fits at the same arithmetic speed as one built after a run there (see
    :func:`flush_denormals`)."""
    flush_denormals()
    if spec.is_saq or spec.algo == "ARQ":
        data = data or load_dataset(spec.dataset)
        if spec.is_saq:
            ensure_quantizer(spec, store, data)
        else:
            ensure_arq(spec, store, data)


def flush_denormals() -> None:
    """Make torch flush float denormals to zero, for the whole process.

    Weight decay and Adam drive some weights and second moments into the float32 denormal range
    (below 1.2e-38), where x86 CPUs compute 10-20x slower (``docs/guide/speed.md``). The SAQ
    presets' optimizer keeps them out by itself; the flag covers every other network a run
    trains (the quantizer, ARQ's score model, SB3's), and keeps the runs' arithmetic that of the
    committed results. Values that small change no result; flushing them keeps every run at its
    real speed, so equal wall-clock budgets compare the algorithms, not the arithmetic of their
    smallest numbers.
    """
    torch.set_flush_denormal(True)


def run_experiment(
    spec: ExperimentSpec,
    store: ArtifactStore,
    *,
    data: Optional[LoadedDataset] = None,
    device: str = "cpu:0",
    progress: bool = False,
    model_path: Optional[Path] = None,
    say: Callable[[str], None] = lambda _: None,
    twins: Sequence[ExperimentSpec] = (),
) -> ExperimentOutcome:
    """Train and evaluate ``spec``; see the module docstring.

    Args:
        spec: the experiment.
        store: where the quantizer / ARQ artifacts are read from or written to.
        data: the dataset, if the caller already loaded it (else ``spec.dataset`` is loaded).
        device: torch device of the algorithm.
        progress: progress bars (quantizer fit, relabel, training).
        model_path: save the trained algorithm there (d3rlpy ``.d3``, reloadable with
            ``d3rlpy.load_learnable``).
        say: where one-line status messages go.
        twins: specs that train exactly as ``spec`` does and act otherwise
            (:meth:`ExperimentSpec.training_spec` equal): evaluated on the same training, their
            records in ``twin_records``.

    Raises:
        DataError: a twin that trains differently from ``spec``.
    """
    check_twins(spec, twins)
    flush_denormals()
    started = time.perf_counter()
    data = data or load_dataset(spec.dataset, progress=progress)
    env = data.make_env()
    try:
        spaces = (env.observation_space, env.action_space)
        info: dict[str, Any] = {}
        action_set: Any = None
        relabeled: Optional[Relabeled] = None
        options = dict(spec.options)
        if spec.is_saq:
            quantizer, meta = ensure_quantizer(spec, store, data, spaces, progress)
            relabeled = relabel(data.transitions, quantizer, progress=progress)
            # the density policy reads each state with its codes' decoded actions (decoded once here)
            observed = (with_candidate_observations(data.transitions, quantizer) if spec.code_policy != "index"
                        else data.transitions)
            dataset = to_discrete_dataset(observed, relabeled, progress=False)
            action_set = quantizer
            info["quantizer"] = {**meta, "n_codes": spec.quantizer.n_codes,
                                 "state_conditioned": spec.quantizer.state_conditioned,
                                 "reconstruction_mse": relabeled.stats.get("mse"),
                                 "codes_used": relabeled.stats.get("used_codes"),
                                 "perplexity": relabeled.stats.get("perplexity")}
        else:
            dataset = to_continuous_dataset(data.transitions)
            if spec.algo == "ARQ":
                sampler_path, table_dir, meta = ensure_arq(spec, store, data, spaces, progress)
                info["arq"] = meta
                a = spec.arq
                options = {"learning_rate": a.learning_rate, "kth": a.kth, "alpha": a.alpha,
                           "use_awr_policy": a.policy == "awr", "awr_beta": a.alpha,
                           "n_candidates": a.n_samples, "candidate_table": str(table_dir),
                           "sampler_path": str(sampler_path), **options}

        if spec.reward_scaling == "returns":
            scaler = presets.return_range_reward_scaler(data.transitions.episode_returns())
            options["reward_scaler"] = scaler
            info["reward_scaler"] = {"return_min": scaler.return_min, "return_max": scaler.return_max,
                                     "multiplier": scaler.multiplier}
        seed_everything(spec.seed)
        if spec.code_policy != "index":
            if spec.code_policy == "density-actions":
                options = {"likelihood": "actions", **options}
            config = registry.density_policy_config(spec.algo, action_set, hidden=spec.hidden,
                                                    batch_size=spec.batch_size, options=options)
        else:
            config = registry.make_config(spec.algo, env.action_space, hidden=spec.hidden,
                                          batch_size=spec.batch_size, options=options)
        algo = config.create(device=device)

        monitor = None
        if spec.track_penalty:
            from saq_wrappers.integrations.d3rlpy.diagnostics import CQLPenaltyMonitor, PenaltyStates

            monitor = CQLPenaltyMonitor(interval=10**9, n_reference_samples=1024, seed=spec.seed,
                                        states=PenaltyStates(dataset, 256, spec.seed))
        ev = spec.evaluation
        twin_curves: list[list[float]] = [[] for _ in twins]

        def evaluate_as(rule: ExperimentSpec, trained: Any, n_episodes: int, seed: int) -> Any:
            acting = ModeAveraging() if rule.evaluation.mode_averaging else None
            return evaluate_algo(trained, env, action_set, n_episodes=n_episodes, seed=seed, progress=False,
                                 greedy=rule.evaluation.greedy, acting=acting)

        def curve_score(trained: Any) -> float:
            if monitor is not None:
                monitor.record(trained, int(trained.grad_step))
            for twin, curve in zip(twins, twin_curves):
                with global_rng_kept(device):  # the twins' draws (sampled acting) move nothing after them
                    result = evaluate_as(twin, trained, ev.curve_episodes, spec.seed + CURVE_SEED_OFFSET)
                curve.append(score_of(twin, data, result))
            result = evaluate_as(spec, trained, ev.curve_episodes, spec.seed + CURVE_SEED_OFFSET)
            return score_of(spec, data, result)

        say(f"training {spec.label} ({_budget_text(spec)})")
        record = train_with_budget(algo, dataset, time_budget=spec.time_budget, n_steps=spec.steps,
                                   evaluate=curve_score if ev.curve_points else None,
                                   n_evaluations=max(1, ev.curve_points), progress=progress, desc=spec.label)
        twin_finals: list[tuple[Any, float]] = []
        for twin in twins:
            twin_started = time.perf_counter()
            with global_rng_kept(device):
                twin_final = evaluate_as(twin, algo, twin.evaluation.episodes, spec.seed + twin.evaluation.seed_offset)
            twin_finals.append((twin_final, time.perf_counter() - twin_started))
        eval_started = time.perf_counter()
        final = evaluate_as(spec, algo, ev.episodes, spec.seed + ev.seed_offset)
        eval_seconds = time.perf_counter() - eval_started
    finally:
        env.close()
    if model_path is not None:
        algo.save(str(model_path))
    result: dict[str, Any] = {
        "run_id": spec.run_id,
        "fingerprint": spec.fingerprint(),
        "spec": spec.to_dict(),
        "label": spec.label,
        "dataset": spec.dataset.name,
        "algo": spec.algo,
        "seed": spec.seed,
        "metric": spec.dataset.metric,
        "score": score_of(spec, data, final),
        "evaluation": final.to_dict(),
        "eval_seconds": eval_seconds,
        "training": record.to_dict(),
        "penalty": monitor.history if monitor is not None else None,
        "data": {"name": data.name, "transitions": len(data.transitions),
                 "episodes": int(data.transitions.n_episodes),
                 "mean_return": float(data.transitions.episode_returns().mean()),
                 "random_return": data.random_return, "expert_return": data.expert_return,
                 "sha256": data.transitions.content_sha256()},
        **info,
        "wall_seconds": time.perf_counter() - started,
        "finished_at": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(device),
    }
    twin_records = []
    for twin, twin_curve, (twin_final, twin_seconds) in zip(twins, twin_curves, twin_finals):
        curve = [{**point, "score": score} for point, score in zip(record.curve, twin_curve)]
        twin_records.append({**result, "run_id": twin.run_id, "fingerprint": twin.fingerprint(), "spec": twin.to_dict(),
                             "label": twin.label, "score": score_of(twin, data, twin_final),
                             "evaluation": twin_final.to_dict(), "eval_seconds": twin_seconds,
                             "training": {**result["training"], "curve": curve},
                             "shared_training": spec.run_id})
    return ExperimentOutcome(record=_json_ready(result), algo=algo, action_set=action_set, data=data,
                             relabeled=relabeled, dataset=dataset,
                             twin_records=[_json_ready(twin) for twin in twin_records])


def check_twins(spec: ExperimentSpec, twins: Sequence[ExperimentSpec]) -> None:
    """Refuse a twin that would not train exactly as ``spec`` (see :func:`run_experiment`)."""
    for twin in twins:
        if twin.training_spec() != spec.training_spec():
            raise DataError(f"{twin.run_id} trains differently from {spec.run_id}: twins may differ only in "
                            f"how they act (evaluation.greedy, evaluation.mode_averaging)")
    ids = [spec.run_id] + [twin.run_id for twin in twins]
    if len(set(ids)) != len(ids):
        raise DataError(f"twins must act differently from the spec and from each other; run ids {ids}")


def _json_ready(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, default=_json_default))


def _budget_text(spec: ExperimentSpec) -> str:
    parts = []
    if spec.steps is not None:
        parts.append(f"{spec.steps} updates")
    if spec.time_budget is not None:
        parts.append(f"{spec.time_budget:g} s")
    return " or ".join(parts)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _cpu_model() -> Optional[str]:
    """The CPU's model name where the OS tells it (Linux), else ``None``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine(device: Optional[str] = None) -> dict[str, Any]:
    """Where a run ran: host, CPU model and torch's vector capability (e.g. AVX2 or AVX512: one
    run's speed differs several-fold between them), CPU count, torch threads, load average, and
    (given the run's torch ``device``) that device, with the GPU's name on CUDA: timings are
    comparable only between runs on the same kind of device, so a result says which one it was
    timed on."""
    try:
        load: Optional[float] = os.getloadavg()[0]
    except OSError:
        load = None
    info: dict[str, Any] = {"host": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count(),
                            "cpu_model": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "torch_threads": torch.get_num_threads(), "load_1min": load}
    if device is not None:
        info["device"] = str(device)
        if str(device).startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info
