"""Running a grid of runs: a local spawn process pool (default), in-process, or Ray tasks.

The grid runs seed by seed (so an interrupted grid already holds whole tables), each seed in
two phases: first the shared artifacts its unfinished runs need (one task per quantizer / ARQ
table, so two SAQ runs on the same data never fit the same quantizer twice), then the runs.
Unfinished runs that differ only in how the trained policy acts (a run and its mode-averaged
twin, say) are one task: one training, each run evaluated on it (:func:`shared_trainings`).
Finished runs (a result file with the same fingerprint) are skipped; a run whose task fails is
reported and retried on the next invocation. Each invocation that has work to do
records its wall-clock time in ``<out>/grid_time.json`` (:mod:`.ledger`).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from saq_wrappers.errors import DataError

from .ledger import GridLedger
from .runner import RUNS, ARTIFACTS, artifact_key, execute_task, init_worker, load_result, machine
from .spec import RunSpec

BACKENDS = ("local", "serial", "ray")

Task = tuple[str, dict[str, Any], str, str, list[dict[str, Any]]]

#: Rough seconds per update relative to BC on one CPU thread (measured here): the
#: order runs are started in.
COST = {"CQL": 25.0, "TD3+BC": 4.0, "ARQ": 6.0, "IQL": 4.0, "SAQ-IQL": 4.0, "SAQ-BRAC": 4.0,
        "SAQ-CQL": 2.5, "BC": 1.0, "SAQ-BC": 1.0}


@dataclasses.dataclass
class GridSummary:
    """What :func:`run_grid` did: run ids executed, skipped (already finished) and failed."""

    executed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    stopped: bool = False


#: A file of this name in the output folder asks a running grid to stop gracefully: tasks already
#: running finish and are saved, none is started after them (``touch <out>/STOP``).
STOP_FILE = "STOP"


def _clean_stray(out: Path) -> int:
    """Remove temporary files an interrupted write left (never read, never renamed)."""
    removed = 0
    for folder in (out / RUNS, out / ARTIFACTS / "quantizers"):
        if folder.is_dir():
            for stray in folder.glob(".*.tmp"):
                stray.unlink()
                removed += 1
    return removed


class Executor:
    """Runs tasks and yields their replies as they complete; a context manager.
    :meth:`cancel_pending` keeps every task not yet started from starting."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.cancelled = False

    def cancel_pending(self) -> None:
        self.cancelled = True

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def run(self, tasks: list[Task]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError


class SerialExecutor(Executor):
    """In this process, one task after the other (debugging, tests)."""

    def run(self, tasks: list[Task]) -> Iterator[dict[str, Any]]:
        init_worker()
        for task in tasks:
            if self.cancelled:
                return
            yield execute_task(*task)


class LocalExecutor(Executor):
    """``concurrent.futures`` process pool with the spawn start method (fork is unsafe with
    torch's threads), one torch thread per worker; the pool lives for the whole grid.

    Tasks are submitted only as workers free up, never ahead: a process pool moves submitted
    tasks into its call queue (``workers`` + 1 of them) where they can no longer be cancelled, so
    submitting the whole grid at once let a stop request still start up to ``workers`` + 1 runs.
    """

    def __enter__(self) -> "LocalExecutor":
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the spawned workers
        context = multiprocessing.get_context("spawn")
        self.pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=init_worker)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def run(self, tasks: list[Task]) -> Iterator[dict[str, Any]]:
        waiting = list(tasks)
        running: set[cf.Future] = set()
        while running or (waiting and not self.cancelled):
            while waiting and not self.cancelled and len(running) < self.workers:
                running.add(self.pool.submit(execute_task, *waiting.pop(0)))
            done, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                yield future.result()


class RayExecutor(Executor):
    """Ray tasks, one CPU each. Starts a local Ray (``num_cpus=workers``) unless one is already
    initialized (call ``ray.init(address=...)`` first for a cluster, whose workers must be able
    to import ``benchmarks`` and ``saq_wrappers``: same checkout and environment)."""

    def __enter__(self) -> "RayExecutor":
        try:
            import ray
        except ImportError as error:
            raise DataError("--backend ray needs Ray: pip install 'ray>=2.9' -c constraints.txt") from error
        self.ray = ray
        if not ray.is_initialized():
            root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
            ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
        self.remote = ray.remote(num_cpus=1, max_retries=0)(execute_task)
        return self

    def cancel_pending(self) -> None:
        super().cancel_pending()
        for ref in getattr(self, "pending", []):
            self.ray.cancel(ref)  # a task not yet started never starts; a running one finishes

    def run(self, tasks: list[Task]) -> Iterator[dict[str, Any]]:
        self.pending = [self.remote.remote(*task) for task in tasks]
        while self.pending:
            done, self.pending = self.ray.wait(self.pending, num_returns=1)
            for ref in done:
                try:
                    yield self.ray.get(ref)
                except self.ray.exceptions.TaskCancelledError:
                    continue


EXECUTORS: dict[str, type[Executor]] = {"serial": SerialExecutor, "local": LocalExecutor, "ray": RayExecutor}


def plan(runs: list[RunSpec], out: Path) -> tuple[list[RunSpec], list[RunSpec], list[RunSpec]]:
    """(finished, to run, artifact tasks: one representative run per missing shared artifact)."""
    ids = [r.run_id for r in runs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DataError(f"the grid names a run twice: {duplicates}")
    finished = [r for r in runs if load_result(out, r) is not None]
    # longest first, so a pool never ends waiting on one slow run started last
    todo = sorted((r for r in runs if r not in finished), key=lambda r: -r.steps * COST.get(r.algo, 1.0))
    artifacts: dict[str, RunSpec] = {}
    for run in sorted(todo, key=lambda r: r.algo != "ARQ"):  # ARQ tables are the slow artifacts
        key = artifact_key(run)
        if key is not None and key not in artifacts:
            artifacts[key] = run
    return finished, todo, list(artifacts.values())


def shared_trainings(todo: list[RunSpec]) -> list[tuple[RunSpec, list[RunSpec]]]:
    """``todo`` grouped by training (:meth:`RunSpec.training_spec`), in ``todo``'s order: each
    group's run that does not average modes trains (its record is then exactly what it would be
    alone), the others are its twins."""
    groups: dict[str, list[RunSpec]] = {}
    for run in todo:
        groups.setdefault(run.training_spec().fingerprint(), []).append(run)
    out = []
    for group in groups.values():
        trainer = min(group, key=lambda r: r.evaluation.mode_averaging)  # the first plain one
        out.append((trainer, [r for r in group if r is not trainer]))
    return out


def _execute(executor: Executor, todo: list[RunSpec], artifact_runs: list[RunSpec], out: Path, device: str,
             summary: GridSummary, started: float, log: Callable[[str], None], ledger: GridLedger) -> None:
    def stop_requested() -> bool:
        if not summary.stopped and (out / STOP_FILE).exists():
            summary.stopped = True
            log(f"  {out / STOP_FILE} found: the running tasks finish, no new task starts")
            executor.cancel_pending()
        return summary.stopped

    if artifact_runs:
        for reply in executor.run([("artifact", r.to_dict(), str(out), device, []) for r in artifact_runs]):
            stop_requested()
            ledger.tick("artifact", reply["ok"])
            if reply["ok"]:
                log(f"  artifact ready: {reply['key']}")
            else:
                log(f"  artifact FAILED ({reply['run_id']}): {reply['error']}")
    if stop_requested():
        return
    tasks = [("run", r.to_dict(), str(out), device, [t.to_dict() for t in twins]) for r, twins in shared_trainings(todo)]
    done = 0
    for reply in executor.run(tasks):
        elapsed = time.perf_counter() - started
        if reply["ok"]:
            for run in reply["runs"]:
                done += 1
                ledger.tick("run", True)
                summary.executed.append(run["run_id"])
                log(f"  [{done}/{len(todo)}] {run['run_id']}: score {run['score']:.1f} "
                    f"({run['seconds']:.0f} s; {elapsed / 60:.1f} min elapsed)")
        else:
            for run_id in reply["run_ids"]:
                done += 1
                ledger.tick("run", False)
                summary.failed[run_id] = reply["error"]
                log(f"  [{done}/{len(todo)}] {run_id}: FAILED {reply['error']}")
            print(reply.get("traceback", ""), file=sys.stderr)
        stop_requested()  # before the executor resumes and starts the next run


def run_grid(
    runs: list[RunSpec],
    out: Path,
    backend: str = "local",
    workers: int = 2,
    log: Callable[[str], None] = print,
    device: str = "cpu:0",
) -> GridSummary:
    """Run every unfinished run of ``runs`` into ``out`` on ``backend``; see the module docstring.

    ``device`` is the torch device of the d3rlpy algorithms (``cuda:0`` on a GPU machine); it is
    not part of a run's identity.
    """
    if backend not in BACKENDS:
        raise DataError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    out = Path(out).resolve()
    (out / RUNS).mkdir(parents=True, exist_ok=True)
    _clean_stray(out)
    (out / STOP_FILE).unlink(missing_ok=True)  # a stop asked of an earlier invocation
    started = time.perf_counter()
    finished, todo, artifact_runs = plan(runs, out)
    summary = GridSummary(skipped=[r.run_id for r in finished])
    log(f"{len(runs)} runs: {len(finished)} finished, {len(todo)} to run "
        f"({len(artifact_runs)} shared artifacts, each built before its seed's runs) on backend {backend!r} with {workers} worker(s)")
    if todo:
        ledger = GridLedger(out, backend, workers, len(todo), machine())
        with EXECUTORS[backend](workers) as executor:
            # seed by seed: a grid interrupted after seed 0 already holds a whole table
            for seed in sorted({r.seed for r in todo}):
                if summary.stopped:
                    break
                group = [r for r in todo if r.seed == seed]
                keys = {artifact_key(r) for r in group}
                needed = [r for r in artifact_runs if artifact_key(r) in keys]
                _execute(executor, group, needed, out, device, summary, started, log, ledger)
        ledger.close(summary.stopped)
    summary.seconds = time.perf_counter() - started
    return summary
