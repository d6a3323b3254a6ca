"""Running a grid of runs: a local spawn process pool (default), in-process, or Ray tasks.

The grid's tasks are ordered seed by seed, each seed's shared artifacts first (one task per
quantizer / ARQ table, so two SAQ runs on the same data never fit the same quantizer twice), then
its runs, longest first. Workers take the first task in that order that can start: a run waits
only for the artifact it needs, never for the rest of its seed, so no worker idles at a seed's end
while a later task could run, and an interrupted grid holds the early seeds' whole tables first.
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
from typing import Any, Callable, Iterator, Optional

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


@dataclasses.dataclass(frozen=True)
class Job:
    """A task of the grid and its one dependency: the artifact key it builds (``provides``) or
    the one it must wait for (``needs``: a key some earlier job provides)."""

    task: Task
    provides: Optional[str] = None
    needs: Optional[str] = None


def next_ready(waiting: list[Job], built: set[str]) -> Optional[Job]:
    """The first waiting job that can start: it needs no artifact, or one already built (or
    tried: a run whose artifact task failed still starts, and builds or fails on its own)."""
    return next((job for job in waiting if job.needs is None or job.needs in built), None)


class Executor:
    """Runs jobs and yields their replies as they complete; a context manager.

    At most ``workers`` jobs run at once, started in the list's order as workers free up, each as
    soon as its artifact is built (:func:`next_ready`); nothing is submitted ahead, so
    :meth:`cancel_pending` keeps every job not yet started from starting. Subclasses say how a
    task is started (:meth:`submit`) and how to wait for one (:meth:`wait_any`)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.cancelled = False

    def cancel_pending(self) -> None:
        self.cancelled = True

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def submit(self, task: Task) -> Any:
        """Start ``task``; return a handle for :meth:`wait_any`."""
        raise NotImplementedError

    def wait_any(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        """Wait until at least one of ``handles`` is done; return each done one with its reply."""
        raise NotImplementedError

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        waiting = list(jobs)
        running: dict[Any, Job] = {}
        built: set[str] = set()
        while running or (waiting and not self.cancelled):
            while not self.cancelled and len(running) < self.workers:
                job = next_ready(waiting, built)
                if job is None:
                    break
                waiting.remove(job)
                running[self.submit(job.task)] = job
            if not running:
                raise RuntimeError(f"{len(waiting)} job(s) wait for an artifact no job builds")
            for handle, reply in self.wait_any(list(running)):
                job = running.pop(handle)
                if job.provides is not None:
                    built.add(job.provides)
                yield reply


class SerialExecutor(Executor):
    """In this process, one task after the other (debugging, tests)."""

    def __init__(self, workers: int) -> None:
        super().__init__(1)  # one at a time, whatever the pool size asked for

    def __enter__(self) -> "SerialExecutor":
        init_worker()
        return self

    def submit(self, task: Task) -> Any:
        return _Done(execute_task(*task))

    def wait_any(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        return [(handle, handle.reply) for handle in handles]


class _Done:
    """The handle of a task the serial executor has already run."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply


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

    def submit(self, task: Task) -> Any:
        return self.pool.submit(execute_task, *task)

    def wait_any(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return [(future, future.result()) for future in done]


class RayExecutor(Executor):
    """Ray tasks, one CPU each, at most ``workers`` at once. Starts a local Ray
    (``num_cpus=workers``) unless one is already initialized (call ``ray.init(address=...)``
    first for a cluster, whose workers must be able to import ``benchmarks`` and
    ``saq_wrappers``: same checkout and environment)."""

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

    def submit(self, task: Task) -> Any:
        return self.remote.remote(*task)

    def wait_any(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        done, _ = self.ray.wait(handles, num_returns=1)
        return [(ref, self.ray.get(ref)) for ref in done]


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


def grid_jobs(todo: list[RunSpec], artifact_runs: list[RunSpec], out: Path, device: str) -> list[Job]:
    """The grid's jobs in the order they start: seed by seed, each seed's artifacts not built yet
    (``artifact_runs``: one run per missing artifact), then its runs in ``todo``'s order
    (longest first), each run (with its twins, :func:`shared_trainings`) needing the artifact a
    job of the grid builds for it."""
    missing = {artifact_key(r): r for r in artifact_runs}
    jobs: list[Job] = []
    for seed in sorted({r.seed for r in todo}):
        group = [r for r in todo if r.seed == seed]
        for key in dict.fromkeys(artifact_key(r) for r in group):
            if key in missing:
                jobs.append(Job(("artifact", missing.pop(key).to_dict(), str(out), device, []), provides=key))
        for run, twins in shared_trainings(group):
            key = artifact_key(run)
            needs = key if any(job.provides == key for job in jobs) else None
            jobs.append(Job(("run", run.to_dict(), str(out), device, [t.to_dict() for t in twins]), needs=needs))
    return jobs


def _execute(executor: Executor, todo: list[RunSpec], artifact_runs: list[RunSpec], out: Path, device: str,
             summary: GridSummary, started: float, log: Callable[[str], None], ledger: GridLedger) -> None:
    def stop_requested() -> bool:
        if not summary.stopped and (out / STOP_FILE).exists():
            summary.stopped = True
            log(f"  {out / STOP_FILE} found: the running tasks finish, no new task starts")
            executor.cancel_pending()
        return summary.stopped

    done = 0
    for reply in executor.run(grid_jobs(todo, artifact_runs, out, device)):
        elapsed = time.perf_counter() - started
        if reply["kind"] == "artifact":
            ledger.tick("artifact", reply["ok"])
            if reply["ok"]:
                log(f"  artifact ready: {reply['key']}")
            else:
                log(f"  artifact FAILED ({reply['run_id']}): {reply['error']}")
        elif reply["ok"]:
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
        stop_requested()  # before the executor resumes and starts the next job


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
        f"({len(artifact_runs)} shared artifacts, each built before the runs that need it) on backend {backend!r} with {workers} worker(s)")
    if todo:
        ledger = GridLedger(out, backend, workers, len(todo), machine())
        with EXECUTORS[backend](workers) as executor:
            _execute(executor, todo, artifact_runs, out, device, summary, started, log, ledger)
        ledger.close(summary.stopped)
    summary.seconds = time.perf_counter() - started
    return summary
