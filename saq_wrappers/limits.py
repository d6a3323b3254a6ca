"""The size limits every model of the library refuses to exceed, in one place.

A typo (``n_codes=10**7``) or a forged checkpoint header would otherwise allocate gigabytes, so
the quantizer's and the ARQ sampler's settings, their checkpoints and the experiment specs of
the application layer all check against these numbers. This module imports nothing, so a spec
refuses a bad size before torch is imported or any data is read.
"""

from __future__ import annotations

__all__ = [
    "MAX_BLOCKS", "MAX_CODES", "MAX_ENSEMBLE", "MAX_HIDDEN_LAYERS", "MAX_PROBES", "MAX_SAMPLES", "MAX_SOLVER_STEPS",
    "MAX_WIDTH",
]

#: Largest codebook size ``K``: SAQ uses 16-128 (Table 4); 65,536 codes already make a discrete
#: action space no offline RL algorithm explores.
MAX_CODES = 65_536
#: Largest hidden width and embedding size ``D`` of any network (the papers: 512, 256 and 128).
MAX_WIDTH = 16_384
#: Most hidden layers of the quantizer's encoder and of its decoder (the paper: 2).
MAX_HIDDEN_LAYERS = 16
#: Largest number ``N`` of ARQ candidates per state (the paper: 30): each is an ODE solve.
MAX_SAMPLES = 65_536
#: Most residual blocks of an ARQ score network (the paper: 3).
MAX_BLOCKS = 64
#: Most ensemble members of an ARQ score model (the paper: 1-3).
MAX_ENSEMBLE = 64
#: Most solver steps of the ARQ sampler (``steps``, ``pc_steps``; the defaults: 28 and the
#: paper's 500): each is a network evaluation per candidate, and a typo of ``10**9`` would
#: sample for years.
MAX_SOLVER_STEPS = 100_000
#: Most Hutchinson probes per likelihood evaluation of the ARQ sampler (the paper: 10).
MAX_PROBES = 1_024
