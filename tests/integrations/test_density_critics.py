"""SAQ-IQL and SAQ-BRAC with action-density policies (issue 37): the policies read candidate
observations, the critics and value function the state alone, and the fitted policy learns the
noise-free action from noisy code labels as SAQ-BC's density policy does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import d3rlpy
import numpy as np
import pytest
import torch

from saq_wrappers.candidate_observations import candidate_observations, with_candidate_observations
from saq_wrappers.errors import DataError, SpaceMismatchError
from saq_wrappers.integrations.d3rlpy import (
    CandidateObservationScaler,
    DiscreteBRACConfig,
    DiscreteIQLConfig,
    density_policy_settings,
    observes_candidates,
    saq_brac_config,
    saq_iql_config,
    to_discrete_dataset,
)
from saq_wrappers.integrations.d3rlpy.registry import density_policy_config
from saq_wrappers.integrations.d3rlpy.torch.density_policy import ActionDensityPolicy
from tests.integrations.shifting_candidates import D, K, ShiftingCandidates, noisy_demonstrations
from tests.quiet_training import quiet_fit

PRESETS = {"SAQ-IQL": saq_iql_config, "SAQ-BRAC": saq_brac_config}


def density_algo(name: str, action_set: ShiftingCandidates, **overrides: Any) -> Any:
    config = PRESETS[name](hidden_units=(64, 64), **density_policy_settings(action_set), **overrides)
    return config.create(device="cpu:0")


@pytest.fixture(scope="module")
def trained_iql() -> tuple[ShiftingCandidates, Any, Any]:
    """SAQ-IQL with the density policy, trained on noisy demonstrations (zero rewards: every
    advantage is about zero, so eq. 10's weighted likelihood is about plain likelihood)."""
    action_set = ShiftingCandidates()
    data = noisy_demonstrations(action_set)
    labels = action_set.encode(data.observations, data.actions)
    d3rlpy.seed(0)
    algo = density_algo("SAQ-IQL", action_set, actor_learning_rate=3e-3, critic_learning_rate=3e-3)
    quiet_fit(algo, to_discrete_dataset(with_candidate_observations(data, action_set), labels, n_codes=K), 1500)
    return action_set, data, algo


@pytest.mark.parametrize("name", ["SAQ-IQL", "SAQ-BRAC"])
def test_the_critics_read_the_state_alone_and_the_policy_reads_the_candidates(name: str) -> None:
    action_set = ShiftingCandidates()
    algo = density_algo(name, action_set)
    algo.create_impl((1 + K * D,), K)
    modules = algo.impl._modules  # noqa: SLF001
    assert isinstance(modules.policy, ActionDensityPolicy) and observes_candidates(algo)
    states = np.array([[0.4], [-0.3]], np.float32)
    x = torch.as_tensor(candidate_observations(action_set, states))
    moved = x.clone()
    moved[:, 1:] += 0.5  # other candidates at the same states
    for q_func in list(modules.q_funcs) + list(modules.targ_q_funcs):
        assert torch.equal(q_func(x).q_value, q_func(moved).q_value)
    if name == "SAQ-IQL":
        assert torch.equal(modules.value_func(x), modules.value_func(moved))
    # the critics are the networks they are on plain states: their first layer takes the state alone
    first = next(m for m in modules.q_funcs[0].modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == 1
    assert not torch.allclose(algo.impl.policy_log_probs(x), algo.impl.policy_log_probs(moved))


def test_saq_iql_s_density_policy_learns_the_noise_free_action_from_noisy_code_labels(trained_iql) -> None:
    action_set, data, algo = trained_iql
    states = np.linspace(-0.95, 0.95, 200, dtype=np.float32)[:, None]
    codes = algo.predict(candidate_observations(action_set, states))
    error = float(np.sqrt(((action_set.decode(states, codes) - action_set.centre(states)) ** 2).sum(1).mean()))
    noise = float(np.sqrt(((data.actions - action_set.centre(data.observations)) ** 2).sum(1).mean()))
    assert error < 0.5 * noise


def test_a_saved_density_saq_iql_loads_with_its_policy_and_scaler(trained_iql, tmp_path: Path) -> None:
    action_set, data, algo = trained_iql
    x = candidate_observations(action_set, data.observations[:64])
    path = tmp_path / "iql.d3"
    algo.save(str(path))
    loaded = d3rlpy.load_learnable(str(path))
    assert isinstance(loaded.config, DiscreteIQLConfig) and loaded.config.candidate_action_dim == D
    assert isinstance(loaded.config.observation_scaler, CandidateObservationScaler)
    assert np.array_equal(loaded.predict(x), algo.predict(x))
    assert np.allclose(loaded.predict_policy(x), algo.predict_policy(x))


def test_saq_brac_trains_its_density_actor_on_candidate_observations() -> None:
    action_set = ShiftingCandidates()
    data = noisy_demonstrations(action_set, n=600)
    labels = action_set.encode(data.observations, data.actions)
    d3rlpy.seed(0)
    algo = density_algo("SAQ-BRAC", action_set)
    x = candidate_observations(action_set, data.observations[:32])
    dataset = to_discrete_dataset(with_candidate_observations(data, action_set), labels, n_codes=K)
    quiet_fit(algo, dataset, 1)
    before = algo.predict_policy(x)
    metrics = quiet_fit(algo, dataset, 100)
    after = algo.predict_policy(x)
    assert np.isfinite(metrics[-1][1]["actor_loss"]) and not np.allclose(before, after)
    assert np.allclose(after.sum(1), 1.0, atol=1e-5)


def test_the_registry_builds_density_configs_for_policy_algorithms_only() -> None:
    action_set = ShiftingCandidates()
    for name, config_type in (("SAQ-IQL", DiscreteIQLConfig), ("SAQ-BRAC", DiscreteBRACConfig)):
        config = density_policy_config(name, action_set, hidden=(32,))
        assert isinstance(config, config_type) and config.candidate_action_dim == D
        assert config.observation_scaler.n_candidate_values == K * D
    with pytest.raises(DataError, match="not 'SAQ-CQL'"):
        density_policy_config("SAQ-CQL", action_set)


def test_observations_without_candidates_are_refused() -> None:
    algo = density_algo("SAQ-IQL", ShiftingCandidates())
    with pytest.raises(SpaceMismatchError, match="candidate observations"):
        algo.create_impl((5,), K)


@pytest.mark.parametrize("field, value", [("candidate_action_dim", -1), ("candidate_action_dim", 1.5),
                                          ("n_components", 0)])
@pytest.mark.parametrize("config_type", [DiscreteIQLConfig, DiscreteBRACConfig])
def test_bad_density_settings_are_refused(config_type: type, field: str, value: float) -> None:
    with pytest.raises(DataError, match=field):
        config_type(**{field: value})


@pytest.mark.parametrize("name", ["SAQ-IQL", "SAQ-BRAC", "SAQ-BC"])
def test_ddp_training_of_a_density_policy_is_refused_not_ignored(name: str) -> None:
    """A DistributedDataParallel wrapper would hide ``code_logits``: refused with a clear error at
    build time instead of training the policy unsynchronised."""
    from saq_wrappers.integrations.d3rlpy import saq_density_bc_config

    action_set = ShiftingCandidates()
    observation_shape = (3 + K * D,)
    if name == "SAQ-BC":
        config = saq_density_bc_config(action_set, hidden_units=(16,))
    else:
        config = PRESETS[name](hidden_units=(16,), **density_policy_settings(action_set))
    with pytest.raises(ValueError, match="enable_ddp"):
        config.create(device="cpu:0", enable_ddp=True).create_impl(observation_shape, K)
    config.create(device="cpu:0").create_impl(observation_shape, K)  # the same build without DDP
