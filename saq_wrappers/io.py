"""Atomic file output and safetensors + JSON checkpoints.

Writing
    An output is written to a temporary file in the destination folder and renamed into place,
    so a crash never leaves a half-written file under the final name (rename is atomic on POSIX
    within one filesystem). The temporary file is named
    ``.<name>.saqtmp-<host>-<pid>-<random>.tmp``, with ``<name>`` shortened when needed so the
    whole name stays within the file system's limit on name length (255 bytes on most), which a
    valid output name close to that limit would otherwise exceed (:func:`temp_prefix`). A writer
    killed by ``kill -9`` or a power cut leaves it behind; the next write into the same folder removes it
    (:func:`remove_stale_temp_files`), but only files of exactly this pattern and only once their
    writer is gone: its process ``<pid>`` no longer runs on this host, or (for files of other
    hosts sharing the folder, and against pid reuse) the file has not changed for
    :data:`STALE_AFTER_S`. A live writer's file is never touched.

Reading
    A checkpoint is one ``.safetensors`` file whose header metadata carries a JSON document; no
    pickle is ever read. :func:`read_checkpoint_header` reads the kind, the JSON and the tensor
    shapes without loading any tensor data, so a loader can check everything the header claims
    against what the file stores (:func:`check_checkpoint_format`, :func:`check_stored_shapes`)
    before it allocates anything. JSON is parsed only after its nesting depth is checked
    (:data:`MAX_JSON_DEPTH`, :func:`parse_json`): deeper nesting would overflow the parser's
    recursion, so it is refused with :class:`~saq_wrappers.errors.CheckpointError` naming the file.

Model sizes
    A checkpoint header (or a typo) can ask for a model of any size. :func:`planned_state` gives
    the shapes a module would have without allocating it (on torch's ``meta`` device), and
    :func:`check_model_size` refuses models above :data:`MAX_MODEL_VALUES`, so constructors and
    loaders fail with a clear error instead of allocating gigabytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from saq_wrappers import __version__
from saq_wrappers.errors import CheckpointError, DataError, OutputPathError

__all__ = [
    "METADATA_KEY",
    "MAX_MODEL_VALUES",
    "STALE_AFTER_S",
    "MAX_JSON_DEPTH",
    "CheckpointHeader",
    "atomic_output",
    "atomic_write_bytes",
    "check_checkpoint_format",
    "file_sha256",
    "check_model_size",
    "check_output_path",
    "check_stored_shapes",
    "json_depth",
    "load_checkpoint",
    "load_checkpoint_tensors",
    "parse_json",
    "planned_state",
    "read_checkpoint_header",
    "read_json_file",
    "remove_stale_temp_files",
    "save_checkpoint",
    "temp_prefix",
]

#: Key of the JSON document inside the safetensors header metadata.
METADATA_KEY = "saq_wrappers"
#: A temporary file whose writer cannot be checked (another host, or a reused pid) is stale once
#: it has not changed for this long (24 h): no single write of this library takes that long.
STALE_AFTER_S = 24 * 3600.0
#: Largest model :func:`check_model_size` accepts: 2**28 values (1 GiB of float32), over 400x
#: the paper-sized quantizer (0.6M parameters) and score model (0.8M).
MAX_MODEL_VALUES = 2**28

#: Deepest nesting of arrays and objects a JSON document this library reads may have (a checkpoint
#: header, a candidate-table manifest). Its own documents are 3-4 levels deep; deeper text is
#: refused before parsing, since nesting near Python's recursion limit (about 1,000 levels) makes
#: the parser, or any code that walks the result, raise ``RecursionError``.
MAX_JSON_DEPTH = 64

#: Marker in the names of this library's temporary files (see the module docstring).
_TEMP_MARKER = "saqtmp"
#: What ``mkstemp`` appends to :func:`temp_prefix`: 8 random characters and the ``.tmp`` suffix.
_TEMP_TAIL_BYTES = 8 + len(".tmp")
#: Longest host tag kept in temporary names (a host name may be up to 253 characters).
_MAX_HOST_TAG = 64
#: Longest file name, in bytes, where the file system does not say (Linux, macOS, Windows: 255).
_DEFAULT_NAME_MAX = 255
_TEMP_PATTERN = re.compile(
    rf"^\..+\.{_TEMP_MARKER}-(?P<host>[A-Za-z0-9-]+)-(?P<pid>[0-9]+)-[a-z0-9_]+\.tmp$"
)


# --------------------------------------------------------------------------- writing
def _host_tag() -> str:
    """This host's name reduced to ``[A-Za-z0-9-]`` and at most :data:`_MAX_HOST_TAG` characters
    (it becomes part of temporary file names)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:_MAX_HOST_TAG] or "host"


def _name_max(folder: Path) -> int:
    """Longest file name, in bytes, the file system of ``folder`` accepts."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no answer
        return _DEFAULT_NAME_MAX
    return limit if limit > 0 else _DEFAULT_NAME_MAX


def temp_prefix(target: Path, pid: int | None = None) -> str:
    """Name prefix of this library's temporary files for ``target`` (written by ``pid``,
    default this process); ``mkstemp`` appends a random part and ``.tmp``.

    ``target``'s name is shortened (whole characters dropped from its end) as far as needed for
    the complete temporary name to fit the file system's limit on name length, so any valid
    ``target`` name can be written; the pattern :func:`remove_stale_temp_files` recognizes is
    kept.
    """
    tag = f".{_TEMP_MARKER}-{_host_tag()}-{os.getpid() if pid is None else pid}-"
    folder = target.parent if str(target.parent) else Path(".")
    budget = _name_max(folder) - len(".") - len(os.fsencode(tag)) - _TEMP_TAIL_BYTES
    name = target.name
    while len(name) > 1 and len(os.fsencode(name)) > budget:
        name = name[: max(1, min(len(name) - 1, budget))]
    return f".{name}{tag}"


def _pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (unknown, hence ``True``, off POSIX)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed writers of this library left in ``folder``.

    Only names of this library's pattern are considered (other files, even hidden ``.tmp``
    ones, are never touched), and only when the writer is gone: its pid no longer runs on this
    host, or the file has not changed for :data:`STALE_AFTER_S`. Best effort: a file that cannot
    be removed is left. Returns the removed paths.
    """
    host = _host_tag()
    now = time.time()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_PATTERN.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            writer_gone = match["host"] == host and not _pid_running(int(match["pid"]))
            if writer_gone or now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a ``Path`` after checking it names a file in a writable folder.

    Raises:
        OutputPathError: the path ends with a separator (it names a folder), is an existing
            folder, or its folder is missing, is a file, or is read-only. The message names the
            path as the caller gave it.
    """
    given = os.fspath(path)
    shown = repr(str(given))
    if str(given).endswith(tuple(sep for sep in (os.sep, os.altsep) if sep)):
        raise OutputPathError(
            f"cannot write {shown}: the path ends with a separator, so it names a folder; "
            f"expected a file path (e.g. {str(given) + '<file name>'!r})"
        )
    target = Path(given)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise OutputPathError(
                f"cannot write {shown}: {str(existing)!r} is a file, not a folder"
            )
        raise OutputPathError(
            f"cannot write {shown}: folder {str(folder)!r} does not exist (create it first)"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {shown}: folder {str(folder)!r} is read-only")
    if target.is_dir():
        raise OutputPathError(f"cannot write {shown}: it is a folder, expected a file path")
    return target


def _output_error(target: Path, error: OSError, step: str) -> OutputPathError:
    """An :class:`OutputPathError` for ``error`` raised while ``step``, naming ``target`` (the
    caller's path), never the temporary file."""
    reason = error.strerror or str(error)
    return OutputPathError(
        f"cannot write {str(target)!r}: {reason} (while {step} in folder {str(target.parent)!r}; "
        "expected a folder where new files can be created)"
    )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    Stale temporary files of killed writers in the same folder are removed first
    (:func:`remove_stale_temp_files`). An ``OSError`` about the temporary file (creating,
    writing or renaming it) is raised as :class:`OutputPathError` naming ``path``.

    >>> with atomic_output("out.bin") as tmp:       # doctest: +SKIP
    ...     tmp.write_bytes(b"...")
    """
    target = check_output_path(path)
    remove_stale_temp_files(target.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=temp_prefix(target), suffix=".tmp", dir=target.parent
        )
    except OSError as error:
        raise _output_error(target, error, "creating a file") from error
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OutputPathError:
            raise
        except OSError as error:
            if error.filename is None or str(error.filename) != tmp_name:
                raise
            raise _output_error(target, error, "writing a file") from error
        try:
            # mkstemp creates the file 0600; give it the mode a plain open() would (0666 & ~umask)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        except OSError as error:
            raise _output_error(target, error, "renaming the finished file into place") from error
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_output`), flushed to disk before the
    rename so a power cut leaves either the old file or the complete new one."""
    with atomic_output(path) as tmp:
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise _output_error(Path(path), error, "writing a file") from error
    return Path(path)


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> Path:
    """Write ``tensors`` and a JSON ``metadata`` document to one safetensors file, atomically.

    ``metadata["library_version"]`` is set to this library's version unless given. The file is
    serialised in memory and written by :func:`atomic_write_bytes`, so no other temporary file
    (safetensors' own) can be left behind.

    Raises:
        DataError: ``metadata`` is not JSON-serialisable or nested deeper than
            :data:`MAX_JSON_DEPTH` (it could not be read back); nothing is written.
    """
    try:
        document = json.dumps({"library_version": __version__, **metadata}, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as error:
        raise DataError(
            f"checkpoint metadata must be JSON-serialisable (str keys; str, number, bool, None, "
            f"list or dict values): {error}"
        ) from error
    depth = json_depth(document)
    if depth > MAX_JSON_DEPTH:
        raise DataError(
            f"checkpoint metadata is nested {depth:,} levels deep, expected at most "
            f"{MAX_JSON_DEPTH} (saq_wrappers.io.MAX_JSON_DEPTH, the most a checkpoint is read "
            "back with): flatten the metadata"
        )
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    data = safetensors_bytes(contiguous, metadata={METADATA_KEY: document})
    return atomic_write_bytes(path, data)


@dataclass(frozen=True)
class CheckpointHeader:
    """What a checkpoint file says about itself, read without loading tensor data.

    Attributes:
        path: the file.
        metadata: the JSON document (its ``kind`` already checked).
        shapes: every stored tensor's name and shape.
    """

    path: Path
    metadata: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]


def _unreadable(source: Path, error: Exception) -> CheckpointError:
    return CheckpointError(f"{str(source)!r} is not a readable safetensors checkpoint ({error})")


#: A JSON string literal (escapes included), for :func:`json_depth`.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Everything but brackets and braces, for :func:`json_depth`.
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in the JSON ``text``, found without parsing it (so
    without recursion): brackets inside strings do not count. ``0`` for a scalar."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    codes = np.frombuffer(brackets, dtype=np.uint8)
    deepest = level = 0
    for start in range(0, len(codes), 1 << 20):
        chunk = codes[start : start + (1 << 20)]
        running = level + np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1))
        deepest = max(deepest, int(running.max()))
        level = int(running[-1])
    return deepest


def parse_json(text: str, source: str | os.PathLike[str], what: str) -> Any:
    """The JSON document ``text``, read from the file ``source`` (its ``what``, for messages),
    after checking its nesting depth (:func:`json_depth`) against :data:`MAX_JSON_DEPTH`.

    Raises:
        CheckpointError: the text is nested too deep or is not valid JSON; the message names
            ``source``.
    """
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise CheckpointError(
            f"{str(source)!r} has {what} nested {depth:,} levels deep, expected at most "
            f"{MAX_JSON_DEPTH} (saq_wrappers.io.MAX_JSON_DEPTH): not a file this library wrote"
        )
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{str(source)!r} has corrupted {what} ({error})") from error


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of the file ``path``, read in 1 MiB blocks: a model file or
    checkpoint of any size is hashed without holding it in memory.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_file(path: str | os.PathLike[str], what: str, max_bytes: int) -> Any:
    """The JSON document in the file ``path`` (its ``what``, for messages), read only if it holds
    at most ``max_bytes`` bytes, then parsed by :func:`parse_json`.

    Raises:
        CheckpointError: the file is larger than ``max_bytes``, unreadable, not UTF-8 text, nested
            too deep or not valid JSON; the message names ``path``.
    """
    source = Path(path)
    try:
        size = source.stat().st_size
        if size > max_bytes:
            raise CheckpointError(
                f"{str(source)!r} is {size:,} bytes, more than the {max_bytes:,} a {what} may "
                "hold: not a file this library wrote"
            )
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{str(source)!r} is not a readable {what} ({error})") from error
    return parse_json(text, source, what)


def read_checkpoint_header(
    path: str | os.PathLike[str], expected_kind: str
) -> CheckpointHeader:
    """The metadata and tensor shapes of a checkpoint written by :func:`save_checkpoint`, after
    checking its ``kind``; no tensor data is read.

    Raises:
        CheckpointError: the file is missing, corrupted, foreign or of another kind, or its
            metadata is nested deeper than :data:`MAX_JSON_DEPTH`.
    """
    source = Path(path)
    if source.is_dir():
        raise CheckpointError(f"checkpoint {str(source)!r} is a folder: expected a checkpoint file "
                              "(e.g. quantizer.safetensors)")
    if not source.is_file():
        raise CheckpointError(f"checkpoint {str(source)!r} does not exist")
    try:
        with safe_open(str(source), framework="pt") as handle:
            header = handle.metadata() or {}
            shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise _unreadable(source, error) from error
    if METADATA_KEY not in header:
        raise CheckpointError(
            f"{str(source)!r} is a safetensors file but not a saq-wrappers checkpoint "
            f"(no {METADATA_KEY!r} metadata)"
        )
    metadata = parse_json(header[METADATA_KEY], source, "metadata")
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{str(source)!r} has corrupted metadata (not a JSON object)")
    kind = metadata.get("kind")
    if kind != expected_kind:
        raise CheckpointError(
            f"{str(source)!r} holds a {kind!r} checkpoint, expected a {expected_kind!r} one"
        )
    return CheckpointHeader(path=source, metadata=metadata, shapes=shapes)


def load_checkpoint_tensors(header: CheckpointHeader) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint ``header`` was read from (call after checking it)."""
    try:
        with safe_open(str(header.path), framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise _unreadable(header.path, error) from error


def load_checkpoint(
    path: str | os.PathLike[str], expected_kind: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` and check its ``kind``.

    Raises :class:`CheckpointError` for a missing, corrupted or foreign file.
    """
    header = read_checkpoint_header(path, expected_kind)
    return load_checkpoint_tensors(header), header.metadata


def check_checkpoint_format(header: CheckpointHeader, found: Any, supported: int) -> None:
    """Refuse a checkpoint whose layout version ``found`` is not ``supported``.

    The format number alone decides: a file of the supported format loads whatever library
    version wrote it (``metadata["library_version"]``, which only makes the message precise).

    Raises:
        CheckpointError: ``found`` is missing, not an integer, newer (upgrade saq-wrappers) or
            older than ``supported``.
    """
    where = str(header.path)
    kind = header.metadata.get("kind")
    writer = header.metadata.get("library_version")
    written_by = f"saq-wrappers {writer}" if isinstance(writer, str) else "an unknown version"
    if isinstance(found, bool) or not isinstance(found, int):
        raise CheckpointError(
            f"{where!r} has no valid format number in its {kind} metadata (got {found!r}); "
            f"expected the integer {supported}"
        )
    if found == supported:
        return
    advice = (
        "upgrade saq-wrappers to load it"
        if found > supported
        else "this older layout is no longer read; fit and save it again"
    )
    raise CheckpointError(
        f"{where!r} holds a {kind} checkpoint of format {found}, written by {written_by}; this "
        f"version of saq-wrappers ({__version__}) reads format {supported}: {advice}"
    )


def check_stored_shapes(
    header: CheckpointHeader, expected: dict[str, tuple[int, ...]], sizes: str
) -> None:
    """Refuse a checkpoint whose stored tensors are not exactly ``expected`` (names and shapes),
    the state its header's sizes imply (:func:`planned_state`), before anything is built.

    ``sizes`` names the header fields the shapes follow from, for the message.

    Raises:
        CheckpointError: a tensor is missing, extra or of another shape.
    """
    where = str(header.path)
    stored = header.shapes
    if set(stored) != set(expected):
        missing = sorted(set(expected) - set(stored))[:5]
        extra = sorted(set(stored) - set(expected))[:5]
        raise CheckpointError(
            f"{where!r} tensors do not match a {header.metadata.get('kind')} with {sizes}: "
            f"missing {missing}, unexpected {extra}"
        )
    for name, shape in expected.items():
        if tuple(shape) != stored[name]:
            raise CheckpointError(
                f"{where!r}: its header ({sizes}) implies tensor {name!r} of shape "
                f"{tuple(shape)}, but the file stores shape {stored[name]}; the header does not "
                "describe the stored model (refused before building it)"
            )


# --------------------------------------------------------------------------- model sizes
def planned_state(build: Callable[[], torch.nn.Module]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict of the module ``build()`` makes, built on torch's
    ``meta`` device: no memory is allocated, whatever the sizes."""
    with torch.device("meta"):
        module = build()
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def check_model_size(state: dict[str, tuple[int, ...]], what: str) -> None:
    """Refuse a model of more than :data:`MAX_MODEL_VALUES` values (``state`` from
    :func:`planned_state`) before it is allocated.

    Raises:
        DataError: the model is too large; the message names ``what`` and its size.
    """
    total = sum(math.prod(shape) for shape in state.values())
    if total > MAX_MODEL_VALUES:
        raise DataError(
            f"{what} would hold {total:,} parameters ({total * 4 / 2**30:.1f} GiB of float32), "
            f"more than the limit of {MAX_MODEL_VALUES:,} (saq_wrappers.io.MAX_MODEL_VALUES): "
            "choose smaller sizes"
        )
