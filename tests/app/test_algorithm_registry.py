"""The one algorithm registry: every name, its config, X and SAQ-X on equal networks."""

from __future__ import annotations

import d3rlpy
import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers.app import experiment
from saq_wrappers.integrations.d3rlpy import DiscreteBRACConfig, DiscreteIQLConfig, registry

SPACE = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def test_the_spec_and_the_registry_know_the_same_algorithms() -> None:
    assert experiment.ALGORITHMS == registry.ALGORITHMS
    assert experiment.SAQ_ALGOS == registry.SAQ_ALGOS


@pytest.mark.parametrize(
    "name, config_type",
    [("SAQ-CQL", d3rlpy.algos.DiscreteCQLConfig), ("SAQ-BC", d3rlpy.algos.DiscreteBCConfig),
     ("SAQ-IQL", DiscreteIQLConfig), ("SAQ-BRAC", DiscreteBRACConfig)],
)
def test_saq_x_and_its_counterpart_share_networks_and_batch(name: str, config_type: type) -> None:
    saq = registry.make_config(name, SPACE, batch_size=128)
    counterpart = registry.make_config(registry.COUNTERPARTS[name], SPACE, batch_size=128)
    assert isinstance(saq, config_type) and saq.batch_size == counterpart.batch_size == 128
    hidden = {tuple(getattr(config, field).hidden_units)
              for config in (saq, counterpart) for field in vars(config) if field.endswith("encoder_factory")}
    assert hidden == {registry.default_hidden(name)}
    assert registry.make_config(name, SPACE, hidden=(32,)).batch_size == 256


def test_options_override_one_field_and_continuous_actions_are_scaled() -> None:
    assert registry.make_config("SAQ-CQL", SPACE, options={"alpha": 20.0}).alpha == 20.0
    cql = registry.make_config("CQL", SPACE)
    assert np.array_equal(cql.action_scaler.minimum, [-2.0]) and np.array_equal(cql.action_scaler.maximum, [2.0])
    with pytest.raises(ValueError, match="unknown algorithm"):
        registry.make_config("DQN", SPACE)


def test_a_time_budget_brac_run_needs_a_fixed_pi_beta_phase_if_it_has_one() -> None:
    """SAQ-BRAC trains pi_beta jointly by default, which a time budget allows; a pi_beta phase
    given as a fraction of n_steps has no length under a time budget, so training refuses it."""
    from saq_wrappers.errors import DataError
    from saq_wrappers.integrations.d3rlpy import saq_brac_config, train_with_budget

    default = registry.make_config("SAQ-BRAC", SPACE)
    assert default.behavior_pretrain_fraction == 0.0 and default.behavior_pretrain_steps is None
    with pytest.raises(DataError, match="behavior_pretrain_steps"):
        algo = saq_brac_config(behavior_pretrain_fraction=0.1).create(device="cpu")
        train_with_budget(algo, None, time_budget=1.0)  # type: ignore[arg-type]
