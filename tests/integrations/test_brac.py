"""DiscreteBRAC (SAQ-BRAC): exact KL / critic target / actor objective against explicit sums
(SAQ eqs. 2-4), learning on a small MDP with a known optimal code, d3rlpy round trips, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import d3rlpy
import numpy as np
import pytest
import torch

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy.brac import (
    DiscreteBRAC,
    DiscreteBRACConfig,
    behavior_phase_steps,
    brac_critic_target,
    brac_soft_value,
    categorical_kl,
)
from saq_wrappers.integrations.d3rlpy.discrete import DiscreteActionSpaceError

from quiet_training import quiet_fit
from two_step_mdp import EYE, K, R_GOOD, two_step_dataset, unseen_codes_dataset


def small_config(**overrides: object) -> DiscreteBRACConfig:
    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=[64, 64])
    settings: dict[str, object] = dict(
        batch_size=128,
        actor_learning_rate=1e-3,
        critic_learning_rate=1e-3,
        behavior_learning_rate=1e-3,
        beta=0.1,
        alpha=0.1,
        tau=0.02,
        behavior_pretrain_fraction=0.2,
        actor_encoder_factory=encoder,
        critic_encoder_factory=encoder,
        behavior_encoder_factory=encoder,
    )
    settings.update(overrides)
    return DiscreteBRACConfig(**settings)  # type: ignore[arg-type]


def random_log_probs(rng: np.random.Generator, shape: tuple[int, int]) -> torch.Tensor:
    logits = torch.tensor(rng.normal(scale=2.0, size=shape))
    return torch.log_softmax(logits, dim=-1)


@pytest.fixture(scope="module")
def trained() -> DiscreteBRAC:
    """Eqs. 3-4 as printed with the constant beta (no KL budget), whose fixed point the tests know
    exactly."""
    torch.manual_seed(0)
    algo = small_config(kl_budget=None, entropy_in_target=False).create(device="cpu:0")
    quiet_fit(algo, two_step_dataset(), n_steps=1500)
    return algo


# ---- the math against explicit loops ------------------------------------------------------


def test_kl_soft_value_and_target_equal_explicit_sums() -> None:
    rng = np.random.default_rng(0)
    B, k = 5, 6
    log_pi, log_beta = random_log_probs(rng, (B, k)), random_log_probs(rng, (B, k))
    q = torch.tensor(rng.normal(size=(B, k)))
    rewards, terminals = torch.tensor(rng.normal(size=(B, 1))), torch.tensor([[0.0], [1.0], [0.0], [0.0], [1.0]], dtype=torch.float64)
    beta, alpha, gamma = 0.7, 0.3, 0.9
    for b in range(B):
        pi = [math.exp(float(log_pi[b, i])) for i in range(k)]
        kl = sum(pi[i] * (float(log_pi[b, i]) - float(log_beta[b, i])) for i in range(k))
        assert float(categorical_kl(log_pi, log_beta)[b]) == pytest.approx(kl, rel=1e-10)
        soft = sum(pi[i] * (float(q[b, i]) + beta * float(log_beta[b, i]) - alpha * float(log_pi[b, i])) for i in range(k))
        assert float(brac_soft_value(q, log_pi, log_beta, beta, alpha)[b]) == pytest.approx(soft, rel=1e-10)
        # SAQ eq. 3 as printed: no -alpha log pi term in the target
        eq3 = sum(pi[i] * (float(q[b, i]) + beta * float(log_beta[b, i])) for i in range(k))
        y = float(rewards[b]) + gamma * (1 - float(terminals[b])) * eq3
        target = brac_critic_target(rewards, terminals, gamma, q, log_pi, log_beta, beta)
        assert float(target[b]) == pytest.approx(y, rel=1e-10)


def test_sign_conventions_against_kl() -> None:
    """sum pi [Q + beta log pi_beta - alpha log pi] = E_pi Q - beta KL + (alpha - beta) H(pi)."""
    rng = np.random.default_rng(1)
    log_pi, log_beta = random_log_probs(rng, (7, 5)), random_log_probs(rng, (7, 5))
    q = torch.tensor(rng.normal(size=(7, 5)))
    pi = log_pi.exp()
    expected_q = (pi * q).sum(-1)
    entropy = -(pi * log_pi).sum(-1)
    kl = categorical_kl(log_pi, log_beta)
    for beta, alpha in [(0.5, 0.5), (0.5, 0.0), (0.2, 1.0)]:
        torch.testing.assert_close(
            brac_soft_value(q, log_pi, log_beta, beta, alpha), expected_q - beta * kl + (alpha - beta) * entropy
        )
    # alpha == beta: exactly BRAC-v's KL-regularized objective
    torch.testing.assert_close(brac_soft_value(q, log_pi, log_beta, 0.5, 0.5), expected_q - 0.5 * kl)


@pytest.mark.parametrize("entropy_in_target", [True, False])
def test_impl_target_and_actor_loss_use_the_networks_exactly(entropy_in_target: bool) -> None:
    """The default target is BRAC-v's E_pi[Qbar] - beta KL (alpha == beta); False is eq. 3 as printed."""
    torch.manual_seed(2)
    algo = small_config(behavior_pretrain_steps=5, kl_budget=None, entropy_in_target=entropy_in_target).create(device="cpu:0")
    dataset = two_step_dataset(100)
    quiet_fit(algo, dataset, n_steps=30)
    impl, modules, cfg = algo.impl, algo.impl.modules, algo.config
    batch = dataset.sample_transition_batch(32)
    tb = d3rlpy.torch_utility.TorchMiniBatch.from_batch(batch, gamma=cfg.gamma, compute_returns_to_go=False, device="cpu:0")
    with torch.no_grad():
        s, s2 = tb.observations, tb.next_observations
        q_next = torch.minimum(*[q(s2).q_value for q in modules.targ_q_funcs])
        pi_next = torch.softmax(modules.policy._fc(modules.policy._encoder(s2)), -1)
        beta_next = torch.softmax(modules.behavior_policy._fc(modules.behavior_policy._encoder(s2)), -1)
        q_now = torch.minimum(*[q(s).q_value for q in modules.q_funcs])
        pi_now = torch.softmax(modules.policy._fc(modules.policy._encoder(s)), -1)
        beta_now = torch.softmax(modules.behavior_policy._fc(modules.behavior_policy._encoder(s)), -1)
        target = impl.compute_target(tb)
        losses = impl.compute_actor_loss(s)
    for b in range(32):
        entropy = cfg.alpha if entropy_in_target else 0.0
        inner = sum(float(pi_next[b, k]) * (float(q_next[b, k]) + cfg.beta * math.log(float(beta_next[b, k]))
                                            - entropy * math.log(float(pi_next[b, k]))) for k in range(K))
        y = float(tb.rewards[b]) + cfg.gamma * (1 - float(tb.terminals[b])) * inner
        assert float(target[b]) == pytest.approx(y, rel=1e-4, abs=1e-5)
    objective = np.mean(
        [
            sum(
                float(pi_now[b, k])
                * (float(q_now[b, k]) + cfg.beta * math.log(float(beta_now[b, k])) - cfg.alpha * math.log(float(pi_now[b, k])))
                for k in range(K)
            )
            for b in range(32)
        ]
    )
    assert float(losses["actor_loss"]) == pytest.approx(-objective, rel=1e-4, abs=1e-5)
    kl = np.mean([sum(float(pi_now[b, k]) * math.log(float(pi_now[b, k] / beta_now[b, k])) for k in range(K)) for b in range(32)])
    assert float(losses["kl"]) == pytest.approx(kl, rel=1e-4, abs=1e-6)


def _kl_of_optimum(q: torch.Tensor, log_beta: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """KL(pi* || pi_beta) of eq. 4's optimum pi* ∝ pi_beta exp(Q / beta) (alpha == beta)."""
    log_pi = torch.log_softmax(q / beta + log_beta, 1)
    return (log_pi.exp() * (log_pi - log_beta)).sum(1)


def test_kl_budget_sets_eq4_weights_per_state() -> None:
    torch.manual_seed(3)
    algo = small_config(behavior_pretrain_steps=5, kl_budget=0.1).create(device="cpu:0")
    dataset = two_step_dataset(100)
    quiet_fit(algo, dataset, n_steps=30)
    impl, modules, cfg = algo.impl, algo.impl.modules, algo.config
    # weights: beta(s) >= beta, alpha scaled alike, and eq. 4's optimum then meets the budget
    q = 10 * torch.randn(64, K, dtype=torch.float64)
    log_beta = torch.log_softmax(2 * torch.randn(64, K, dtype=torch.float64), 1)
    beta, alpha = impl.actor_weights(q, log_beta)
    assert beta.shape == (64, 1) and (beta >= cfg.beta).all() and (beta > cfg.beta).any()
    torch.testing.assert_close(alpha, cfg.alpha * beta / cfg.beta)
    assert (_kl_of_optimum(q, log_beta, beta) <= 0.1 * (1 + 1e-6)).all()
    assert (_kl_of_optimum(q, log_beta, torch.tensor(cfg.beta)) > 0.1).any()  # the constant beta breaks it
    # the actor loss is eq. 4 with those per-state weights, exactly over the codes
    s = torch.from_numpy(EYE)
    with torch.no_grad():
        q_now = torch.minimum(*[f(s).q_value for f in modules.q_funcs])
        log_pi_beta = modules.behavior_policy(s).logits
        log_pi = modules.policy(s).logits
        beta_s, alpha_s = impl.actor_weights(q_now, log_pi_beta)
        loss = impl.compute_actor_loss(s)["actor_loss"]
    explicit = (log_pi.exp() * (q_now + beta_s * log_pi_beta - alpha_s * log_pi)).sum(1).mean()
    assert float(loss) == pytest.approx(-float(explicit), rel=1e-5, abs=1e-6)


def test_kl_budget_is_validated() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="kl_budget"):
            DiscreteBRACConfig(kl_budget=bad)
    with pytest.raises(ValueError, match="beta"):
        DiscreteBRACConfig(beta=0.0)
    assert DiscreteBRACConfig(beta=0.0, kl_budget=None).beta == 0.0  # eq. 4 without the KL stays legal


def test_actor_never_moves_onto_codes_the_data_never_takes() -> None:
    """The SAQ-BRAC collapse in miniature: with a constant beta the actor follows the untrained
    critics onto codes the data never takes; under the default KL budget it stays on the data's."""
    dataset = unseen_codes_dataset()
    states = np.concatenate([episode.observations for episode in dataset.episodes])[::20]
    seen = np.concatenate([episode.actions for episode in dataset.episodes]).reshape(-1)[::20]
    picks = {}
    for budget in (DiscreteBRACConfig().kl_budget, None):
        torch.manual_seed(0)
        algo = small_config(kl_budget=budget).create(device="cpu:0")
        quiet_fit(algo, dataset, n_steps=800)
        q = algo.predict_value(np.repeat(states, K, axis=0), np.tile(np.arange(K), len(states))).reshape(-1, K)
        # the premise: unseen codes look better than the data's code to the critic
        assert (q[:, 2:].max(axis=1) > q[np.arange(len(states)), seen] + 3).all()
        picks[budget] = (algo.predict(states), algo.predict_policy(states))
        if budget is not None:
            with torch.no_grad():
                observations = torch.as_tensor(states, dtype=torch.float32)
                behavior_log_probs = algo.impl.modules.behavior_policy(observations).logits.numpy()
    default_picks, default_probs = picks[DiscreteBRACConfig().kl_budget]
    np.testing.assert_array_equal(default_picks, seen)
    # KL(pi || pi_beta) <= eps keeps pi's mass on the unseen codes within Pinsker's sqrt(eps / 2)
    # of pi_beta's (which a learned pi_beta keeps small, not 0)
    unseen_beta = np.exp(behavior_log_probs[:, 2:]).sum(axis=1)
    assert (default_probs[:, 2:].sum(axis=1) - unseen_beta).max() <= math.sqrt(DiscreteBRACConfig().kl_budget / 2)
    assert default_probs[:, 2:].sum(axis=1).max() < 0.1
    constant_picks, _ = picks[None]
    assert np.isin(constant_picks, [2, 3]).mean() > 0.9


def test_behavior_pretraining_phase_only_trains_pi_beta() -> None:
    algo = small_config(behavior_pretrain_steps=20).create(device="cpu:0")
    dataset = two_step_dataset(100)
    algo.build_with_dataset(dataset)
    actor_before = [p.clone() for p in algo.impl.modules.policy.parameters()]
    critic_before = [p.clone() for p in algo.impl.modules.q_funcs.parameters()]
    beta_before = [p.clone() for p in algo.impl.modules.behavior_policy.parameters()]
    for _ in range(20):
        metrics = algo.update(dataset.sample_transition_batch(32))
    assert set(metrics) == {"behavior_loss"}
    assert all(torch.equal(a, b) for a, b in zip(actor_before, algo.impl.modules.policy.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(critic_before, algo.impl.modules.q_funcs.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(beta_before, algo.impl.modules.behavior_policy.parameters()))
    beta_frozen = [p.clone() for p in algo.impl.modules.behavior_policy.parameters()]
    metrics = algo.update(dataset.sample_transition_batch(32))
    assert {"critic_loss", "actor_loss", "kl"} <= set(metrics) and "behavior_loss" not in metrics
    assert all(torch.equal(a, b) for a, b in zip(beta_frozen, algo.impl.modules.behavior_policy.parameters()))


@pytest.mark.parametrize(
    ("n_steps", "fraction", "expected"),
    [(10, 0.1, 1), (4, 0.1, 1), (2, 0.5, 1), (2, 0.9, 1), (100, 0.2, 20), (100, 0.999, 99), (1, 0.1, 0), (100, 0.0, 0)],
)
def test_behavior_phase_is_a_fraction_of_the_run_leaving_steps_for_each_phase(
    n_steps: int, fraction: float, expected: int
) -> None:
    assert behavior_phase_steps(n_steps, fraction) == expected
    assert behavior_phase_steps(n_steps, fraction, override=7) == 7  # a fixed length wins


def test_bad_behavior_phase_settings_are_rejected() -> None:
    for fraction in (-0.1, 1.0):
        with pytest.raises(DataError, match="behavior_pretrain_fraction"):
            behavior_phase_steps(10, fraction)
    with pytest.raises(DataError, match="behavior_pretrain_steps"):
        behavior_phase_steps(10, 0.1, override=-1)


def trained_networks(algo: DiscreteBRAC) -> dict[str, list[torch.Tensor]]:
    modules = algo.impl.modules
    return {name: [p.detach().clone() for p in getattr(modules, name).parameters()] for name in ("policy", "q_funcs", "behavior_policy")}


def test_the_default_trains_every_network_at_every_step() -> None:
    """Joint pi_beta training by default: no step of a fit updates pi_beta alone."""
    torch.manual_seed(0)
    assert DiscreteBRACConfig().entropy_in_target is True
    algo = small_config(behavior_pretrain_fraction=DiscreteBRACConfig().behavior_pretrain_fraction).create(device="cpu:0")
    results = quiet_fit(algo, two_step_dataset(100), n_steps=5, n_steps_per_epoch=1)
    assert all({"behavior_loss", "critic_loss", "actor_loss"} <= set(m) for _, m in results)


def test_every_fit_trains_every_network_with_a_fraction() -> None:
    """fit(n_steps=10) with a 10% phase: 1 pi_beta-only step, then 9 critic/actor steps;
    a later fit of 20 steps has its own phase of 2 steps, from the current grad step."""
    torch.manual_seed(0)
    algo = small_config(behavior_pretrain_fraction=0.1).create(device="cpu:0")
    dataset = two_step_dataset(100)
    algo.build_with_dataset(dataset)  # the phase must also reach an impl built before fit
    before = trained_networks(algo)
    trained = {"behavior_loss", "critic_loss", "actor_loss"}
    results = quiet_fit(algo, dataset, n_steps=10, n_steps_per_epoch=1)
    assert [set(m) & trained for _, m in results] == [{"behavior_loss"}] + [{"critic_loss", "actor_loss"}] * 9
    after = trained_networks(algo)
    for name in before:
        assert not all(torch.equal(a, b) for a, b in zip(before[name], after[name])), f"{name} was not trained"
    results = quiet_fit(algo, dataset, n_steps=20, n_steps_per_epoch=1)
    assert [set(m) & trained for _, m in results] == [{"behavior_loss"}] * 2 + [{"critic_loss", "actor_loss"}] * 18
    # one step: no room for two phases, so everything trains jointly
    results = quiet_fit(algo, dataset, n_steps=1)
    assert set(results[0][1]) >= trained


# ---- learning -------------------------------------------------------------------------------


def test_learns_the_optimal_codes(trained: DiscreteBRAC) -> None:
    assert list(trained.predict(EYE[:2])) == [0, 1]
    probs = trained.predict_policy(EYE)
    assert probs[0, 0] > 0.9 and probs[1, 1] > 0.9
    # the KL keeps the never-seen code 3 out, also in the dead state where Q is flat
    assert probs[:, 3].max() < 0.05
    np.testing.assert_allclose(probs[2, :3], [1 / 3] * 3, atol=0.1)
    q_good = trained.predict_value(np.repeat(EYE[1:2], 3, 0), np.arange(3))
    np.testing.assert_allclose(q_good, R_GOOD, atol=0.08)
    # Q(s0, 0) = gamma * sum_k pi(k|sG) [Q(sG,k) + beta log pi_beta(k|sG)] ~ 0.99 (1 + 0.1 log 0.3)
    q_start = float(trained.predict_value(EYE[:1], np.array([0]))[0])
    assert q_start == pytest.approx(0.99 * (1 + 0.1 * math.log(0.3)), abs=0.08)


# ---- d3rlpy integration ---------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # Categorical arg checks
def test_save_load_learnable_and_save_model_round_trip(trained: DiscreteBRAC, tmp_path: Path) -> None:
    x = np.random.default_rng(5).normal(size=(32, 3)).astype(np.float32)
    codes = np.arange(32) % K
    # d3rlpy's TorchScript export of the greedy policy (our own file, written just now)
    trained.save_policy(str(tmp_path / "policy.pt"))
    scripted = torch.jit.load(str(tmp_path / "policy.pt"))
    np.testing.assert_array_equal(scripted(torch.from_numpy(x)).numpy(), trained.predict(x))
    path = tmp_path / "brac.d3"
    trained.save(str(path))
    loaded = d3rlpy.load_learnable(str(path), device="cpu:0")
    assert isinstance(loaded, DiscreteBRAC) and loaded.config.beta == 0.1
    np.testing.assert_array_equal(loaded.predict(x), trained.predict(x))
    np.testing.assert_array_equal(loaded.predict_value(x, codes), trained.predict_value(x, codes))
    np.testing.assert_array_equal(loaded.predict_policy(x), trained.predict_policy(x))

    weights = tmp_path / "brac.pt"
    trained.save_model(str(weights))
    fresh = small_config().create(device="cpu:0")
    fresh.build_with_dataset(two_step_dataset(10))
    fresh.load_model(str(weights))
    np.testing.assert_array_equal(fresh.predict_policy(x), trained.predict_policy(x))
    np.testing.assert_array_equal(fresh.predict_value(x, codes), trained.predict_value(x, codes))
    counts = np.bincount(fresh.sample_action(np.repeat(EYE[2:3], 3000, 0)), minlength=K) / 3000
    np.testing.assert_allclose(counts, trained.predict_policy(EYE[2:3])[0], atol=0.04)


def test_fit_with_d3rlpy_evaluators_logs_them() -> None:
    algo = small_config(behavior_pretrain_steps=10).create(device="cpu:0")
    results = quiet_fit(
        algo,
        two_step_dataset(100),
        n_steps=40,
        n_steps_per_epoch=20,
        evaluators={"td_error": d3rlpy.metrics.TDErrorEvaluator()},
    )
    assert [epoch for epoch, _ in results] == [1, 2]
    assert all(np.isfinite(metrics["td_error"]) for _, metrics in results)
    assert {"critic_loss", "actor_loss", "kl"} <= set(results[-1][1])


def test_fit_warns_when_a_fixed_behavior_phase_outlasts_the_run() -> None:
    algo = small_config(behavior_pretrain_steps=50).create(device="cpu:0")
    with pytest.warns(UserWarning, match="pi_beta first phase"):
        quiet_fit(algo, two_step_dataset(50), n_steps=20)


def test_continuous_dataset_is_rejected_with_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    dataset = d3rlpy.dataset.MDPDataset(
        rng.normal(size=(50, 3)).astype(np.float32),
        rng.uniform(-1, 1, size=(50, 2)).astype(np.float32),
        np.zeros(50, dtype=np.float32),
        np.r_[np.zeros(49), 1.0].astype(np.float32),
    )
    algo = small_config().create(device="cpu:0")
    with pytest.raises(DiscreteActionSpaceError, match="DiscreteBRAC is a discrete-action algorithm"):
        quiet_fit(algo, dataset, n_steps=10)
    with pytest.raises(AssertionError, match="CONTINUOUS"):
        algo.build_with_dataset(dataset)
