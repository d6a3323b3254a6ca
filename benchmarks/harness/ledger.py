"""How long a grid took: one entry per invocation of the harness on an output folder.

A suite that outlives a session is run as several invocations of one command (each resumes
where the last stopped), so "how long did the suite take" is the sum of their wall-clock times,
not the sum of the runs' own seconds (two workers overlap; building the shared artifacts and the
tail of a phase, when one worker waits for the other, are not in any run's record). Each
invocation rewrites its entry in ``<out>/grid_time.json`` when it starts and after every task it
sees finish, so an invocation killed with its session still counts up to its last finished task.
An invocation that finds nothing to run writes no entry.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any, Optional

from saq_wrappers.errors import DataError
from saq_wrappers.io import atomic_output

__all__ = ["LEDGER", "GridLedger", "read_ledger", "summarize_ledger"]

LEDGER = "grid_time.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_ledger(out: Path) -> list[dict[str, Any]]:
    """The invocations recorded in ``out`` (oldest first); ``[]`` if none were."""
    path = Path(out) / LEDGER
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{str(path)!r} is not a readable grid time ledger ({error}); expected a JSON list") from error
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "seconds" in e for e in entries):
        raise DataError(f"{str(path)!r} is not a grid time ledger: expected a JSON list of invocations with 'seconds'")
    return entries


class GridLedger:
    """The entry of one invocation: :meth:`tick` after each finished task, :meth:`close` at the end."""

    def __init__(self, out: Path, backend: str, workers: int, to_run: int, machine: dict[str, Any]) -> None:
        self.path = Path(out) / LEDGER
        self.entries = read_ledger(Path(out))
        self.started = time.perf_counter()
        self.entry: dict[str, Any] = {
            "started": _now(), "ended": None, "seconds": 0.0, "backend": backend, "workers": workers,
            "to_run": to_run, "runs": 0, "artifacts": 0, "failed": 0, "stopped": False,
            "cpu_model": machine.get("cpu_model"), "cpu_capability": machine.get("cpu_capability"),
            "cpus": machine.get("cpus"), "host": machine.get("host"),
        }
        self.entries.append(self.entry)
        self._write()

    def tick(self, kind: str, ok: bool) -> None:
        """Count one finished task (``kind`` is ``run`` or ``artifact``) and save the time so far."""
        if not ok:
            self.entry["failed"] += 1
        elif kind == "run":
            self.entry["runs"] += 1
        else:
            self.entry["artifacts"] += 1
        self._write()

    def close(self, stopped: bool) -> None:
        self.entry["stopped"] = stopped
        self._write()

    def _write(self) -> None:
        self.entry["seconds"] = round(time.perf_counter() - self.started, 1)
        self.entry["ended"] = _now()
        with atomic_output(self.path) as tmp:
            tmp.write_text(json.dumps(self.entries, indent=1))


def summarize_ledger(entries: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """Total wall-clock hours of the invocations, split by CPU (model and vector capability),
    with the runs and artifacts they finished; ``None`` for an empty ledger."""
    if not entries:
        return None
    by_cpu: dict[str, dict[str, Any]] = {}
    for entry in entries:
        cpu = f"{entry.get('cpu_model') or 'unknown CPU'} ({entry.get('cpu_capability') or '?'}, {entry.get('cpus')} cpus)"
        part = by_cpu.setdefault(cpu, {"cpu": cpu, "hours": 0.0, "invocations": 0, "runs": 0, "artifacts": 0})
        part["hours"] += entry["seconds"] / 3600
        part["invocations"] += 1
        part["runs"] += entry.get("runs", 0)
        part["artifacts"] += entry.get("artifacts", 0)
    parts = list(by_cpu.values())
    totals = {key: sum(p[key] for p in parts) for key in ("hours", "invocations", "runs", "artifacts")}
    return {**totals, "first": entries[0]["started"], "last": entries[-1]["ended"], "by_cpu": parts}
