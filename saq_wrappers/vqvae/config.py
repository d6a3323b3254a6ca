"""The validated hyperparameters of a :class:`~saq_wrappers.vqvae.VQVAEQuantizer`.

They are saved verbatim in every checkpoint (``metadata["config"]``), so a loaded quantizer is
rebuilt with exactly the architecture and training settings it was fitted with. The config also
builds the module it describes, and plans its tensor shapes without allocating them, so a
checkpoint's header can be checked against the tensors the file stores before anything is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from saq_wrappers.errors import DataError
from saq_wrappers.io import planned_state
from saq_wrappers.vqvae.model import StateConditionedVQVAE

__all__ = [
    "DEFAULT_N_STEPS",
    "MAX_CODES",
    "MAX_HIDDEN_LAYERS",
    "MAX_WIDTH",
    "QuantizerConfig",
    "check_int",
]

#: Default number of gradient updates of :meth:`VQVAEQuantizer.fit`. The authors train 500k
#: updates on a GPU; 5k updates of the default 512-512 model take about a minute on two CPU
#: cores, and ten times more lowered the reconstruction error of locomotion actions without
#: moving any benchmark score beyond seed noise (design note ``docs/notes/quantizer.md``). Pass
#: ``n_steps`` explicitly (e.g. 50k-500k on a GPU) for paper-scale training.
DEFAULT_N_STEPS = 5_000

#: Codebook initialisations :class:`QuantizerConfig` accepts.
CODEBOOK_INITS = ("kmeans++", "uniform")
#: Largest codebook size ``K``: SAQ uses 16-128 (Table 4); 65,536 codes already make a discrete
#: action space no offline RL algorithm explores, and a typo (``10**7``) would allocate gigabytes.
MAX_CODES = 65_536
#: Largest hidden width and embedding size ``D`` (the paper: 512 and 128).
MAX_WIDTH = 16_384
#: Most hidden layers of the encoder and of the decoder (the paper: 2).
MAX_HIDDEN_LAYERS = 16


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    """Raise :class:`~saq_wrappers.errors.DataError` unless ``value`` is an integer (not a bool)
    of at least ``minimum`` (and at most ``maximum``, when given)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer, expected >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise DataError(f"{name} must be at most {maximum:,}, got {value:,}")


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

        Sizes are bounded (:data:`MAX_CODES`, :data:`MAX_WIDTH`, :data:`MAX_HIDDEN_LAYERS`) so a
        typo or a forged checkpoint header fails here, before anything is allocated.

        Raises:
            DataError: a value is out of range or of the wrong type (the message names it).
        """
        check_int("n_codes", n_codes, 2, MAX_CODES)
        check_int("embedding_dim", embedding_dim, 1, MAX_WIDTH)
        check_int("batch_size", batch_size, 1)
        check_int("n_steps", n_steps, 1)
        check_int("restart_every", restart_every, 1)
        check_int("log_every", log_every, 1)
        try:
            hidden = tuple(hidden_sizes)
        except TypeError as error:
            raise DataError(
                f"hidden_sizes must be a sequence of integers, got {hidden_sizes!r}"
            ) from error
        if len(hidden) > MAX_HIDDEN_LAYERS:
            raise DataError(
                f"hidden_sizes has {len(hidden)} layers, expected at most {MAX_HIDDEN_LAYERS}"
            )
        for size in hidden:
            check_int("each hidden size", size, 1, MAX_WIDTH)
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

    def new_model(
        self, obs_dim: int, act_dim: int, generator: torch.Generator | None = None
    ) -> StateConditionedVQVAE:
        """The module these settings describe for ``obs_dim``/``act_dim``, initialised from
        ``generator``."""
        return StateConditionedVQVAE(
            obs_dim,
            act_dim,
            self.n_codes,
            embedding_dim=self.embedding_dim,
            hidden_sizes=self.hidden_sizes,
            state_conditioned=self.state_conditioned,
            generator=generator,
        )

    def model_state(self, obs_dim: int, act_dim: int) -> dict[str, tuple[int, ...]]:
        """Names and shapes of :meth:`new_model`'s state dict, computed without allocating it
        (:func:`~saq_wrappers.io.planned_state`)."""
        return planned_state(lambda: self.new_model(obs_dim, act_dim))

    def describe_sizes(self, obs_dim: int, act_dim: int) -> str:
        """The settings the model's tensor shapes follow from, for error messages."""
        return (
            f"n_codes={self.n_codes}, embedding_dim={self.embedding_dim}, "
            f"hidden_sizes={list(self.hidden_sizes)}, observation dim {obs_dim}, "
            f"action dim {act_dim}"
        )
