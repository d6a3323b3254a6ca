"""The order a grid's tasks start in: seed by seed, each run as soon as its artifact is built,
never held back by the rest of its seed. Checked on a simulated clock (no task runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness.backends import Executor, Job, SerialExecutor, grid_jobs, next_ready, plan
from benchmarks.harness.spec import RunSpec, build_suite


class SimulatedPool(Executor):
    """Starts nothing: a task 'finishes' its duration after it started, on a simulated clock."""

    def __init__(self, workers: int, minutes: dict[tuple[str, str, int], float]) -> None:
        super().__init__(workers)
        self.minutes, self.clock = minutes, 0.0
        self.started: dict[tuple[str, str, int], float] = {}

    def submit(self, task: Any) -> Any:
        spec = RunSpec.from_dict(task[1])
        name = (task[0], spec.algo, spec.seed)
        self.started[name] = self.clock
        return name, self.clock + self.minutes[name]

    def wait_any(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        first = min(handles, key=lambda handle: handle[1])
        self.clock = first[1]
        kind = first[0][0]
        reply = ({"kind": kind, "ok": True, "key": "k", "run_id": "r"} if kind == "artifact"
                 else {"kind": kind, "ok": True, "run_id": "r", "runs": []})
        return [(first, reply)]


def kitchen_leftovers(tmp_path: Path) -> tuple[list[RunSpec], list[RunSpec]]:
    """What was left of a grid: CQL's seed 2 and ARQ's seeds 1 and 2 (each ARQ run needs its
    seed's candidate table, an artifact)."""
    runs = [r for r in build_suite("tiny", Path("."), algos=["CQL", "ARQ"], seeds=[1, 2])
            if (r.algo, r.seed) != ("CQL", 1)]
    _, todo, artifact_runs = plan(runs, tmp_path)
    return todo, artifact_runs


def test_jobs_go_seed_by_seed_with_each_artifact_before_the_run_that_needs_it(tmp_path: Path) -> None:
    todo, artifact_runs = kitchen_leftovers(tmp_path)
    jobs = grid_jobs(todo, artifact_runs, tmp_path, "cpu:0")
    order = [(job.task[0], RunSpec.from_dict(job.task[1]).algo, RunSpec.from_dict(job.task[1]).seed) for job in jobs]
    assert order == [("artifact", "ARQ", 1), ("run", "ARQ", 1),
                     ("artifact", "ARQ", 2), ("run", "CQL", 2), ("run", "ARQ", 2)]
    provides = {job.provides for job in jobs if job.provides}
    assert len(provides) == 2
    assert [job.needs in provides for job in jobs if job.task[0] == "run"] == [True, False, True]


def test_a_free_worker_starts_the_next_ready_task_instead_of_waiting_for_the_seed_to_end(tmp_path: Path) -> None:
    """The kitchen grid's leftovers (minutes measured here): ARQ's tables 17 minutes each, an ARQ
    run 61, CQL 107. Two workers build both tables at once and start CQL as soon as one is free:
    139 minutes in all, where finishing each seed before the next took 185."""
    todo, artifact_runs = kitchen_leftovers(tmp_path)
    minutes = {("artifact", "ARQ", 1): 17.0, ("artifact", "ARQ", 2): 17.0, ("run", "ARQ", 1): 61.0,
               ("run", "ARQ", 2): 61.0, ("run", "CQL", 2): 107.0}
    pool = SimulatedPool(2, minutes)
    replies = list(pool.run(grid_jobs(todo, artifact_runs, tmp_path, "cpu:0")))
    assert len(replies) == 5
    assert pool.started == {("artifact", "ARQ", 1): 0.0, ("artifact", "ARQ", 2): 0.0, ("run", "ARQ", 1): 17.0,
                            ("run", "CQL", 2): 17.0, ("run", "ARQ", 2): 78.0}
    assert pool.clock == 139.0


def test_a_run_waits_for_its_artifact_and_a_stop_starts_nothing_new() -> None:
    artifact = Job(("artifact",), provides="q")
    run, other = Job(("run", 1), needs="q"), Job(("run", 2))
    assert next_ready([run, other], set()) is other
    assert next_ready([run, other], {"q"}) is run
    assert next_ready([run], set()) is None

    class Recording(Executor):
        def __init__(self) -> None:
            super().__init__(1)
            self.submitted: list[Any] = []

        def submit(self, task: Any) -> Any:
            self.submitted.append(task)
            return len(self.submitted)

        def wait_any(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
            return [(handles[0], {"kind": "run"})]

    pool = Recording()
    for _ in pool.run([artifact, run, other]):
        pool.cancel_pending()  # a stop after the first reply: the running job finished, no other starts
    assert pool.submitted == [("artifact",)]
    with pytest.raises(RuntimeError, match="no job builds"):
        list(Recording().run([Job(("run",), needs="never")]))


def test_the_serial_executor_runs_one_task_at_a_time_whatever_the_pool_size() -> None:
    assert SerialExecutor(4).workers == 1
