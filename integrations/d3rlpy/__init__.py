"""d3rlpy integration: discrete datasets from SAQ codes, SAQ presets, our discrete algorithms.

Importing this package registers every algorithm it defines with ``d3rlpy.load_learnable``.
Each submodule adds its public names here with one import line.
"""

from __future__ import annotations

from saq_wrappers.integrations.d3rlpy.presets import saq_bc_config, saq_cql_config
