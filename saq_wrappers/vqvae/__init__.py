"""SAQ's state-conditioned VQ-VAE action quantizer (Luo et al., CoRL 2023, section 4.1).

A continuous action ``a`` taken at state ``s`` is encoded to an embedding ``e(s, a)``, snapped to
the nearest of ``K`` codebook vectors (SAQ eq. 5) and decoded back with the state:
``a_hat = decoder(s, e_k)``. Offline RL then runs on the integer code ``k``.

One module per job:

- :mod:`.model`: :class:`StateConditionedVQVAE`, the torch module (encoder, codebook, decoder,
  SAQ eq. 7 loss) working in the normalized observation and action spaces;
- :mod:`.normalization`: the z-scoring of observations and actions;
- :mod:`.config`: the validated hyperparameters saved with every checkpoint;
- :mod:`.training`: the fit loop (k-means++ codebook init, dead-code restarts, codebook health);
- :mod:`.decoding`: the numpy fast path for per-step decoding and the chunked torch path;
- :mod:`.checkpoint`: the safetensors + JSON checkpoint (kind and format checks, header sizes
  checked against the stored tensors before anything is built);
- :mod:`.quantizer`: :class:`VQVAEQuantizer`, the :class:`~saq_wrappers.action_set.ActionSet`
  that ties them together (fit / encode / decode / candidates / save / load).
"""

from __future__ import annotations

from saq_wrappers.vqvae.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_KIND
from saq_wrappers.vqvae.config import DEFAULT_N_STEPS, QuantizerConfig
from saq_wrappers.vqvae.decoding import CHUNK_ROWS, NUMPY_MAX_ROWS
from saq_wrappers.vqvae.model import StateConditionedVQVAE
from saq_wrappers.vqvae.normalization import STD_FLOOR
from saq_wrappers.vqvae.quantizer import VQVAEQuantizer

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KIND",
    "CHUNK_ROWS",
    "DEFAULT_N_STEPS",
    "NUMPY_MAX_ROWS",
    "QuantizerConfig",
    "STD_FLOOR",
    "StateConditionedVQVAE",
    "VQVAEQuantizer",
]
