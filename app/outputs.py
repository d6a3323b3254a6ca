"""Run output folders that only exist once a run has finished.

A recipe writes into a hidden staging folder next to the target
(``.<name>.incomplete-<random>``) and :func:`run_folder` renames it into place when the run
succeeds. A refused, failed or interrupted run removes its staging folder; only a process
killed outright leaves one behind, and its name says it is incomplete. So a folder named like
a finished run always holds a finished run.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from saq_wrappers.errors import OutputPathError

#: Where recipes write when no output folder is given (relative to the current folder).
DEFAULT_RUNS_FOLDER = Path("saq_runs")


def default_run_folder(prefix: str) -> Path:
    """``saq_runs/<prefix>-<timestamp>``."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return DEFAULT_RUNS_FOLDER / f"{prefix}-{stamp}"


def check_run_folder(folder: Path) -> Path:
    """Validate ``folder`` as a run's output before any work: it must not hold anything yet,
    and its nearest existing ancestor must be a writable folder (missing parents are created
    when the run finishes).

    Raises:
        OutputPathError: naming the path the user gave and what is wrong with it.
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise OutputPathError(f"output folder {str(folder)!r} is a file: expected a new folder")
        if any(folder.iterdir()):
            raise OutputPathError(f"output folder {str(folder)!r} already holds files: "
                                  "expected a new or empty folder (results are never overwritten)")
    ancestor = folder.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"cannot create output folder {str(folder)!r}: {str(ancestor)!r} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot create output folder {str(folder)!r}: {str(ancestor)!r} is not writable")
    return folder


@contextlib.contextmanager
def run_folder(folder: Path) -> Iterator[Path]:
    """Yield a staging folder; on success it becomes ``folder``, on any error it is removed.

    Raises:
        OutputPathError: the parents of ``folder`` cannot be created or written.
    """
    folder = check_run_folder(Path(folder))
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.incomplete-", dir=folder.parent))
    except OSError as error:
        raise OutputPathError(f"cannot create output folder {str(folder)!r}: {error.strerror or error}") from error
    finished = False
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())
        if folder.exists():
            folder.rmdir()  # checked empty above
        os.replace(staging, folder)
        finished = True
    finally:
        if not finished:
            shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def resolve_run_folder(output: Optional[str], prefix: str) -> Path:
    """The folder a recipe writes to: ``output`` if given, else :func:`default_run_folder`."""
    return check_run_folder(Path(output) if output else default_run_folder(prefix))
