"""Checks for the values that enter the library: one rule per kind of value, used everywhere.

A number read from a flag, a spec or a file that drives a loop, an allocation or a wait is
checked once, where it enters, by one of these helpers: it must have the right type (an integer
is never silently truncated: a seed of 2.9 is refused, not turned into 2), be finite (``inf``
would train forever, ``nan`` gives a NaN loss) and lie within stated bounds (a typo of
``10**12`` updates or episodes is refused instead of running for years). Each raises
:class:`~saq_wrappers.errors.DataError` naming the value and what was expected.

An input path is checked by :func:`check_regular_file` without opening it: a FIFO would block
the reader and a device (``/dev/zero``) would be read forever, so both are refused and named for
what they are, as is a folder where a file was expected.

This module imports only the standard library (and the library's errors and
:mod:`~saq_wrappers.limits`), so the command line and the experiment specs validate before torch
is imported.
"""

from __future__ import annotations

import math
import numbers
import os
import stat
import sys
from pathlib import Path
from typing import Any, Optional

from saq_wrappers.errors import DataError
from saq_wrappers.limits import MAX_HIDDEN_LAYERS, MAX_WIDTH

__all__ = [
    "MAX_SEED", "check_bool", "check_choice", "check_hidden", "check_int", "check_number", "check_regular_file",
    "check_seed", "check_seed_range", "path_kind",
]

#: Largest seed: numpy's legacy global seeding (``np.random.seed``, which d3rlpy and SB3 call)
#: takes ``0 .. 2**32 - 1``; torch and Gymnasium take all of these too.
MAX_SEED = 2**32 - 1


def check_int(name: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool, not a float such as 2.0)
    with ``minimum <= value`` (and ``value <= maximum`` when given).

    Raises:
        DataError: naming ``name``, the bounds and the value given.
    """
    expected = f"an integer >= {minimum:,}" + (f" and <= {maximum:,}" if maximum is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DataError(f"{name} must be {expected}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise DataError(f"{name} must be {expected}, got {int(value):,}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    *,
    exclusive_minimum: bool = False,
) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number (not a bool) within the
    bounds: ``value >= minimum`` (``> minimum`` with ``exclusive_minimum``) and
    ``value <= maximum``, each when given.

    Raises:
        DataError: naming ``name``, the bounds and the value given (``nan``, ``inf`` included).
    """
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if exclusive_minimum else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    expected = "a finite number" + (f" {' and '.join(parts)}" if parts else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"{name} must be {expected}, got {value!r}")
    number = float(value)
    if (not math.isfinite(number)
            or (minimum is not None and (number <= minimum if exclusive_minimum else number < minimum))
            or (maximum is not None and number > maximum)):
        raise DataError(f"{name} must be {expected}, got {value!r}")
    return number


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is an integer seed in ``0 .. MAX_SEED``.

    Raises:
        DataError: a negative, too large or non-integer seed (2.9 is refused, not truncated).
    """
    return check_int(name, value, 0, MAX_SEED)


def check_seed_range(first: int, count: int, what: str) -> int:
    """Return the last of the ``count`` seeds ``first .. first + count - 1`` (episode ``i`` of an
    evaluation is reset with ``first + i``) if it is at most :data:`MAX_SEED`.

    Args:
        first: the first seed, already checked (:func:`check_seed`).
        count: the number of seeds, already checked.
        what: what uses the seeds, leading the message (``"seed 7 is too large: its episodes"``).

    Raises:
        DataError: ``"<what> would be reset with seeds up to <last>, above the largest seed ..."``.
    """
    last = first + count - 1
    if last > MAX_SEED:
        raise DataError(f"{what} would be reset with seeds up to {last:,}, above the largest seed {MAX_SEED:,}")
    return last


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` as a ``bool`` if it is one (numpy's included): a truthy string such as
    ``"false"`` from a checkpoint header or a spec must not switch a setting on, nor ``1`` stand
    for ``True``.

    Raises:
        DataError: naming ``name`` and the value given.
    """
    numpy = sys.modules.get("numpy")  # a numpy bool exists only once numpy is imported
    if not (isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_))):
        raise DataError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_hidden(name: str, hidden: Any, min_layers: int = 1) -> tuple[int, ...]:
    """Return hidden layer sizes as a tuple of ints if ``hidden`` is a sequence (not a string) of
    ``min_layers`` to :data:`~saq_wrappers.limits.MAX_HIDDEN_LAYERS` integers, each in ``1 ..``
    :data:`~saq_wrappers.limits.MAX_WIDTH`: a typo such as ``[30_000] * 1000`` would allocate
    gigabytes.

    Raises:
        DataError: naming ``name``: not a sequence, too few or too many layers, or a size out of
            range (``"hidden_sizes: each hidden size must be an integer >= 1 and <= 16,384, ..."``).
    """
    if isinstance(hidden, (str, bytes)):
        raise DataError(f"{name} must be a sequence of layer sizes (integers), got {hidden!r}")
    try:
        sizes = tuple(hidden)
    except TypeError as error:
        raise DataError(f"{name} must be a sequence of layer sizes (integers), got {hidden!r}") from error
    if len(sizes) > MAX_HIDDEN_LAYERS:
        raise DataError(f"{name} has {len(sizes)} layers, expected at most {MAX_HIDDEN_LAYERS}")
    if len(sizes) < min_layers:
        raise DataError(f"{name} has {len(sizes)} layers, expected at least {min_layers}")
    return tuple(check_int(f"{name}: each hidden size", size, 1, MAX_WIDTH) for size in sizes)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of the strings ``choices``.

    Raises:
        DataError: naming ``name``, every choice and the value given.
    """
    if not isinstance(value, str) or value not in choices:
        raise DataError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def path_kind(path: str | os.PathLike[str]) -> Optional[str]:
    """What ``path`` names, found with ``stat`` (symbolic links followed), never by opening it:
    ``"a regular file"``, ``"a folder"``, ``"a FIFO (named pipe)"``, ``"a character device"``,
    ``"a block device"``, ``"a socket"``, ``"a broken symbolic link"``, or ``None`` when nothing
    is there (or a parent is not a folder)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "a broken symbolic link" if os.path.islink(path) else None
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def check_regular_file(path: str | os.PathLike[str], what: str, expected: str) -> Path:
    """Return ``path`` as a ``Path`` if it names a regular file (through symbolic links).

    Args:
        path: the path as the user gave it (the message shows it so).
        what: what the path is for, leading the message (``"dataset 'hopper': file"``).
        expected: what was expected there (``"an hdf5 file"``).

    Raises:
        DataError: nothing is there ("does not exist"), or something else is: ``"... is a FIFO
            (named pipe), expected an hdf5 file"``, a device, a folder, a socket, a broken link.
    """
    kind = path_kind(path)
    if kind is None:
        raise DataError(f"{what} {str(path)!r} does not exist (expected {expected})")
    if kind != "a regular file":
        raise DataError(f"{what} {str(path)!r} is {kind}, expected {expected}")
    return Path(path)
