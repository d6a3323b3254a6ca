"""Opening hdf5 dataset files for reading, with errors that name the file and the format.

Shared by the two hdf5 formats (:mod:`~saq_wrappers.integrations.robomimic` and
:mod:`~saq_wrappers.integrations.d4rl`): a missing path and a file h5py cannot read are the
user's most common mistakes, and both formats answer them with the same :class:`DataError`.
Imports only h5py (the formats' common library, which the ``d4rl`` and ``robomimic`` extras
both install), never another integration.
"""

from __future__ import annotations

import os
from pathlib import Path

from saq_wrappers.errors import DataError
from saq_wrappers.integrations import requires_extra

with requires_extra("d4rl", needed_by=__name__):
    import h5py

__all__ = ["open_hdf5"]


def open_hdf5(path: str | os.PathLike[str], expected: str) -> h5py.File:
    """``path`` opened read-only; a missing or unreadable file is a DataError naming ``expected``
    (e.g. ``"a robomimic .hdf5 dataset"``)."""
    file = str(path)
    if not Path(file).is_file():
        raise DataError(f"{file}: no such file (expected {expected})")
    try:
        return h5py.File(file, "r")
    except OSError as error:
        raise DataError(f"{file}: not a readable hdf5 file ({error})") from error
