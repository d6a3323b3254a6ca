"""The validated hyperparameters of a :class:`~saq_wrappers.vqvae.VQVAEQuantizer`.

They are saved verbatim in every checkpoint (``metadata["config"]``), so a loaded quantizer is
rebuilt with exactly the architecture and training settings it was fitted with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from saq_wrappers.errors import DataError

__all__ = ["DEFAULT_N_STEPS", "QuantizerConfig", "check_int"]

#: Default number of gradient updates of :meth:`VQVAEQuantizer.fit`. The authors train 500k
#: updates on a GPU; the default 512-512 model runs roughly 50-100 updates/s on two CPU cores, so
#: 5k updates take about one minute and already bring Hopper-scale action reconstruction close to
#: its plateau (see ``benchmarks/bench_quantizer_fit.py``). Pass ``n_steps`` explicitly (e.g.
#: 50k-500k on a GPU) for paper-scale training.
DEFAULT_N_STEPS = 5_000

#: Codebook initialisations :class:`QuantizerConfig` accepts.
CODEBOOK_INITS = ("kmeans++", "uniform")


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raise :class:`~saq_wrappers.errors.DataError` unless ``value`` is an integer (not a bool)
    of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer, expected >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class QuantizerConfig:
    """Architecture (SAQ eqs. 5-7) and training settings; see :class:`VQVAEQuantizer`'s Args."""

    n_codes: int
    embedding_dim: int
    hidden_sizes: tuple[int, ...]
    state_conditioned: bool
    codebook_weight: float
    commitment_weight: float
    learning_rate: float
    batch_size: int
    seed: int
    n_steps: int
    dead_code_restart: bool
    restart_every: int
    restart_until: float
    codebook_init: str
    log_every: int

    @classmethod
    def checked(
        cls,
        *,
        n_codes: int,
        embedding_dim: int,
        hidden_sizes: Sequence[int],
        state_conditioned: bool,
        codebook_weight: float,
        commitment_weight: float,
        learning_rate: float,
        batch_size: int,
        seed: int,
        n_steps: int,
        dead_code_restart: bool,
        restart_every: int,
        restart_until: float,
        codebook_init: str,
        log_every: int,
    ) -> "QuantizerConfig":
        """Validate user-given values and store them as plain Python types.

        Raises:
            DataError: a value is out of range or of the wrong type (the message names it).
        """
        check_int("n_codes", n_codes, 2)
        check_int("embedding_dim", embedding_dim, 1)
        check_int("batch_size", batch_size, 1)
        check_int("n_steps", n_steps, 1)
        check_int("restart_every", restart_every, 1)
        check_int("log_every", log_every, 1)
        hidden = tuple(hidden_sizes)
        for size in hidden:
            check_int("each hidden size", size, 1)
        for name, value in (
            ("codebook_weight", codebook_weight),
            ("commitment_weight", commitment_weight),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise DataError(f"{name} must be a finite number >= 0, got {value}")
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise DataError(f"learning_rate must be > 0, got {learning_rate}")
        if not 0.0 <= restart_until <= 1.0:
            raise DataError(f"restart_until must lie in [0, 1], got {restart_until}")
        if codebook_init not in CODEBOOK_INITS:
            raise DataError(
                f"codebook_init must be 'kmeans++' or 'uniform', got {codebook_init!r}"
            )
        return cls(
            n_codes=int(n_codes),
            embedding_dim=int(embedding_dim),
            hidden_sizes=tuple(int(h) for h in hidden),
            state_conditioned=bool(state_conditioned),
            codebook_weight=float(codebook_weight),
            commitment_weight=float(commitment_weight),
            learning_rate=float(learning_rate),
            batch_size=int(batch_size),
            seed=int(seed),
            n_steps=int(n_steps),
            dead_code_restart=bool(dead_code_restart),
            restart_every=int(restart_every),
            restart_until=float(restart_until),
            codebook_init=str(codebook_init),
            log_every=int(log_every),
        )
