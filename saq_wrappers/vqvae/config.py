"""The validated hyperparameters of a :class:`~saq_wrappers.vqvae.VQVAEQuantizer`.

They are saved verbatim in every checkpoint (``metadata["config"]``), so a loaded quantizer is
rebuilt with exactly the architecture and training settings it was fitted with. The config also
builds the module it describes, and plans its tensor shapes without allocating them, so a
checkpoint's header can be checked against the tensors the file stores before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from saq_wrappers.io import planned_state
from saq_wrappers.limits import MAX_CODES, MAX_WIDTH
from saq_wrappers.validation import check_bool, check_choice, check_hidden, check_int, check_number, check_seed
from saq_wrappers.vqvae.model import StateConditionedVQVAE

__all__ = [
    "DEFAULT_N_STEPS",
    "QuantizerConfig",
]

#: Default number of gradient updates of :meth:`VQVAEQuantizer.fit`. The authors train 500k
#: updates on a GPU; 5k updates of the default 512-512 model take about a minute on two CPU
#: cores, and ten times more lowered the reconstruction error of locomotion actions without
#: moving any benchmark score beyond seed noise (design note ``docs/notes/quantizer.md``). Pass
#: ``n_steps`` explicitly (e.g. 50k-500k on a GPU) for paper-scale training.
DEFAULT_N_STEPS = 5_000

#: Codebook initialisations :class:`QuantizerConfig` accepts.
CODEBOOK_INITS = ("kmeans++", "uniform")


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

        Sizes are bounded (:data:`~saq_wrappers.limits.MAX_CODES`, :data:`~saq_wrappers.limits.MAX_WIDTH`,
        :data:`~saq_wrappers.limits.MAX_HIDDEN_LAYERS`) so a
        typo or a forged checkpoint header fails here, before anything is allocated; numbers must
        be finite, integers true integers (a seed of 2.9 is refused, not truncated) and seeds
        within :data:`~saq_wrappers.validation.MAX_SEED`.

        Raises:
            DataError: a value is out of range or of the wrong type (the message names it).
        """
        return cls(
            n_codes=check_int("n_codes", n_codes, 2, MAX_CODES),
            embedding_dim=check_int("embedding_dim", embedding_dim, 1, MAX_WIDTH),
            hidden_sizes=check_hidden("hidden_sizes", hidden_sizes, min_layers=0),  # 0: linear encoder/decoder
            state_conditioned=check_bool("state_conditioned", state_conditioned),
            codebook_weight=check_number("codebook_weight", codebook_weight, 0),
            commitment_weight=check_number("commitment_weight", commitment_weight, 0),
            learning_rate=check_number("learning_rate", learning_rate, 0, exclusive_minimum=True),
            batch_size=check_int("batch_size", batch_size, 1),
            seed=check_seed("seed", seed),
            n_steps=check_int("n_steps", n_steps, 1),
            dead_code_restart=check_bool("dead_code_restart", dead_code_restart),
            restart_every=check_int("restart_every", restart_every, 1),
            restart_until=check_number("restart_until", restart_until, 0, 1),
            codebook_init=check_choice("codebook_init", codebook_init, CODEBOOK_INITS),
            log_every=check_int("log_every", log_every, 1),
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
