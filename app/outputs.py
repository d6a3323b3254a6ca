"""Run output folders that only exist once a run has finished, and never lose a finished run.

The final folder is decided before any work: :func:`check_run_folder` resolves the path given
(symbolic links and ``..``), refuses the current folder (or one holding it), an existing file or
non-empty folder and a broken link, and checks that the folder can be created. :func:`run_folder`
then reserves it for this run (a lock file ``.<name>.lock`` next to it, held while the run lasts,
so a second run given the same folder is refused at once instead of after its work), writes
into a hidden staging folder next to it (``.<name>.incomplete-<random>``) and renames that into
place when the run succeeds.

A refused, failed or interrupted run (Ctrl-C, and SIGTERM through the ``saq`` command) removes
its staging folder; only a process killed outright leaves one behind, and its name says it is
incomplete. A finished run whose folder cannot take its final name after all keeps its results,
in a visible folder ``<name>.finished-<timestamp>`` next to it, and the error says where. So a
folder named like a finished run always holds a finished run, and finished work is never
thrown away.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from saq_wrappers.errors import OutputPathError

try:  # POSIX; elsewhere runs are not reserved (a second run is still refused when the first has finished)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: Where recipes write when no output folder is given (relative to the current folder).
DEFAULT_RUNS_FOLDER = Path("saq_runs")

#: Longest folder name (bytes) used as is in the names of the lock file, the staging folder and a
#: kept run (they add up to 40 characters; most filesystems allow 255): a longer one is shortened
#: and made unique with a hash.
_MAX_NAME_BYTES = 200


def default_run_folder(prefix: str) -> Path:
    """``saq_runs/<prefix>-<timestamp>``."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return DEFAULT_RUNS_FOLDER / f"{prefix}-{stamp}"


def check_run_folder(folder: str | os.PathLike[str]) -> Path:
    """Decide a run's output folder before any work; return it resolved (absolute, no symbolic
    link, no ``..``), the path every later step uses.

    Accepted: a new folder (missing parents are created when the run starts) or an empty one,
    also through a symbolic link. Refused: the current folder or one holding it (``.``,
    ``new/..``), an existing file or non-empty folder, a broken symbolic link, a folder whose
    nearest existing ancestor is a file or is not writable.

    Raises:
        OutputPathError: naming the path the user gave and what is wrong with it.
    """
    shown = repr(str(folder))
    path = Path(folder).expanduser()
    if path.is_symlink() and not path.exists():
        raise OutputPathError(f"output folder {shown} is a broken symbolic link (to {os.readlink(path)!r}): "
                              "expected a new folder, or a link to an empty one")
    resolved = Path(os.path.realpath(path))
    via = f" (that is {str(resolved)!r})" if str(resolved) != str(path.absolute()) else ""
    try:
        current: Optional[Path] = Path.cwd().resolve()
    except OSError:  # the current folder was deleted
        current = None
    if current is not None and (resolved == current or resolved in current.parents):
        where = "is the current folder" if resolved == current else "holds the current folder"
        raise OutputPathError(f"output folder {shown}{via} {where}: expected a new folder, e.g. "
                              f"{str(Path(str(folder)) / 'run')!r} (results are never written over other files)")
    if resolved.parent == resolved:
        raise OutputPathError(f"output folder {shown} is the filesystem root: expected a new folder")
    if resolved.exists():
        if not resolved.is_dir():
            raise OutputPathError(f"output folder {shown}{via} is a file: expected a new folder")
        if any(resolved.iterdir()):
            raise OutputPathError(f"output folder {shown}{via} already holds files: "
                                  "expected a new or empty folder (results are never overwritten)")
    ancestor = resolved.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"cannot create output folder {shown}: {str(ancestor)!r} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot create output folder {shown}: {str(ancestor)!r} is not writable")
    return resolved


@contextlib.contextmanager
def run_folder(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Reserve ``folder`` and yield a staging folder; on success it becomes ``folder``, on any
    error or interruption it is removed. See the module docstring.

    Raises:
        OutputPathError: ``folder`` is refused (:func:`check_run_folder`), another run is writing
            it now, its parents cannot be created, or (after the body succeeded) the finished
            run cannot take its name: then the message says where its results were kept.
    """
    target = check_run_folder(folder)
    name = _short_name(target.name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"cannot create output folder {str(target)!r}: {error.strerror or error}") from error
    lock = _reserve(target, name)
    try:
        check_run_folder(target)  # again, now reserved: a run that finished meanwhile filled it
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{name}.incomplete-", dir=target.parent))
        except OSError as error:
            raise OutputPathError(f"cannot create output folder {str(target)!r}: {error.strerror or error}") from error
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _publish(staging, target, name)
    finally:
        _release(lock, target.parent / f".{name}.lock")


def _publish(staging: Path, target: Path, name: str) -> None:
    """Rename the finished ``staging`` folder to ``target`` (an empty folder there is replaced
    atomically). If that fails, keep the results under a visible name, never delete them.

    Raises:
        OutputPathError: the rename failed; the message names where the results are.
    """
    try:
        staging.chmod(0o777 & ~_umask())
        os.replace(staging, target)
        return
    except OSError as error:
        reason = error.strerror or str(error)
    kept = staging
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in ("", *(f"-{number}" for number in range(2, 100))):
        candidate = target.parent / f"{name}.finished-{stamp}{suffix}"
        if candidate.exists() or candidate.is_symlink():
            continue
        try:
            os.rename(staging, candidate)
            kept = candidate
        except OSError:
            pass
        break
    raise OutputPathError(f"the run finished but its folder could not be renamed to {str(target)!r} ({reason}); "
                          f"its results are kept in {str(kept)!r}")


def _reserve(target: Path, name: str) -> Optional[int]:
    """Hold an exclusive lock on ``.<name>.lock`` next to ``target`` for this run; return its
    descriptor (``None`` where locks are not available). The lock dies with the process, so a
    killed run never blocks the next one; the file is removed when the run ends.

    Raises:
        OutputPathError: another live run holds it.
    """
    if fcntl is None:
        return None
    path = target.parent / f".{name}.lock"
    for _ in range(10):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputPathError(f"cannot create output folder {str(target)!r}: {error.strerror or error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputPathError(
                f"another run is writing output folder {str(target)!r} now (it holds {str(path)!r}): "
                "wait for it to finish, or choose another output folder") from None
        except OSError:  # this filesystem has no locks: go on unreserved
            os.close(fd)
            return None
        try:  # the file locked must still be the one at the path (a run that ends removes it)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise OutputPathError(f"cannot reserve output folder {str(target)!r}: its lock file {str(path)!r} keeps changing")


def _release(fd: Optional[int], path: Path) -> None:
    """Remove the lock file while still holding it, then let go of it."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.close(fd)


def _short_name(name: str) -> str:
    """``name``, or for a name over :data:`_MAX_NAME_BYTES` bytes its start and a hash of it."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= _MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:12]
    return encoded[: _MAX_NAME_BYTES - 13].decode("utf-8", "ignore") + "-" + digest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def resolve_run_folder(output: Optional[str], prefix: str) -> Path:
    """The folder a recipe writes to, resolved (:func:`check_run_folder`): ``output`` if given,
    else :func:`default_run_folder`."""
    return check_run_folder(Path(output) if output else default_run_folder(prefix))
