"""One benchmark run, and the artifacts runs share.

Layout of an output folder::

    runs/<run_id>.json            one finished run (spec, fingerprint, scores, curve), atomic
    runs/<run_id>.failed.json     the error of a run that raised (retried next time)
    artifacts/quantizers/*.safetensors (+ .json)   SAQ quantizers, shared by SAQ-X runs
    artifacts/arq/<key>/sampler.safetensors, table/ ARQ behavior model + candidate table

A result file appears only once its run has finished (written to a temporary file and renamed,
:func:`saq_wrappers.io.atomic_output`), so a run interrupted at any point leaves nothing that
could be read as a result; the next invocation runs it again from scratch. Quantizers and
sampler checkpoints are atomic too, and the candidate table resumes chunk by chunk.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import time
import traceback
from pathlib import Path
from typing import Any, Optional

import numpy as np

from saq_wrappers.errors import DataError
from saq_wrappers.io import atomic_output

from .spec import RunSpec

RUNS = "runs"
ARTIFACTS = "artifacts"


# ---------------------------------------------------------------------------------- paths
def result_path(out: Path, spec: RunSpec) -> Path:
    return out / RUNS / f"{spec.run_id}.json"


def failure_path(out: Path, spec: RunSpec) -> Path:
    return out / RUNS / f"{spec.run_id}.failed.json"


def quantizer_key(spec: RunSpec) -> str:
    q = spec.quantizer
    hidden = "x".join(str(h) for h in q.hidden)
    state = "" if q.state_conditioned else "-nostate"
    return f"{spec.dataset.name}__K{q.n_codes}{state}__h{hidden}__n{q.steps}__seed{spec.seed}"


def arq_key(spec: RunSpec) -> str:
    a = spec.arq
    return (f"{spec.dataset.name}__N{a.n_samples}-h{a.hidden}-b{a.n_blocks}-o{a.ode_steps}"
            f"-n{a.fit_steps}-bs{a.fit_batch}-lr{a.fit_lr:g}__seed{spec.seed}")


def artifact_key(spec: RunSpec) -> Optional[str]:
    """The shared artifact a run needs (``None`` for continuous baselines)."""
    if spec.is_saq:
        return "quantizer:" + quantizer_key(spec)
    if spec.algo == "ARQ":
        return "arq:" + arq_key(spec)
    return None


def load_result(out: Path, spec: RunSpec) -> Optional[dict[str, Any]]:
    """The finished result of ``spec`` in ``out``, or ``None`` if it has not finished.

    Raises:
        DataError: ``out`` holds a finished run under the same name made with other settings
            (change ``--out`` or delete that file: results are never silently overwritten).
    """
    path = result_path(out, spec)
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{str(path)!r} is not a readable result ({error}); delete it to rerun the run") from error
    if stored.get("fingerprint") != spec.fingerprint():
        raise DataError(
            f"{str(path)!r} holds run {spec.run_id!r} made with other settings (budget, sizes, data "
            "path...): use another --out folder, or delete the file to rerun it"
        )
    return stored


# ---------------------------------------------------------------------------------- artifacts
def _spaces(data: Any) -> tuple[Any, Any]:
    env = data.make_env()
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def ensure_quantizer(
    spec: RunSpec, out: Path, data: Any, spaces: Optional[tuple[Any, Any]] = None
) -> tuple[Any, dict[str, Any]]:
    """The run's fitted quantizer, loaded from the artifacts or fitted and saved there."""
    from saq_wrappers.vqvae import VQVAEQuantizer

    folder = out / ARTIFACTS / "quantizers"
    folder.mkdir(parents=True, exist_ok=True)
    key = quantizer_key(spec)
    path, meta_path = folder / f"{key}.safetensors", folder / f"{key}.json"
    if path.is_file() and meta_path.is_file():
        return VQVAEQuantizer.load(path), json.loads(meta_path.read_text())
    obs_space, act_space = spaces or _spaces(data)
    q = spec.quantizer
    quantizer = VQVAEQuantizer(obs_space, act_space, n_codes=q.n_codes, hidden_sizes=q.hidden,
                               state_conditioned=q.state_conditioned, seed=spec.seed)
    started = time.perf_counter()
    metrics = quantizer.fit(data.transitions, n_steps=q.steps, progress=False)
    meta = {"fit_seconds": time.perf_counter() - started, "fit_steps": q.steps,
            "n_restarted_codes": metrics.get("n_restarted_codes")}
    quantizer.save(path)
    with atomic_output(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return quantizer, meta


def ensure_arq(
    spec: RunSpec, out: Path, data: Any, spaces: Optional[tuple[Any, Any]] = None
) -> tuple[Path, Path, dict[str, Any]]:
    """ARQ's sampler checkpoint and candidate table (fitted / precomputed when missing)."""
    from saq_wrappers.integrations.d3rlpy.arq import arq_table_states
    from saq_wrappers.score import ScoreSupportSampler, precompute_candidate_table

    folder = out / ARTIFACTS / "arq" / arq_key(spec)
    folder.mkdir(parents=True, exist_ok=True)
    sampler_path, table_dir, meta_path = folder / "sampler.safetensors", folder / "table", folder / "meta.json"
    if meta_path.is_file():
        return sampler_path, table_dir, json.loads(meta_path.read_text())
    meta: dict[str, Any] = {}
    a = spec.arq
    if sampler_path.is_file():
        sampler = ScoreSupportSampler.load(sampler_path)
    else:
        obs_space, act_space = spaces or _spaces(data)
        sampler = ScoreSupportSampler(obs_space, act_space, n_samples=a.n_samples, hidden=a.hidden,
                                      n_blocks=a.n_blocks, steps=a.ode_steps, seed=spec.seed)
        started = time.perf_counter()
        sampler.fit(data.transitions.observations, data.transitions.actions, n_steps=a.fit_steps,
                    batch_size=a.fit_batch, learning_rate=a.fit_lr, progress=False)
        meta["fit_seconds"] = time.perf_counter() - started
        sampler.save(sampler_path)
    states = arq_table_states(data.transitions)
    started = time.perf_counter()
    table = precompute_candidate_table(sampler, states, table_dir, progress=False)
    meta.update(table_seconds=time.perf_counter() - started, table_states=len(states),
                valid_fraction=float(table.valid.mean()))
    with atomic_output(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return sampler_path, table_dir, meta


def prepare_artifact(spec: RunSpec, out: Path) -> str:
    """Build the artifact ``spec`` needs (a pool task of the first phase); returns its key."""
    from .data import load_data

    data = load_data(spec.dataset)
    if spec.is_saq:
        ensure_quantizer(spec, out, data)
    elif spec.algo == "ARQ":
        ensure_arq(spec, out, data)
    return artifact_key(spec) or ""


# ---------------------------------------------------------------------------------- algorithms
def _encoder(hidden: tuple[int, ...]) -> Any:
    from saq_wrappers.integrations.d3rlpy.presets import saq_encoder

    return saq_encoder(hidden)


def _hidden_for(spec: RunSpec) -> tuple[int, ...]:
    """Hidden sizes: the run's, else the SAQ preset's size for the algorithm family (authors':
    512-512 for BC/CQL, 256-256 for IQL/BRAC/TD3+BC/ARQ), so X and SAQ-X stay comparable."""
    if spec.hidden is not None:
        return tuple(spec.hidden)
    return (512, 512) if spec.algo.replace("SAQ-", "") in ("BC", "CQL") else (256, 256)


def build_algo(spec: RunSpec, action_space: Any, arq_paths: Optional[tuple[Path, Path]] = None,
               device: str = "cpu:0") -> Any:
    """The d3rlpy algorithm of ``spec`` (not yet built: ``fit`` builds it from the dataset)."""
    import d3rlpy

    from saq_wrappers.integrations.d3rlpy import presets
    from saq_wrappers.integrations.d3rlpy.quickstart import continuous_baseline

    enc = _encoder(_hidden_for(spec))
    family = spec.algo.replace("SAQ-", "").lower()
    if spec.algo in ("BC", "CQL", "IQL", "TD3+BC"):
        _, config = continuous_baseline("brac" if spec.algo == "TD3+BC" else family, action_space)
        fields = {f.name for f in dataclasses.fields(config)}
        updates: dict[str, Any] = {"batch_size": spec.batch_size}
        for name in ("encoder_factory", "actor_encoder_factory", "critic_encoder_factory", "value_encoder_factory"):
            if name in fields:
                updates[name] = enc
        return dataclasses.replace(config, **updates).create(device=device)
    if spec.algo == "SAQ-BC":
        return presets.saq_bc_config(encoder_factory=enc, batch_size=spec.batch_size).create(device=device)
    if spec.algo == "SAQ-CQL":
        return presets.saq_cql_config(encoder_factory=enc, batch_size=spec.batch_size).create(device=device)
    if spec.algo == "SAQ-IQL":
        return presets.saq_iql_config(critic_encoder_factory=enc, value_encoder_factory=enc,
                                      behavior_encoder_factory=enc, batch_size=spec.batch_size).create(device=device)
    if spec.algo == "SAQ-BRAC":
        # a pi_beta phase of 20% of a short run (the preset's 10k steps for long ones)
        return presets.saq_brac_config(actor_encoder_factory=enc, critic_encoder_factory=enc,
                                       behavior_encoder_factory=enc, batch_size=spec.batch_size,
                                       behavior_pretrain_steps=min(10_000, max(1, spec.steps // 5))
                                       ).create(device=device)
    if spec.algo == "ARQ":
        from saq_wrappers.integrations.d3rlpy.arq import ARQConfig

        assert arq_paths is not None
        a = spec.arq
        return ARQConfig(
            batch_size=spec.batch_size, learning_rate=a.learning_rate, kth=a.kth, alpha=a.alpha,
            n_candidates=a.n_samples, critic_encoder_factory=enc, actor_encoder_factory=enc,
            candidate_table=str(arq_paths[1]), sampler_path=str(arq_paths[0]),
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        ).create(device=device)
    raise DataError(f"unknown algorithm {spec.algo!r}")


# ---------------------------------------------------------------------------------- one run
def _score(spec: RunSpec, data: Any, result: Any) -> float:
    """Success rate in % (robomimic-style), else the normalized score, else the mean return."""
    from saq_wrappers.evaluation import normalized_score

    if spec.dataset.metric == "success":
        return 100.0 * result.success_rate
    if data.random_return is not None and data.expert_return is not None:
        return normalized_score(result.mean_return, data.random_return, data.expert_return)
    return result.mean_return


def execute_run(spec: RunSpec, out: Path, device: str = "cpu:0") -> dict[str, Any]:
    """Train and evaluate ``spec``; write ``runs/<run_id>.json`` atomically and return it."""
    import d3rlpy
    import torch

    from saq_wrappers.integrations.d3rlpy import evaluate_algo, to_continuous_dataset, to_discrete_dataset
    from saq_wrappers.integrations.d3rlpy.training import train_with_budget
    from saq_wrappers.transitions import relabel

    from .data import load_data

    started = time.perf_counter()
    data = load_data(spec.dataset)
    env = data.make_env()
    spaces = (env.observation_space, env.action_space)
    info: dict[str, Any] = {}
    action_set = None
    arq_paths = None
    if spec.is_saq:
        quantizer, meta = ensure_quantizer(spec, out, data, spaces)
        relabeled = relabel(data.transitions, quantizer, progress=False)
        dataset = to_discrete_dataset(data.transitions, relabeled, progress=False)
        action_set = quantizer
        info["quantizer"] = {**meta, "n_codes": spec.quantizer.n_codes,
                             "state_conditioned": spec.quantizer.state_conditioned,
                             "reconstruction_mse": relabeled.stats.get("mse"),
                             "codes_used": relabeled.stats.get("used_codes"),
                             "perplexity": relabeled.stats.get("perplexity")}
    else:
        dataset = to_continuous_dataset(data.transitions)
        if spec.algo == "ARQ":
            sampler_path, table_dir, meta = ensure_arq(spec, out, data, spaces)
            arq_paths = (sampler_path, table_dir)
            info["arq"] = meta

    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed)
    d3rlpy.seed(spec.seed)
    algo = build_algo(spec, env.action_space, arq_paths, device)

    monitor = None
    if spec.track_penalty:
        if spec.algo not in ("CQL", "SAQ-CQL"):
            raise DataError(f"track_penalty is for CQL and SAQ-CQL, not {spec.algo}")
        from saq_wrappers.integrations.d3rlpy.diagnostics import CQLPenaltyMonitor, PenaltyStates

        monitor = CQLPenaltyMonitor(interval=10**9, n_reference_samples=1024, seed=spec.seed,
                                    states=PenaltyStates(dataset, 256, spec.seed))

    def curve_score(trained: Any) -> float:
        if monitor is not None:
            monitor.record(trained, int(trained.grad_step))
        res = evaluate_algo(trained, env, action_set, n_episodes=spec.curve_episodes,
                            seed=spec.seed + 10_000, progress=False)
        return _score(spec, data, res)

    record = train_with_budget(algo, dataset, time_budget=spec.time_budget, n_steps=spec.steps,
                               evaluate=curve_score, n_evaluations=spec.curve_points,
                               progress=False, desc=spec.run_id)
    eval_started = time.perf_counter()
    final = evaluate_algo(algo, env, action_set, n_episodes=spec.eval_episodes, seed=spec.seed, progress=False)
    eval_seconds = time.perf_counter() - eval_started
    env.close()
    result = {
        "run_id": spec.run_id,
        "fingerprint": spec.fingerprint(),
        "spec": spec.to_dict(),
        "label": spec.label,
        "dataset": spec.dataset.name,
        "algo": spec.algo,
        "seed": spec.seed,
        "metric": spec.dataset.metric,
        "score": _score(spec, data, final),
        "evaluation": final.to_dict(),
        "eval_seconds": eval_seconds,
        "training": record.to_dict(),
        "penalty": monitor.history if monitor is not None else None,
        "data": {"transitions": len(data.transitions), "episodes": int(data.transitions.n_episodes),
                 "mean_return": float(data.transitions.episode_returns().mean()),
                 "random_return": data.random_return, "expert_return": data.expert_return},
        **info,
        "wall_seconds": time.perf_counter() - started,
        "finished_at": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
    }
    path = result_path(out, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=_json_default))
    failure = failure_path(out, spec)
    if failure.exists():
        failure.unlink()
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def machine() -> dict[str, Any]:
    """Where a run ran: host, CPU count, torch threads, load average."""
    import torch

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"host": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_1min": load}


# ---------------------------------------------------------------------------------- task entry
def init_worker() -> None:
    """Process-pool initializer: one torch thread per worker (2-core machines run 2 workers)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging

    import d3rlpy  # noqa: F401 - configures structlog on import; the filter below goes on top
    import structlog
    import torch

    torch.set_num_threads(1)
    # d3rlpy logs every epoch at info level through structlog: keep warnings only
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def execute_task(kind: str, spec_data: dict[str, Any], out: str, device: str = "cpu:0") -> dict[str, Any]:
    """A pool / Ray task: ``kind`` is ``artifact`` or ``run``. Never raises: an error is
    returned (and, for a run, written to ``runs/<run_id>.failed.json``) so the grid goes on."""
    init_worker()
    spec = RunSpec.from_dict(spec_data)
    folder = Path(out)
    try:
        if kind == "artifact":
            return {"kind": kind, "ok": True, "key": prepare_artifact(spec, folder), "run_id": spec.run_id}
        result = execute_run(spec, folder, device)
        return {"kind": kind, "ok": True, "run_id": spec.run_id, "score": result["score"],
                "seconds": result["wall_seconds"]}
    except Exception as error:  # noqa: BLE001 - reported per run, the grid continues
        text = "".join(traceback.format_exception(error))
        if kind == "run":
            path = failure_path(folder, spec)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(path) as tmp:
                tmp.write_text(json.dumps({"run_id": spec.run_id, "error": repr(error), "traceback": text}, indent=1))
        return {"kind": kind, "ok": False, "run_id": spec.run_id, "error": repr(error), "traceback": text}
