"""Torch side of our d3rlpy algorithms, split as d3rlpy splits its own (``algos/qlearning/torch``).

Each ``*_impl`` module holds an algorithm's ``Modules`` (everything ``save_model`` writes), its
``Impl`` (``inner_update`` and acting) and the paper's math as plain tensor functions; the
configs and algorithm classes are one level up (:mod:`..iql`, :mod:`..brac`, :mod:`..arq`, :mod:`..density_bc`).
"""

from __future__ import annotations

from saq_wrappers.integrations.d3rlpy.torch.arq_impl import ARQImpl, ARQModules, kth_largest_target
from saq_wrappers.integrations.d3rlpy.torch.brac_impl import (
    DiscreteBRACImpl,
    DiscreteBRACModules,
    brac_critic_target,
    brac_soft_value,
    categorical_kl,
)
from saq_wrappers.integrations.d3rlpy.torch.density_bc_impl import DensityBCImpl
from saq_wrappers.integrations.d3rlpy.torch.iql_impl import (
    DiscreteIQLImpl,
    DiscreteIQLModules,
    expectile_loss,
    iql_policy_logits,
)
from saq_wrappers.integrations.d3rlpy.torch.utility import CategoricalBehaviorMixin, min_q_values, pick_codes

__all__ = [
    "ARQImpl",
    "ARQModules",
    "CategoricalBehaviorMixin",
    "DensityBCImpl",
    "DiscreteBRACImpl",
    "DiscreteBRACModules",
    "DiscreteIQLImpl",
    "DiscreteIQLModules",
    "brac_critic_target",
    "brac_soft_value",
    "categorical_kl",
    "expectile_loss",
    "iql_policy_logits",
    "kth_largest_target",
    "min_q_values",
    "pick_codes",
]
