"""Exceptions raised by saq-wrappers.

Every error names what was wrong and what was expected. They subclass the built-in exception a
user would catch anyway (``ValueError`` for bad data, ``OSError`` for bad paths), so code written
against plain Python keeps working.
"""

from __future__ import annotations


class SAQError(Exception):
    """Base class of every error this library raises on purpose."""


class DataError(SAQError, ValueError):
    """A dataset or array is malformed: wrong shape, NaN/inf, empty, inconsistent lengths."""


class SpaceMismatchError(SAQError, ValueError):
    """An env's spaces differ from those an action set or quantizer was fitted on."""


class CheckpointError(SAQError, ValueError):
    """A checkpoint file is missing, corrupted, or was not written by saq-wrappers."""


class OutputPathError(SAQError, OSError):
    """An output path cannot be written: its folder is missing or read-only."""


class NotFittedError(SAQError, RuntimeError):
    """A model (quantizer, score sampler) was used before ``fit`` or ``load``."""
