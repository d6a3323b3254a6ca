"""Integrations with the libraries of the field: one module or package per library, each
importing its library at the top and nothing from the application layer above it.

d3rlpy 2.8.1 imports the legacy ``gym`` package (through shimmy), whose ``gym_notices`` print a
four-line "unmaintained" notice to stderr on import; this library uses Gymnasium only. Every
integration is imported through this package, so this is the one place the notice is
silenced: ``gym`` is imported here once with stderr swallowed (import errors still surface
where a library really needs it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io


def _silence_legacy_gym_notice() -> None:
    if importlib.util.find_spec("gym") is None:
        return
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            import gym  # noqa: F401
        except Exception:  # noqa: BLE001 - a broken legacy gym is d3rlpy's problem, reported there
            pass


_silence_legacy_gym_notice()
