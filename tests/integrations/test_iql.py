"""DiscreteIQL (SAQ-IQL): SAQ eq. 10's policy, fitted by weighted likelihood (the default) or in
closed form, expectile regression, learning on a small MDP with a known optimal code, d3rlpy
save/load round trips, evaluators, bad input."""

from __future__ import annotations

from pathlib import Path

import d3rlpy
import gymnasium as gym
import numpy as np
import pytest
import torch

from saq_wrappers.integrations.d3rlpy.iql import (
    CLOSED_FORM,
    POLICY_EXTRACTIONS,
    WEIGHTED_LIKELIHOOD,
    DiscreteActionSpaceError,
    DiscreteIQL,
    DiscreteIQLConfig,
    advantage_weights,
    batch_kl_temperature,
    expectile_loss,
    iql_policy_logits,
    kl_constrained_temperature,
)

from quiet_training import quiet_fit
from small_iql import small_iql_config
from two_step_mdp import EYE, K, P_GOOD, R_GOOD, two_step_dataset, unseen_codes_dataset


def two_point_expectile(x0: float, x1: float, p1: float, tau: float) -> float:
    """Closed-form tau-expectile of the distribution {x1 w.p. p1, x0 otherwise}, x0 < x1."""
    return (tau * p1 * x1 + (1 - tau) * (1 - p1) * x0) / (tau * p1 + (1 - tau) * (1 - p1))


@pytest.fixture(scope="module")
def trained() -> DiscreteIQL:
    """SAQ-IQL on the two-step MDP with lambda = 1 and no KL budget: eq. 10 is then known in closed
    form at sG, and every eq. 10 weight stays below the clip."""
    d3rlpy.seed(0)  # torch, numpy (d3rlpy's batch sampling) and random
    algo = small_iql_config(temperature=1.0, kl_budget=None).create(device="cpu:0")
    quiet_fit(algo, two_step_dataset(), n_steps=1200)
    return algo


# ---- expectile regression ---------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.5, 0.7, 0.9])
def test_expectile_loss_is_minimized_at_the_expectile(tau: float) -> None:
    rng = np.random.default_rng(1)
    # (a) a two-point distribution with a closed-form expectile
    samples = torch.tensor(np.where(rng.random(20_000) < 0.3, 1.0, 0.2), dtype=torch.float64)
    expected = two_point_expectile(0.2, 1.0, float((samples == 1.0).double().mean()), tau)
    grid = torch.linspace(0.0, 1.2, 2401, dtype=torch.float64)
    losses = torch.stack([expectile_loss(samples - v, tau) for v in grid])
    assert float(grid[losses.argmin()]) == pytest.approx(expected, abs=1e-3)
    # (b) an exponential sample: the minimizer solves tau E(x-m)+ = (1-tau) E(m-x)+ (bisection)
    x = rng.exponential(size=20_000)
    lo, hi = x.min(), x.max()
    for _ in range(100):
        m = 0.5 * (lo + hi)
        if tau * np.maximum(x - m, 0).sum() > (1 - tau) * np.maximum(m - x, 0).sum():
            lo = m
        else:
            hi = m
    v = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optim = torch.optim.LBFGS([v], max_iter=200, line_search_fn="strong_wolfe")
    xt = torch.tensor(x)

    def closure() -> torch.Tensor:
        optim.zero_grad()
        loss = expectile_loss(xt - v, tau)
        loss.backward()
        return loss

    optim.step(closure)
    minimizer = float(v.detach())
    assert minimizer == pytest.approx(m, abs=1e-4)
    if tau == 0.5:
        assert minimizer == pytest.approx(x.mean(), abs=1e-4)


# ---- SAQ eq. 10 -------------------------------------------------------------------------------


def test_closed_form_policy_is_the_softmax_of_eq10_from_the_networks() -> None:
    d3rlpy.seed(3)  # torch, numpy (d3rlpy's batch sampling) and random
    # temperature 1 so no probability is numerically 0/1; a high clip so clipping is exercised
    algo = small_iql_config(
        temperature=0.7, log_behavior_min=-1.3, kl_budget=None, policy_extraction=CLOSED_FORM
    ).create(device="cpu:0")
    quiet_fit(algo, two_step_dataset(200), n_steps=50)
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    modules = algo.impl.modules
    with torch.no_grad():
        tx = torch.from_numpy(x)
        q_min = np.minimum.reduce([q(tx).q_value.numpy() for q in modules.targ_q_funcs])
        v = modules.value_func(tx).numpy()
        behavior_logits = modules.behavior_policy._fc(modules.behavior_policy._encoder(tx)).numpy()
    log_beta = behavior_logits - np.log(np.exp(behavior_logits).sum(axis=1, keepdims=True))
    assert (log_beta < -1.3).any(), "test must exercise the clip"
    logits = (q_min - v) / 0.7 + np.maximum(log_beta, -1.3)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)

    np.testing.assert_allclose(algo.predict_policy(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(algo.predict(x), expected.argmax(axis=1))
    # sample_action draws from the same distribution
    many = np.repeat(x[:1], 6000, axis=0)
    counts = np.bincount(algo.sample_action(many), minlength=K) / len(many)
    np.testing.assert_allclose(counts, expected[0], atol=0.03)
    # predict_value is Q(s, a) (mean of the critics), as d3rlpy does
    codes = np.arange(16) % K
    with torch.no_grad():
        q_mean = np.mean([q(tx).q_value.numpy() for q in modules.q_funcs], axis=0)
    np.testing.assert_allclose(algo.predict_value(x, codes), q_mean[np.arange(16), codes], rtol=1e-5)


def test_iql_policy_logits_function() -> None:
    q = torch.tensor([[1.0, 2.0, 0.0]])
    v = torch.tensor([0.5])
    log_beta = torch.log(torch.tensor([[0.5, 0.5 - 1e-6, 1e-6]]))
    logits = iql_policy_logits(q, v, log_beta, temperature=0.5, log_behavior_min=-8.0)
    expected = torch.tensor([[1.0, 3.0, -1.0]]) + torch.tensor([[np.log(0.5), np.log(0.5 - 1e-6), -8.0]])
    # the logits are eq. 10 up to a per-state constant (the clipped pi_beta is renormalized)
    torch.testing.assert_close(torch.log_softmax(logits, 1), torch.log_softmax(expected.float(), 1))


def _kl(logits: torch.Tensor, log_beta: torch.Tensor) -> torch.Tensor:
    log_pi = torch.log_softmax(logits, 1)
    return (log_pi.exp() * (log_pi - log_beta)).sum(1)


def test_kl_constrained_temperature_solves_eq9_exactly() -> None:
    d3rlpy.seed(0)  # torch, numpy (d3rlpy's batch sampling) and random
    advantages = 5 * torch.randn(256, 16, dtype=torch.float64)
    log_beta = torch.log_softmax(2 * torch.randn(256, 16, dtype=torch.float64), 1)
    for budget in (0.01, 0.1, 1.0):
        lam = kl_constrained_temperature(advantages, log_beta, min_temperature=0.1, kl_budget=budget)
        kl = _kl(advantages / lam + log_beta, log_beta)
        active = lam.view(-1) > 0.1
        # eq. 9's constraint holds everywhere and is active (KL = budget) where lambda was raised
        assert (kl <= budget * (1 + 1e-6)).all()
        torch.testing.assert_close(kl[active], torch.full_like(kl[active], budget), rtol=1e-4, atol=0)
        # where the floor lambda already satisfies the budget, it is kept
        assert (_kl(advantages[~active] / 0.1 + log_beta[~active], log_beta[~active]) <= budget).all()
        assert active.any()
    # no rows: an empty (0, 1) answer
    assert kl_constrained_temperature(advantages[:0], log_beta[:0], 0.1, 0.1).shape == (0, 1)


def test_config_is_validated() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="kl_budget"):
            DiscreteIQLConfig(kl_budget=bad)
        with pytest.raises(ValueError, match="max_weight"):
            DiscreteIQLConfig(max_weight=bad)
    with pytest.raises(ValueError, match="temperature"):
        DiscreteIQLConfig(temperature=0.0)
    with pytest.raises(ValueError, match="policy_extraction must be one of weighted_likelihood, closed_form"):
        DiscreteIQLConfig(policy_extraction="awr")
    assert DiscreteIQLConfig().policy_extraction == WEIGHTED_LIKELIHOOD


def test_advantage_weights_are_eq10_tilts_clipped_at_max_weight() -> None:
    advantages = torch.tensor([-1.0, 0.0, 0.2, 1.0])
    torch.testing.assert_close(
        advantage_weights(advantages, temperature=0.5, max_weight=5.0),
        torch.tensor([np.exp(-2.0), 1.0, np.exp(0.4), 5.0], dtype=torch.float32),
    )


def test_batch_kl_temperature_keeps_the_weighted_batch_within_the_budget() -> None:
    d3rlpy.seed(0)  # torch, numpy (d3rlpy's batch sampling) and random
    advantages = 3.0 * torch.randn(512, dtype=torch.float64)
    for budget in (0.03, 0.1, 0.5):
        lam = batch_kl_temperature(advantages, min_temperature=0.1, kl_budget=budget)
        assert lam.shape == (1, 1) and float(lam) > 0.1
        weighted = torch.softmax(advantages / lam.view(()), dim=0)
        kl = float((weighted * torch.log(weighted * len(advantages))).sum())
        assert kl == pytest.approx(budget, rel=1e-3)
    # a batch whose weights are already mild at the floor keeps the floor
    assert float(batch_kl_temperature(0.001 * advantages, 0.1, 0.1)) == pytest.approx(0.1)


def test_weighted_likelihood_fits_eq10_at_the_data_codes(trained: DiscreteIQL) -> None:
    # In sG the critics' targets are the rewards (terminal), so eq. 10 is known in closed form:
    # pi(k|sG) ∝ P_GOOD[k] exp(R_GOOD[k] / lambda) on the data's codes 0-2 (V(sG) cancels), and 0
    # on code 3, which the data never takes.
    expected = np.asarray(P_GOOD) * np.exp(R_GOOD / trained.config.temperature)
    expected /= expected.sum()
    probs = trained.predict_policy(EYE[1:2])[0]
    # the actor's minibatch noise moves it up to 0.07 from eq. 10 (seeds 0-2, 750-2,000 updates);
    # pi_beta itself is 0.19 away
    np.testing.assert_allclose(probs[:3], expected, atol=0.08)
    assert probs[3] < 0.01
    # the fitted policy is not pi_beta: it moves mass onto the better code
    assert probs[1] > P_GOOD[1] + 0.12


@pytest.mark.parametrize("extraction", POLICY_EXTRACTIONS)
def test_eq10_never_picks_codes_the_data_never_takes(extraction: str) -> None:
    dataset = unseen_codes_dataset()
    states = np.concatenate([episode.observations for episode in dataset.episodes])[::20]
    seen = np.concatenate([episode.actions for episode in dataset.episodes]).reshape(-1)[::20]
    d3rlpy.seed(0)  # torch, numpy (d3rlpy's batch sampling) and random
    algo = small_iql_config(policy_extraction=extraction, fit_behavior_policy=True).create(device="cpu:0")
    quiet_fit(algo, dataset, n_steps=600)
    # the premise: unseen codes look better than the data's code to the critic
    q = algo.predict_value(np.repeat(states, K, axis=0), np.tile(np.arange(K), len(states))).reshape(-1, K)
    assert (q[:, 2:].max(axis=1) > q[np.arange(len(states)), seen] + 3).all()
    picks = algo.predict(states)
    probs = algo.predict_policy(states)
    np.testing.assert_array_equal(picks, seen)
    assert probs[:, 2:].sum(axis=1).max() < 0.05
    assert np.isin(algo.sample_action(np.repeat(states, 50, axis=0)), [2, 3]).mean() < 0.05
    # the authors' fixed lambda = 0.1 on the same networks follows the extrapolation (the collapse)
    x = torch.from_numpy(states)
    modules = algo.impl.modules
    with torch.no_grad():
        q_min = torch.minimum(*[f(x).q_value for f in modules.targ_q_funcs])
        logits = iql_policy_logits(q_min, modules.value_func(x), modules.behavior_policy(x).logits, 0.1, -8.0, None)
    assert (logits.argmax(1).numpy() >= 2).mean() > 0.9


# ---- learning ---------------------------------------------------------------------------------


def test_learns_the_optimal_codes_and_the_expectile_value(trained: DiscreteIQL) -> None:
    # optimal code 0 at s0 (leads to sG), code 1 at sG, although the data mostly holds others
    assert list(trained.predict(EYE[:2])) == [0, 1]
    probs = trained.predict_policy(EYE)
    assert probs[0, 0] > 0.4 and probs[1, 1] > 0.4
    # the never-seen code 3 gets (almost) no mass anywhere
    assert probs[:, 3].max() < 0.05
    # V(sG) is the 0.8-expectile of Q(sG, code) under the behavior codes, not their mean (0.44)
    with torch.no_grad():
        v_good = float(trained.impl.modules.value_func(torch.from_numpy(EYE[1:2])))
    assert v_good == pytest.approx(two_point_expectile(0.2, 1.0, P_GOOD[1], 0.8), abs=0.08)
    # Q(sG, k) are the rewards (one-step, terminal)
    q_good = [float(trained.predict_value(EYE[1:2], np.array([k]))[0]) for k in range(3)]
    np.testing.assert_allclose(q_good, R_GOOD, atol=0.08)


# ---- d3rlpy integration ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # Categorical arg checks
def test_save_load_learnable_and_save_model_round_trip(trained: DiscreteIQL, tmp_path: Path) -> None:
    x = np.random.default_rng(5).normal(size=(32, 3)).astype(np.float32)
    codes = np.arange(32) % K
    # d3rlpy's TorchScript export of the greedy policy (our own file, written just now)
    trained.save_policy(str(tmp_path / "policy.pt"))
    scripted = torch.jit.load(str(tmp_path / "policy.pt"))
    np.testing.assert_array_equal(scripted(torch.from_numpy(x)).numpy(), trained.predict(x))
    path = tmp_path / "iql.d3"
    trained.save(str(path))
    loaded = d3rlpy.load_learnable(str(path), device="cpu:0")
    assert isinstance(loaded, DiscreteIQL)
    assert loaded.config.expectile == 0.8 and loaded.config.temperature == 1.0
    np.testing.assert_array_equal(loaded.predict(x), trained.predict(x))
    np.testing.assert_array_equal(loaded.predict_value(x, codes), trained.predict_value(x, codes))
    np.testing.assert_array_equal(loaded.predict_policy(x), trained.predict_policy(x))

    weights = tmp_path / "iql.pt"
    trained.save_model(str(weights))
    fresh = small_iql_config().create(device="cpu:0")
    fresh.build_with_dataset(two_step_dataset(10))
    assert not np.array_equal(fresh.predict_policy(x), trained.predict_policy(x))
    fresh.load_model(str(weights))
    np.testing.assert_array_equal(fresh.predict_policy(x), trained.predict_policy(x))
    np.testing.assert_array_equal(fresh.predict_value(x, codes), trained.predict_value(x, codes))


def test_fit_with_d3rlpy_evaluators_logs_them() -> None:
    algo = small_iql_config().create(device="cpu:0")
    results = quiet_fit(
        algo,
        two_step_dataset(100),
        n_steps=40,
        n_steps_per_epoch=20,
        evaluators={
            "td_error": d3rlpy.metrics.TDErrorEvaluator(),
            "value_scale": d3rlpy.metrics.AverageValueEstimationEvaluator(),
        },
    )
    assert [epoch for epoch, _ in results] == [1, 2]
    for _, metrics in results:
        assert np.isfinite(metrics["td_error"]) and np.isfinite(metrics["value_scale"])
        assert {"q_loss", "v_loss", "policy_loss"} <= set(metrics)


# ---- bad input --------------------------------------------------------------------------------


def test_continuous_dataset_is_rejected_with_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    dataset = d3rlpy.dataset.MDPDataset(
        rng.normal(size=(50, 3)).astype(np.float32),
        rng.uniform(-1, 1, size=(50, 2)).astype(np.float32),
        np.zeros(50, dtype=np.float32),
        np.r_[np.zeros(49), 1.0].astype(np.float32),
    )
    algo = small_iql_config().create(device="cpu:0")
    with pytest.raises(DiscreteActionSpaceError, match="discrete-action algorithm.*CONTINUOUS") as info:
        quiet_fit(algo, dataset, n_steps=10)
    assert isinstance(info.value, AssertionError) and isinstance(info.value, ValueError)
    assert "to_discrete_dataset" in str(info.value)
    with pytest.raises(DiscreteActionSpaceError):
        algo.build_with_dataset(dataset)
    with pytest.raises(DiscreteActionSpaceError, match="SAQActionWrapper"):
        algo.build_with_env(gym.make("Pendulum-v1"))
    assert algo.impl is None


def test_weighted_fit_trains_no_behavior_policy_and_the_switch_changes_no_other_network() -> None:
    """The weighted fit of eq. 10 never reads pi_beta, so by default it is not fitted (a fifth of
    each update's time); fitting it for diagnostics leaves the other networks bit for bit as they
    are, from their initial weights on."""
    dataset = two_step_dataset(200)
    trained = {}
    for fit_behavior in (False, True):
        d3rlpy.seed(3)
        algo = small_iql_config(fit_behavior_policy=fit_behavior).create(device="cpu:0")
        metrics = quiet_fit(algo, dataset, n_steps=30)
        trained[fit_behavior] = algo.impl.modules
        assert ("behavior_loss" in metrics[-1][1]) is fit_behavior
    assert trained[False].behavior_policy is None and trained[False].behavior_optim is None
    assert trained[True].behavior_policy is not None
    for name in ("q_funcs", "targ_q_funcs", "value_func", "policy"):
        without, with_behavior = (dict(getattr(trained[flag], name).state_dict()) for flag in (False, True))
        assert all(torch.equal(without[key], with_behavior[key]) for key in without), name
    with pytest.raises(ValueError, match="fit_behavior_policy"):
        small_iql_config(fit_behavior_policy="yes")


def test_policy_step_reuses_the_critic_steps_target_q_and_gets_the_same_model() -> None:
    """The policy's advantage reads min_j Qbar_j(s, k) from the critic step of the same update
    (the target critics move only at its end): the trained networks are bit for bit those of
    updates that compute it again."""
    dataset = two_step_dataset(200)
    trained = []
    for reuse in (True, False):
        d3rlpy.seed(5)
        algo = small_iql_config().create(device="cpu:0")
        algo.build_with_dataset(dataset)
        impl = algo.impl
        if not reuse:
            compute = impl.compute_policy_grad

            def recompute(batch: object, compute: object = compute, impl: object = impl) -> object:
                impl._dataset_target_q = None  # type: ignore[attr-defined]  # force the second evaluation
                return compute(batch)  # type: ignore[operator]

            impl._compute_policy_grad = recompute  # noqa: SLF001
        quiet_fit(algo, dataset, n_steps=25)
        trained.append(impl.modules)
    for name in ("q_funcs", "value_func", "policy"):
        reused, recomputed = (dict(getattr(modules, name).state_dict()) for modules in trained)
        assert all(torch.equal(reused[key], recomputed[key]) for key in reused), name
