"""d3rlpy integration: discrete datasets from SAQ codes, SAQ presets, our algorithms.

Importing this package registers every algorithm it defines (``DiscreteIQL``, ``DiscreteBRAC``,
``ARQ``, ``DensityBC``), the presets' observation scalers (``RobustStandardObservationScaler``,
``CandidateObservationScaler``) and optimizer
(``DenormalFreeAdamFactory``) with ``d3rlpy.load_learnable``.
"""

from __future__ import annotations

from saq_wrappers.integrations import requires_extra

with requires_extra("d3rlpy", needed_by=__name__):
    import d3rlpy  # noqa: F401

from saq_wrappers.integrations.d3rlpy.arq import ARQ, ARQConfig, arq_table_states
from saq_wrappers.integrations.d3rlpy.brac import DiscreteBRAC, DiscreteBRACConfig
from saq_wrappers.integrations.d3rlpy.candidate_networks import observes_candidates
from saq_wrappers.integrations.d3rlpy.density_bc import DensityBC, DensityBCConfig
from saq_wrappers.integrations.d3rlpy.acting import code_weights
from saq_wrappers.integrations.d3rlpy.datasets import (
    from_d3rlpy,
    is_discrete,
    to_continuous_dataset,
    to_discrete_dataset,
)
from saq_wrappers.integrations.d3rlpy.diagnostics import (
    CQLPenaltyEvaluator,
    CQLPenaltyMonitor,
    PenaltyStates,
    cql_penalty,
    cql_penalty_evaluators,
    exact_discrete_cql_penalty,
)
from saq_wrappers.integrations.d3rlpy.discrete import DiscreteActionSpaceError
from saq_wrappers.integrations.d3rlpy.evaluation import evaluate_algo, saq_environment_evaluator
from saq_wrappers.integrations.d3rlpy.iql import DiscreteIQL, DiscreteIQLConfig
from saq_wrappers.integrations.d3rlpy.presets import (
    saq_bc_config,
    saq_brac_config,
    density_policy_settings,
    saq_cql_config,
    saq_density_bc_config,
    saq_iql_config,
)
from saq_wrappers.integrations.d3rlpy.scalers import CandidateObservationScaler, RobustStandardObservationScaler
from saq_wrappers.integrations.d3rlpy.training import TrainingRecord, train_with_budget

__all__ = [
    "ARQ",
    "ARQConfig",
    "CQLPenaltyEvaluator",
    "CQLPenaltyMonitor",
    "CandidateObservationScaler",
    "DensityBC",
    "DensityBCConfig",
    "DiscreteActionSpaceError",
    "DiscreteBRAC",
    "DiscreteBRACConfig",
    "DiscreteIQL",
    "DiscreteIQLConfig",
    "PenaltyStates",
    "RobustStandardObservationScaler",
    "TrainingRecord",
    "arq_table_states",
    "code_weights",
    "cql_penalty",
    "cql_penalty_evaluators",
    "density_policy_settings",
    "evaluate_algo",
    "exact_discrete_cql_penalty",
    "from_d3rlpy",
    "is_discrete",
    "observes_candidates",
    "saq_bc_config",
    "saq_brac_config",
    "saq_cql_config",
    "saq_density_bc_config",
    "saq_environment_evaluator",
    "saq_iql_config",
    "to_continuous_dataset",
    "to_discrete_dataset",
    "train_with_budget",
]
