"""SAQ-BC with the action-density policy (``DensityBC``) and the candidate observations it reads."""

from __future__ import annotations

from pathlib import Path

import d3rlpy
import numpy as np
import pytest
import torch

from saq_wrappers.candidate_observations import (
    candidate_observation_space,
    candidate_observations,
    split_candidate_observations,
    with_candidate_observations,
)
from saq_wrappers.errors import SpaceMismatchError
from saq_wrappers.integrations.d3rlpy import (
    CandidateObservationScaler,
    DensityBCConfig,
    code_weights,
    saq_bc_config,
    saq_density_bc_config,
    to_discrete_dataset,
)
from saq_wrappers.integrations.d3rlpy.evaluation import sample_codes
from saq_wrappers.transitions import Transitions
from tests.integrations.shifting_candidates import D, K, ShiftingCandidates, noisy_demonstrations
from tests.quiet_training import quiet_fit


@pytest.fixture(scope="module")
def trained() -> tuple[ShiftingCandidates, Transitions, d3rlpy.algos.DiscreteBC, d3rlpy.algos.DiscreteBC]:
    """The density policy and SAQ-BC's classifier trained alike on the same noisy labels."""
    action_set = ShiftingCandidates()
    data = noisy_demonstrations(action_set)
    labels = action_set.encode(data.observations, data.actions)
    d3rlpy.seed(0)
    density = saq_density_bc_config(action_set, hidden_units=(64, 64), learning_rate=3e-3).create(device="cpu:0")
    quiet_fit(density, to_discrete_dataset(with_candidate_observations(data, action_set), labels, n_codes=K), 1500)
    d3rlpy.seed(0)
    classifier = saq_bc_config(hidden_units=(64, 64), learning_rate=3e-3).create(device="cpu:0")
    quiet_fit(classifier, to_discrete_dataset(data, labels, n_codes=K), 1500)
    return action_set, data, density, classifier


def test_candidate_observations_are_the_state_then_every_candidate() -> None:
    action_set = ShiftingCandidates()
    obs = np.array([[0.3], [-0.7]], np.float32)
    x = candidate_observations(action_set, obs)
    assert x.shape == (2, 1 + K * D) and x.dtype == np.float32
    state, cands = split_candidate_observations(x, K, D)
    assert np.array_equal(state, obs) and np.array_equal(cands, action_set.candidates(obs)[0])
    assert candidate_observation_space(action_set).contains(x[0])


def test_a_datasets_candidates_are_decoded_at_its_next_observations_too() -> None:
    action_set = ShiftingCandidates()
    data = noisy_demonstrations(action_set, n=200)
    before = {k: v.copy() for k, v in data.to_dict().items()}
    extended = with_candidate_observations(data, action_set)
    assert np.array_equal(extended.observations, candidate_observations(action_set, data.observations))
    # every next observation, including each episode's last (not the next row's state)
    assert np.array_equal(extended.next_observations, candidate_observations(action_set, data.next_observations))
    assert all(np.array_equal(before[k], v) for k, v in data.to_dict().items()), "the input is never modified"


def test_the_density_policy_learns_the_noise_free_action_from_noisy_code_labels(trained) -> None:
    """Trained through d3rlpy on candidate observations (the state, then the codes' actions), the
    arg-max code lies near the demonstrator's mean action: half as far as a noisy sample at most,
    as near as SAQ-BC's index classifier gets on this easy data (the standard suite measures the
    two on real noisy demonstrations: ``benchmarks.diagnostics.density_policy``)."""
    action_set, data, density, classifier = trained
    states = np.linspace(-0.95, 0.95, 200, dtype=np.float32)[:, None]
    centre = action_set.centre(states)

    def error(codes: np.ndarray) -> float:
        return float(np.sqrt(((action_set.decode(states, codes) - centre) ** 2).sum(1).mean()))

    density_error = error(density.predict(candidate_observations(action_set, states)))
    noise = float(np.sqrt(((data.actions - action_set.centre(data.observations)) ** 2).sum(1).mean()))
    assert density_error < 0.5 * noise
    assert density_error < 1.1 * error(classifier.predict(states))


def test_save_load_round_trip_keeps_the_policy_and_the_scaler(trained, tmp_path: Path) -> None:
    action_set, data, density, _ = trained
    x = candidate_observations(action_set, data.observations[:64])
    path = tmp_path / "density.d3"
    density.save(str(path))
    loaded = d3rlpy.load_learnable(str(path))
    assert isinstance(loaded.config, DensityBCConfig) and loaded.config.n_components == 1
    assert isinstance(loaded.config.observation_scaler, CandidateObservationScaler)
    assert np.array_equal(loaded.predict(x), density.predict(x))
    assert np.allclose(code_weights(loaded)(x), code_weights(density)(x))


def test_the_scaler_standardizes_the_state_and_leaves_the_candidates_in_action_units(trained) -> None:
    action_set, data, density, _ = trained
    scaler = density.config.observation_scaler
    x = candidate_observations(action_set, data.observations[:32])
    scaled = scaler.transform_numpy(x)
    assert np.allclose(scaled[:, 1:], x[:, 1:], atol=1e-6)
    state = data.observations
    assert np.allclose(scaled[:, :1], (x[:, :1] - state.mean()) / (state.std() + scaler.eps), atol=1e-4)
    torch_scaled = scaler.transform(torch.as_tensor(x)).numpy()
    assert np.array_equal(torch_scaled[:, 1:], x[:, 1:])


def test_code_weights_are_the_density_over_codes(trained) -> None:
    action_set, data, density, _ = trained
    x = candidate_observations(action_set, data.observations[:16])
    weights = code_weights(density)(x)
    assert weights.shape == (16, K) and np.allclose(weights.sum(1), 1.0)
    assert np.array_equal(weights.argmax(1), density.predict(x))


def test_observations_without_candidates_are_refused() -> None:
    config = DensityBCConfig(candidate_action_dim=D)
    algo = config.create(device="cpu:0")
    with pytest.raises(SpaceMismatchError, match="candidate observations"):
        algo.create_impl((5,), K)


@pytest.mark.parametrize("field, value", [("candidate_action_dim", 0), ("n_components", 0), ("learning_rate", -1.0),
                                          ("likelihood", "labels")])
def test_bad_settings_are_refused(field: str, value: float) -> None:
    with pytest.raises(Exception, match=field):
        DensityBCConfig(**{"candidate_action_dim": D, field: value})


def test_sampled_saq_bc_draws_its_codes_from_the_classifier_not_its_arg_max(trained) -> None:
    """d3rlpy's ``DiscreteBC.sample_action`` returns the arg-max; SAQ-BC's sampled acting draws from
    the classifier (index or density policy) with torch's global generator."""
    action_set, data, density, classifier = trained
    for algo, x in ((classifier, data.observations[:1]),
                    (density, candidate_observations(action_set, data.observations[:1]))):
        probabilities = code_weights(algo)(x)[0]
        torch.manual_seed(0)
        draws = sample_codes(algo)(np.repeat(x, 4000, axis=0))
        frequencies = np.bincount(draws, minlength=K) / len(draws)
        assert np.abs(frequencies - probabilities).max() < 0.03
        assert probabilities.max() < 0.9 and len(set(draws.tolist())) > 1
        torch.manual_seed(0)
        assert np.array_equal(sample_codes(algo)(np.repeat(x, 4000, axis=0)), draws)  # torch's generator decides


def test_fitted_to_decoded_actions_the_density_lands_nearer_the_noise_free_action(trained, tmp_path: Path) -> None:
    """``likelihood="actions"``: the loss is the density's own negative log-likelihood of the
    label's decoded action (not the label's log-probability among the codes), and on the same
    noisy labels, data and training its arg-max code lies nearer the demonstrator's mean action
    than the code-label fit's (0.15 against 0.23 here; the nearest code's floor is 0.11)."""
    action_set, data, density, _ = trained
    labels = action_set.encode(data.observations, data.actions)
    observed = with_candidate_observations(data, action_set)
    d3rlpy.seed(0)
    fitted = saq_density_bc_config(action_set, likelihood="actions", hidden_units=(64, 64),
                                   learning_rate=3e-3).create(device="cpu:0")
    quiet_fit(fitted, to_discrete_dataset(observed, labels, n_codes=K), 1500)
    x = torch.as_tensor(fitted.config.observation_scaler.transform_numpy(observed.observations[:32]), dtype=torch.float32)
    codes = torch.as_tensor(labels[:32])
    loss = fitted.impl.compute_loss(x, codes).loss
    logits = fitted.impl._modules.imitator.code_logits(x)  # noqa: SLF001
    assert torch.allclose(loss, -logits.gather(1, codes[:, None]).mean())
    assert not torch.allclose(loss, torch.nn.functional.cross_entropy(logits, codes))

    states = np.linspace(-0.95, 0.95, 200, dtype=np.float32)[:, None]
    centre = action_set.centre(states)

    def error(algo: d3rlpy.algos.DiscreteBC) -> float:
        codes = algo.predict(candidate_observations(action_set, states))
        return float(np.sqrt(((action_set.decode(states, codes) - centre) ** 2).sum(1).mean()))

    assert error(fitted) < 0.8 * error(density)
    fitted.save(str(tmp_path / "fitted.d3"))
    loaded = d3rlpy.load_learnable(str(tmp_path / "fitted.d3"))
    assert loaded.config.likelihood == "actions" and torch.allclose(loaded.impl.compute_loss(x, codes).loss, loss)
