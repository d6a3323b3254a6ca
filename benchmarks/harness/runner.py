"""One benchmark run, and the artifacts runs share.

Layout of an output folder::

    runs/<run_id>.json            one finished run (spec, fingerprint, scores, curve), atomic
    runs/<run_id>.failed.json     the error of a run that raised (retried next time)
    artifacts/quantizers/*.safetensors (+ .json)   SAQ quantizers, shared by SAQ-X runs
    artifacts/arq/<key>/sampler.safetensors, table/ ARQ behavior model + candidate table
    grid_time.json                the wall-clock time of each invocation (:mod:`.ledger`)

A result file appears only once its run has finished (written to a temporary file and renamed,
:func:`saq_wrappers.io.atomic_output`), so a run interrupted at any point leaves nothing that
could be read as a result; the next invocation runs it again from scratch. Quantizers and
sampler checkpoints are atomic too, and the candidate table resumes chunk by chunk. The run
itself is :func:`saq_wrappers.app.pipeline.run_experiment`, the same code as ``saq quickstart``.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

from saq_wrappers.app.pipeline import ArtifactStore, machine
from saq_wrappers.errors import DataError
from saq_wrappers.io import atomic_output

from .spec import RunSpec

__all__ = ["ARTIFACTS", "RUNS", "artifact_key", "execute_run", "execute_task", "failure_path",
           "init_worker", "load_result", "machine", "prepare_artifact", "result_path", "reuse_results"]

RUNS = "runs"
ARTIFACTS = "artifacts"


# ---------------------------------------------------------------------------------- paths
def result_path(out: Path, spec: RunSpec) -> Path:
    return out / RUNS / f"{spec.run_id}.json"


def failure_path(out: Path, spec: RunSpec) -> Path:
    return out / RUNS / f"{spec.run_id}.failed.json"


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


def reuse_results(runs: Sequence[RunSpec], out: Path, source: Path) -> list[str]:
    """Copy into ``out`` every run of ``runs`` unfinished there and finished in ``source``, another
    results folder, with the same run id and fingerprint (the same run: same data, settings and
    seed), so a suite that shares runs with another (the noise study's 10-episode datasets are the
    standard suite's) does not train them again. A run ``source`` holds with other settings is
    left alone. Returns the run ids copied."""
    copied = []
    for run in runs:
        if load_result(out, run) is not None:
            continue
        try:
            found = load_result(source, run)
        except DataError:  # the same name, another run
            continue
        if found is not None:
            target = result_path(out, run)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(target) as tmp:
                tmp.write_bytes(result_path(source, run).read_bytes())
            copied.append(run.run_id)
    return copied


# ---------------------------------------------------------------------------------- runs
def artifact_key(spec: RunSpec) -> Optional[str]:
    """The shared action set a run needs (``None`` for continuous baselines)."""
    store = ArtifactStore(Path(ARTIFACTS))
    if spec.is_saq:
        return "quantizer:" + store.quantizer_path(spec).stem
    if spec.algo == "ARQ":
        return "arq:" + store.arq_folder(spec).name
    return None


def prepare_artifact(spec: RunSpec, out: Path) -> str:
    """Build the action set ``spec`` needs (a pool task of the first phase); returns its key."""
    from saq_wrappers.app.pipeline import prepare_artifact as build

    build(spec, ArtifactStore(out / ARTIFACTS))
    return artifact_key(spec) or ""


def execute_run(spec: RunSpec, out: Path, device: str = "cpu:0", twins: Sequence[RunSpec] = ()) -> list[dict[str, Any]]:
    """Run ``spec`` (and its ``twins``, on the same training) through the pipeline; write each
    ``runs/<run_id>.json`` atomically and return the records, ``spec``'s first."""
    from saq_wrappers.app.pipeline import run_experiment

    outcome = run_experiment(spec, ArtifactStore(out / ARTIFACTS), device=device, twins=twins)
    records = [outcome.record, *outcome.twin_records]
    for run, record in zip([spec, *twins], records):
        path = result_path(out, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
        failure_path(out, run).unlink(missing_ok=True)
    return records


# ---------------------------------------------------------------------------------- task entry
def init_worker() -> None:
    """Process-pool initializer: one torch thread per worker (2-core machines run 2 workers)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging

    import structlog
    import torch

    import saq_wrappers.integrations.d3rlpy  # noqa: F401 - d3rlpy configures structlog on import

    torch.set_num_threads(1)
    # a worker may rebuild an Adroit env: register gymnasium-robotics' envs where it is installed
    from .real_suites import register_installed_robotics_envs

    register_installed_robotics_envs()
    # d3rlpy logs every epoch at info level through structlog: keep warnings only
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def execute_task(kind: str, spec_data: dict[str, Any], out: str, device: str = "cpu:0",
                 twins_data: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A pool / Ray task: ``kind`` is ``artifact`` or ``run`` (with the runs ``twins_data`` names
    on the same training, :func:`execute_run`). Never raises: an error is returned (and, for a
    run, written to each ``runs/<run_id>.failed.json``) so the grid goes on.

    The reply names every run it finished in ``runs``: ``{"run_id", "score", "seconds"}`` each."""
    init_worker()
    spec = RunSpec.from_dict(spec_data)
    twins = [RunSpec.from_dict(data) for data in twins_data]
    folder = Path(out)
    try:
        if kind == "artifact":
            return {"kind": kind, "ok": True, "key": prepare_artifact(spec, folder), "run_id": spec.run_id}
        records = execute_run(spec, folder, device, twins)
        return {"kind": kind, "ok": True, "run_id": spec.run_id,
                "runs": [{"run_id": r["run_id"], "score": r["score"], "seconds": r["wall_seconds"]} for r in records]}
    except Exception as error:  # noqa: BLE001 - reported per run, the grid continues
        text = "".join(traceback.format_exception(error))
        if kind == "run":
            for run in [spec, *twins]:
                path = failure_path(folder, run)
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_output(path) as tmp:
                    tmp.write_text(json.dumps({"run_id": run.run_id, "error": repr(error), "traceback": text}, indent=1))
        return {"kind": kind, "ok": False, "run_id": spec.run_id, "run_ids": [r.run_id for r in [spec, *twins]],
                "error": repr(error), "traceback": text}
