"""d3rlpy integration: discrete datasets from SAQ codes, SAQ presets, our discrete algorithms.

Importing this package registers every algorithm it defines with ``d3rlpy.load_learnable``.
Each submodule adds its public names here with one import line.
"""

from __future__ import annotations

from saq_wrappers.integrations.d3rlpy.datasets import (
    from_d3rlpy,
    is_discrete,
    to_continuous_dataset,
    to_discrete_dataset,
)
from saq_wrappers.integrations.d3rlpy.evaluation import evaluate_algo, saq_environment_evaluator
from saq_wrappers.integrations.d3rlpy.brac import DiscreteBRAC, DiscreteBRACConfig
from saq_wrappers.integrations.d3rlpy.diagnostics import (
    CQLPenaltyEvaluator,
    CQLPenaltyMonitor,
    PenaltyStates,
    cql_penalty,
    cql_penalty_evaluators,
    exact_discrete_cql_penalty,
)
from saq_wrappers.integrations.d3rlpy.iql import DiscreteActionSpaceError, DiscreteIQL, DiscreteIQLConfig
from saq_wrappers.integrations.d3rlpy.presets import saq_bc_config, saq_cql_config
from saq_wrappers.integrations.d3rlpy.presets import saq_brac_config, saq_iql_config
from saq_wrappers.integrations.d3rlpy.training import TrainingRecord, train_with_budget
from saq_wrappers.integrations.d3rlpy.arq import ARQ, ARQConfig, arq_table_states
