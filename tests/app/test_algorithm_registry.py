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


def test_a_time_budget_brac_run_gets_a_fixed_pi_beta_phase() -> None:
    """SAQ-BRAC's pi_beta phase is a fraction of n_steps; a time-budget run has none, so it
    gets a fixed phase, and training refuses a config that would spend the whole run on pi_beta."""
    from saq_wrappers.errors import DataError
    from saq_wrappers.integrations.d3rlpy import saq_brac_config, train_with_budget

    fixed = registry.make_config("SAQ-BRAC", SPACE, n_steps=None)
    assert fixed.behavior_pretrain_steps == registry.TIME_BUDGET_BRAC_PRETRAIN_STEPS
    assert registry.make_config("SAQ-BRAC", SPACE, n_steps=500).behavior_pretrain_steps is None
    with pytest.raises(DataError, match="behavior_pretrain_steps"):
        train_with_budget(saq_brac_config().create(device="cpu"), None, time_budget=1.0)  # type: ignore[arg-type]
