"""The one algorithm registry: every name, its config, X and SAQ-X on equal networks."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import d3rlpy
import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers.app import quickstart
from saq_wrappers.app.datasets import DatasetSpec
from saq_wrappers.app.experiment import ExperimentSpec
from saq_wrappers.errors import DataError
from saq_wrappers.integrations import algorithms
from saq_wrappers.integrations.d3rlpy import (
    DiscreteBRACConfig,
    DiscreteIQLConfig,
    registry,
    saq_brac_config,
    saq_iql_config,
)

SPACE = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
ARQ_OPTIONS = {"candidate_table": "table", "sampler_path": "sampler.safetensors"}


@pytest.mark.parametrize("name", algorithms.ALGORITHMS)
def test_every_name_builds_a_config_and_a_spec(name: str) -> None:
    """The one list is the registry's: each name builds its d3rlpy config (SAQ-X discrete, the
    others continuous) and a valid experiment spec; a name outside it builds neither."""
    config = registry.make_config(name, SPACE, options=ARQ_OPTIONS if name == "ARQ" else None)
    action_type = config.create(device="cpu").get_action_type()
    assert (action_type == d3rlpy.constants.ActionSpace.DISCRETE) == algorithms.is_saq(name)
    spec = ExperimentSpec(dataset=DatasetSpec.parse("pendulum-expert"), algo=name)
    assert spec.is_saq == algorithms.is_saq(name)
    for bad in ("DQN", name.lower()):
        with pytest.raises(DataError, match="unknown algorithm"):
            ExperimentSpec(dataset=spec.dataset, algo=bad)


def test_quickstart_choices_are_the_saq_families_with_their_counterparts() -> None:
    for choice in quickstart.ALGORITHMS:
        saq, baseline = quickstart.QuickstartConfig(algo=choice, steps=10).experiments()
        assert algorithms.is_saq(saq.algo) and algorithms.COUNTERPARTS[saq.algo] == baseline.algo
    assert len(quickstart.ALGORITHMS) == len(algorithms.SAQ_ALGOS)
    assert set(algorithms.COUNTERPARTS.values()) <= set(algorithms.CONTINUOUS_ALGOS)


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
    with pytest.raises(DataError, match="unknown algorithm"):
        registry.make_config("DQN", SPACE)


def test_a_time_budget_brac_run_needs_a_fixed_pi_beta_phase_if_it_has_one() -> None:
    """SAQ-BRAC trains pi_beta jointly by default, which a time budget allows; a pi_beta phase
    given as a fraction of n_steps has no length under a time budget, so training refuses it."""
    from saq_wrappers.integrations.d3rlpy import train_with_budget

    default = registry.make_config("SAQ-BRAC", SPACE)
    assert default.behavior_pretrain_fraction == 0.0 and default.behavior_pretrain_steps is None
    with pytest.raises(DataError, match="behavior_pretrain_steps"):
        algo = saq_brac_config(behavior_pretrain_fraction=0.1).create(device="cpu")
        train_with_budget(algo, None, time_budget=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("preset, config_type", [(saq_iql_config, DiscreteIQLConfig),
                                                 (saq_brac_config, DiscreteBRACConfig)])
def test_our_presets_keep_the_configs_defaults_and_add_only_the_authors_networks(
    preset: Callable[..., Any], config_type: type
) -> None:
    """Every SAQ-IQL / SAQ-BRAC setting has one home: the config's default, unless the preset
    sets a network (torso, optimizer with weight decay) or the observation scaler."""
    ours, default = preset(), config_type()
    changed = {f.name for f in dataclasses.fields(config_type) if getattr(ours, f.name) != getattr(default, f.name)}
    assert changed == {f.name for f in dataclasses.fields(config_type)
                       if f.name.endswith(("encoder_factory", "optim_factory"))} | {"observation_scaler"}
    assert all(getattr(ours, f).weight_decay == 1e-3 for f in changed if f.endswith("optim_factory"))


def test_brac_alpha_follows_beta_unless_given() -> None:
    assert saq_brac_config(beta=3.0).alpha == 3.0
    assert saq_brac_config(beta=3.0, alpha=0.5).alpha == 0.5
    assert saq_brac_config(alpha=0.5).beta == DiscreteBRACConfig().beta
