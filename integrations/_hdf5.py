"""HDF5 dataset files, read as untrusted input and written with errors that name the path.

Shared by every hdf5 reader (:mod:`~saq_wrappers.integrations.d4rl`,
:mod:`~saq_wrappers.integrations.robomimic`, and Minari's episode file in
:mod:`~saq_wrappers.integrations.minari`), so all of them refuse the same things:

* **Another file than the one given.** HDF5 lets a file keep a dataset's bytes in any other
  local file (*external storage*), map a dataset onto datasets of other files (a *virtual
  dataset*), or name an object of another file (an *external link*). Reading any of them reads
  that other file: a private file comes back as observations, a FIFO blocks forever. A file
  holding any of them, anywhere, is refused before anything is read (:func:`check_hdf5_contents`),
  as is a soft link that resolves to nothing (dangling, or a cycle).
* **Sizes the file does not hold.** A dataset's shape is a number in the file: a few-KB file can
  declare 10**12 rows (reading it allocates terabytes) or declare millions of rows it never stored
  (read as fill values). All datasets together may declare at most :data:`MAX_EXPANSION` times the
  file's size (what compression can honestly stretch it to: gzip, the formats' usual filter,
  expands at most about 1030-fold), or :data:`MIN_DECLARED_BYTES` whatever the file's size;
  a chunk counts with its full size, since reading one row of it decompresses all of it.
* **Data that is not numbers.** :func:`read_array` refuses strings, compound and reference types
  and scalars, naming the dataset and its dtype, before reading.

Writers wrap their h5py calls in :func:`writing_hdf5`, so a full disk says which output failed.
Imports only h5py (the formats' common library, which the ``d4rl``, ``robomimic`` and ``minari``
extras all install), never another integration.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from typing import Iterator

import numpy as np

from saq_wrappers.errors import DataError, OutputPathError
from saq_wrappers.integrations import requires_extra
from saq_wrappers.transitions import check_numeric
from saq_wrappers.validation import check_regular_file

with requires_extra("d4rl", needed_by=__name__):
    import h5py

__all__ = [
    "MAX_EXPANSION",
    "MIN_DECLARED_BYTES",
    "check_compression",
    "check_hdf5_contents",
    "open_hdf5",
    "read_array",
    "writing_hdf5",
]

#: How many times its own size a file's datasets may declare in all (gzip expands at most ~1030x).
MAX_EXPANSION = 1100
#: What any file may declare, however small (64 MiB): small honest files are never refused.
MIN_DECLARED_BYTES = 64 * 2**20

#: Why every way of reaching another file is refused.
_ANOTHER_FILE = "refusing to read it: reading it would read another file than the one given"


def open_hdf5(path: str | os.PathLike[str], expected: str) -> h5py.File:
    """``path`` opened read-only, its contents checked (:func:`check_hdf5_contents`).

    Raises:
        DataError: nothing or no regular file at ``path`` (a folder, a FIFO, a device: see
            :func:`~saq_wrappers.validation.check_regular_file`), an unreadable file (the message
            names ``expected``, e.g. ``"a robomimic .hdf5 dataset"``), or one holding what
            :func:`check_hdf5_contents` refuses.
    """
    file = str(path)
    check_regular_file(file, "hdf5 file", expected)  # a FIFO would block, /dev/zero never end
    try:
        handle = h5py.File(file, "r")
    except OSError as error:
        raise DataError(f"{file}: not a readable hdf5 file ({error})") from error
    try:
        check_hdf5_contents(handle, file)
    except BaseException:
        handle.close()
        raise
    return handle


def check_hdf5_contents(handle: h5py.File, file: str) -> None:
    """Refuse a file that would make a reader read another file or allocate what it does not hold.

    Visits every link of the file without following any (soft and external links are not
    entered; a group reached twice through hard links is visited once), before any data is read.

    Raises:
        DataError: an external link, a soft link that does not resolve, a user-defined link, a
            dataset with external storage or a virtual dataset (anywhere in the file), or
            datasets declaring more bytes than the bound of the module docstring; the message
            names the file, the object, and why.
    """
    links: list[tuple[bytes, int]] = []
    try:
        handle.id.links.visit(lambda name, info: links.append((name, info.type)), info=True)
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        raise DataError(f"{file}: cannot list the objects of the file ({error})") from error
    sizes: dict[bytes, int] = {}
    for raw, kind in links:
        try:
            size = _check_link(handle, raw, kind, file)
        except DataError:
            raise
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as error:  # a damaged object
            raise DataError(f"{file}: cannot read object /{raw.decode('utf-8', 'replace')} ({error})") from error
        if size is not None:
            sizes[raw] = size
    declared = sum(sizes.values())
    size = os.path.getsize(file)
    limit = max(MAX_EXPANSION * size, MIN_DECLARED_BYTES)
    if declared > limit:
        largest = max(sizes, key=sizes.__getitem__)
        dataset = h5py.Dataset(h5py.h5o.open(handle.id, largest))
        raise DataError(
            f"{file}: its datasets declare {declared:,} bytes in all (the largest: {dataset.name}, shape "
            f"{dataset.shape}, {dataset.dtype}, chunks {dataset.chunks}), more than {limit:,} bytes, the most "
            f"a file of its size may declare ({MAX_EXPANSION} times its {size:,} bytes, as far as "
            f"compression stretches data, or {MIN_DECLARED_BYTES:,} bytes for any file): the file does "
            "not hold this data, and reading it would allocate memory for it"
        )


def _check_link(handle: h5py.File, raw: bytes, kind: int, file: str) -> int | None:
    """Check one link of the file (see :func:`check_hdf5_contents`); the bytes a dataset it
    names may allocate when read, ``None`` for other objects and for soft links."""
    name = "/" + raw.decode("utf-8", "replace")
    if kind == h5py.h5l.TYPE_EXTERNAL:
        target, path = handle.id.links.get_val(raw)
        raise DataError(
            f"{file}: {name} is an external link to {target.decode('utf-8', 'replace')}:"
            f"{path.decode('utf-8', 'replace')}; {_ANOTHER_FILE} ({file})"
        )
    if kind == h5py.h5l.TYPE_SOFT:
        try:
            h5py.h5o.get_info(handle.id, raw)
        except (KeyError, RuntimeError, OSError) as error:
            target = handle.id.links.get_val(raw).decode("utf-8", "replace")
            raise DataError(
                f"{file}: soft link {name} -> {target} does not resolve to an object of the "
                f"file (dangling, or a cycle of links): {error}"
            ) from error
        return None  # its target is checked under its own (hard) name
    if kind != h5py.h5l.TYPE_HARD:
        raise DataError(f"{file}: {name} is a user-defined link (type {kind}), expected hard or soft links")
    item = h5py.h5o.open(handle.id, raw)
    return _declared_bytes(item, name, file) if isinstance(item, h5py.h5d.DatasetID) else None


def _declared_bytes(dataset: h5py.h5d.DatasetID, name: str, file: str) -> int:
    """The bytes reading ``dataset`` may allocate (its data, or one whole chunk if larger);
    a dataset whose data lives in another file is refused."""
    plist = dataset.get_create_plist()
    if plist.get_external_count() > 0:
        target = plist.get_external(0)[0].decode("utf-8", "replace")
        raise DataError(f"{file}: dataset {name} uses HDF5 external storage in {target}; {_ANOTHER_FILE}")
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        sources = sorted({plist.get_virtual_filename(i) for i in range(plist.get_virtual_count())})
        raise DataError(f"{file}: dataset {name} is a virtual dataset mapped onto {sources}; {_ANOTHER_FILE}")
    itemsize = dataset.get_type().get_size()
    size = math.prod(dataset.get_space().get_simple_extent_dims() or ()) * itemsize  # None: no data
    if layout == h5py.h5d.CHUNKED:
        size = max(size, math.prod(plist.get_chunk()) * itemsize)
    return size


def read_array(item: object, file: str, shown: str, shape: str) -> np.ndarray:
    """The numbers of dataset ``item`` (of a file checked by :func:`open_hdf5`).

    Args:
        item: the h5py object found under the expected key.
        file: the file, for messages.
        shown: how messages name the dataset (e.g. ``"'observations'"``, ``"/data/demo_0/actions"``).
        shape: the expected shape, for messages (e.g. ``"(N, obs_dim)"``).

    Raises:
        DataError: ``item`` is a group, holds no numbers (strings, compound, references), is a
            scalar, or cannot be read; the message names ``file``, ``shown`` and what was expected.
    """
    if not isinstance(item, h5py.Dataset):
        raise DataError(f"{file}: {shown} is a group, expected a dataset of shape {shape}")
    check_numeric(item.dtype, f"{file}: {shown}")
    if item.shape is None:
        raise DataError(f"{file}: {shown} holds no data (an empty dataspace), expected an array of shape {shape}")
    if len(item.shape) == 0:
        raise DataError(f"{file}: {shown} is a scalar, expected an array of shape {shape}")
    try:
        return np.asarray(item[()])
    except OSError as error:
        raise DataError(f"{file}: cannot read {shown} ({error})") from error


def check_compression(compression: object) -> str | int | None:
    """``compression`` if the writers accept it: ``None``, ``"gzip"``, ``"lzf"`` (filters every
    h5py build has, so every reader can open the file) or a gzip level ``0``-``9``. Checked
    before anything is written.

    Raises:
        DataError: any other value, named.
    """
    if compression is None or compression in ("gzip", "lzf"):
        return compression  # type: ignore[return-value]
    if isinstance(compression, int) and not isinstance(compression, bool) and 0 <= compression <= 9:
        return compression
    raise DataError(f"compression must be None, 'gzip', 'lzf' or a gzip level 0-9, got {compression!r}")


@contextlib.contextmanager
def writing_hdf5(path: str | os.PathLike[str]) -> Iterator[None]:
    """Raise an ``OSError`` of the h5py calls in the block (a full disk, an I/O error) as
    :class:`OutputPathError` naming ``path``, the output the caller was asked to write (h5py's
    own message names the temporary file, or nothing)."""
    try:
        yield
    except OutputPathError:
        raise
    except OSError as error:
        if error.errno == errno.ENOSPC or "No space left on device" in str(error):
            reason = "no space left on device"
        elif error.errno == errno.EDQUOT or "Disk quota exceeded" in str(error):
            reason = "disk quota exceeded"
        else:
            reason = "the write failed"
        raise OutputPathError(f"cannot write {str(path)!r}: {reason} ({error})") from error
