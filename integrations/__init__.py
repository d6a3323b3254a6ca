"""Integrations with the libraries of the field: one module or package per library, each
importing its library at the top and nothing from the application layer above it.

None of these libraries is a dependency of the core install (``pip install saq-wrappers``
brings numpy, torch, gymnasium, safetensors and tqdm only): each integration's library comes
with an extra (``pip install 'saq-wrappers[d3rlpy]'``). Every integration imports its library
inside :func:`requires_extra`, so importing it without its extra raises a
:class:`MissingExtraError` that names the library and the extra, not a bare
``ModuleNotFoundError``.

d3rlpy 2.8.1 imports the legacy ``gym`` package (through shimmy), whose ``gym_notices`` print a
four-line "unmaintained" notice to stderr on import; this library uses Gymnasium only. Every
integration imports its library inside :func:`requires_extra`, so that is the one place the
notice is silenced: ``gym`` is imported there once with stderr swallowed (import errors still
surface where a library really needs it). Importing this package alone imports nothing
(:mod:`.algorithms` is read by ``saq --help``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from typing import Iterator

__all__ = ["MissingExtraError", "requires_extra"]


class MissingExtraError(ModuleNotFoundError):
    """An integration's library is not installed; the message names it and the extra to install.

    A :class:`ModuleNotFoundError` (so ``except ImportError`` keeps working) whose ``name`` is
    the missing library's top-level module.

    Attributes:
        extra: the saq-wrappers extra that installs the library (``d3rlpy``, ``minari``...).
        needed_by: the module that needs it.
    """

    def __init__(self, library: str, extra: str, needed_by: str) -> None:
        super().__init__(
            f"{needed_by} needs {library}, which is not installed: pip install 'saq-wrappers[{extra}]'",
            name=library,
        )
        self.extra = extra
        self.needed_by = needed_by


@contextlib.contextmanager
def requires_extra(extra: str, needed_by: str) -> Iterator[None]:
    """Wrap the imports of an integration's libraries: a module they cannot find becomes a
    :class:`MissingExtraError` naming that module and ``extra``.

    Any missing module counts, the library's own dependencies too: installing the extra
    installs those as well. Other import errors (a broken install) pass through unchanged.

    Example:
        >>> from saq_wrappers.integrations import requires_extra
        >>> try:
        ...     with requires_extra("d4rl", needed_by="demo"):
        ...         import not_here
        ... except ImportError as error:
        ...     print(type(error).__name__, error.name, error)
        MissingExtraError not_here demo needs not_here, which is not installed: pip install 'saq-wrappers[d4rl]'
    """
    _silence_legacy_gym_notice()
    try:
        yield
    except MissingExtraError:
        raise
    except ModuleNotFoundError as error:
        if not error.name:
            raise
        raise MissingExtraError(error.name.split(".")[0], extra, needed_by) from error


def _silence_legacy_gym_notice() -> None:
    if importlib.util.find_spec("gym") is None:
        return
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            import gym  # noqa: F401
        except Exception:  # noqa: BLE001 - a broken legacy gym is d3rlpy's problem, reported there
            pass
