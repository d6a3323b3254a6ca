"""Atomic file output and safetensors + JSON checkpoints.

Outputs are written to a temporary file in the destination folder and renamed into place, so a
crash never leaves a half-written file behind (rename is atomic on POSIX within one filesystem).
Checkpoints are a single ``.safetensors`` file whose header metadata carries a JSON document; no
pickle is ever read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from saq_wrappers.errors import CheckpointError, OutputPathError

#: Key of the JSON document inside the safetensors header metadata.
METADATA_KEY = "saq_wrappers"


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a ``Path`` after checking its folder exists and is writable."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputPathError(
            f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist "
            "(create it first)"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"cannot write {str(target)!r}: folder {str(folder)!r} is read-only"
        )
    if target.is_dir():
        raise OutputPathError(f"cannot write {str(target)!r}: it is a folder, expected a file path")
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    >>> with atomic_output("out.bin") as tmp:       # doctest: +SKIP
    ...     tmp.write_bytes(b"...")
    """
    target = check_output_path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 & ~umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> Path:
    """Write ``tensors`` and a JSON ``metadata`` document to one safetensors file, atomically."""
    document = json.dumps(metadata, sort_keys=True)
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    with atomic_output(path) as tmp:
        save_file(contiguous, str(tmp), metadata={METADATA_KEY: document})
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike[str], expected_kind: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` and check its ``kind``.

    Raises :class:`CheckpointError` for a missing, corrupted or foreign file.
    """
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"checkpoint {str(source)!r} does not exist")
    try:
        tensors = load_file(str(source))
        from safetensors import safe_open

        with safe_open(str(source), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{str(source)!r} is not a readable safetensors checkpoint ({error})"
        ) from error
    if METADATA_KEY not in header:
        raise CheckpointError(
            f"{str(source)!r} is a safetensors file but not a saq-wrappers checkpoint "
            f"(no {METADATA_KEY!r} metadata)"
        )
    try:
        metadata = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{str(source)!r} has corrupted metadata ({error})") from error
    kind = metadata.get("kind")
    if kind != expected_kind:
        raise CheckpointError(
            f"{str(source)!r} holds a {kind!r} checkpoint, expected a {expected_kind!r} one"
        )
    return tensors, metadata
