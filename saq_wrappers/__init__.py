"""saq-wrappers: SAQ action quantization and ARQ support sampling for Gymnasium and d3rlpy.

Public names are imported lazily (PEP 562) so ``import saq_wrappers`` stays fast and a user who
only needs the wrapper does not pay for the score-model code.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ActionSet": "saq_wrappers.action_set",
    "FixedActionSet": "saq_wrappers.action_set",
    "VQVAEQuantizer": "saq_wrappers.vqvae",
    "StateConditionedVQVAE": "saq_wrappers.vqvae",
    "SAQActionWrapper": "saq_wrappers.wrappers",
    "SAQVectorActionWrapper": "saq_wrappers.wrappers",
    "ModeAveraging": "saq_wrappers.mode_acting",
    "Transitions": "saq_wrappers.transitions",
    "Relabeled": "saq_wrappers.transitions",
    "relabel": "saq_wrappers.transitions",
    "ScoreSupportSampler": "saq_wrappers.score",
    "SAQError": "saq_wrappers.errors",
    "DataError": "saq_wrappers.errors",
    "SpaceMismatchError": "saq_wrappers.errors",
    "CheckpointError": "saq_wrappers.errors",
    "OutputPathError": "saq_wrappers.errors",
    "NotFittedError": "saq_wrappers.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'saq_wrappers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
