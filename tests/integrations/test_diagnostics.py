"""CQL penalty diagnostic (SAQ sec. 4.3): exact discrete penalty vs brute force, convergence of
the continuous reference estimate on Q-functions with a closed-form log-integral-exp, agreement
of the sampled estimate with d3rlpy's own CQL estimator, and logging during ``fit``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import d3rlpy
import numpy as np
import pytest
import torch

from saq_wrappers.integrations.d3rlpy.diagnostics import (
    CQLPenaltyMonitor,
    PenaltyStates,
    SquashedGaussianProposal,
    cql_penalty,
    cql_penalty_evaluators,
    exact_discrete_cql_penalty,
    mixture_log_integral_exp,
    sampled_cql_log_integral_exp,
)

ENCODER = d3rlpy.models.VectorEncoderFactory(hidden_units=[32, 32])


def quiet_fit(algo: object, dataset: object, n_steps: int, **kwargs: object) -> list:
    return algo.fit(  # type: ignore[attr-defined]
        dataset,
        n_steps=n_steps,
        n_steps_per_epoch=kwargs.pop("n_steps_per_epoch", n_steps),
        show_progress=False,
        save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        **kwargs,
    )


def random_dataset(discrete: bool, n: int = 400, k: int = 6, seed: int = 0) -> d3rlpy.dataset.MDPDataset:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    terminals = np.zeros(n, dtype=np.float32)
    terminals[49::50] = 1.0
    rewards = rng.normal(size=n).astype(np.float32)
    if discrete:
        return d3rlpy.dataset.MDPDataset(
            obs, rng.integers(0, k, size=n), rewards, terminals,
            action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=k,
        )
    actions = np.tanh(rng.normal(scale=0.3, size=(n, 2))).astype(np.float32)
    return d3rlpy.dataset.MDPDataset(obs, actions, rewards, terminals)


# ---- exact discrete penalty -------------------------------------------------------------------


def test_exact_discrete_penalty_matches_brute_force_logsumexp() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(scale=3.0, size=(2, 9, 5))
    codes = rng.integers(0, 5, size=9)
    brute = np.mean(
        [math.log(sum(math.exp(q[e, b, j]) for j in range(5))) - q[e, b, codes[b]] for e in range(2) for b in range(9)]
    )
    assert float(exact_discrete_cql_penalty(torch.tensor(q), torch.tensor(codes))) == pytest.approx(brute, rel=1e-12)
    single = np.mean([math.log(sum(math.exp(q[0, b, j]) for j in range(5))) - q[0, b, codes[b]] for b in range(9)])
    assert float(exact_discrete_cql_penalty(torch.tensor(q[0]), torch.tensor(codes))) == pytest.approx(single, rel=1e-12)


def test_cql_penalty_of_discrete_cql_is_its_exact_conservative_term() -> None:
    dataset = random_dataset(discrete=True)
    algo = d3rlpy.algos.DiscreteCQLConfig(encoder_factory=ENCODER, batch_size=32).create(device="cpu:0")
    quiet_fit(algo, dataset, n_steps=20)
    states = PenaltyStates(dataset, n_states=64, seed=1)
    record = cql_penalty(algo, states)
    assert set(record) == {"exact_penalty"}
    # brute force from the network's outputs on the same states
    with torch.no_grad():
        q = algo.impl.q_function[0](torch.from_numpy(states.observations)).q_value.numpy()
    codes = states.actions.reshape(-1).astype(int)
    brute = np.mean([np.log(np.exp(q[b]).sum()) - q[b, codes[b]] for b in range(len(codes))])
    assert record["exact_penalty"] == pytest.approx(brute, rel=1e-5)
    # and d3rlpy's own DiscreteCQL conservative term on those states is the same number
    with torch.no_grad():
        d3rlpy_term = algo.impl._compute_conservative_loss(  # noqa: SLF001 - cross-check with d3rlpy
            torch.from_numpy(states.observations), torch.from_numpy(codes)
        )
    assert record["exact_penalty"] == pytest.approx(float(d3rlpy_term), rel=1e-5)


def test_penalty_states_are_real_transitions() -> None:
    dataset = random_dataset(discrete=False)
    states = PenaltyStates(dataset, n_states=30, seed=3)
    assert len(states) == 30
    episode_obs = np.concatenate([e.observations for e in dataset.episodes])
    episode_act = np.concatenate([e.actions for e in dataset.episodes])
    for obs, act in zip(states.observations, states.actions):
        row = np.flatnonzero((episode_obs == obs).all(axis=1))
        assert len(row) == 1 and np.array_equal(episode_act[row[0]], act)
    assert np.array_equal(PenaltyStates(dataset, 30, seed=3).observations, states.observations)


# ---- continuous reference estimate: convergence on closed forms -----------------------------


def linear_q(weights: torch.Tensor):  # (B, d) -> q_fn
    return lambda actions: (actions * weights.unsqueeze(1)).sum(-1)


def test_reference_converges_to_closed_form_for_linear_q() -> None:
    weights = torch.tensor([[0.5, -2.0, 3.0], [4.0, 1.0, -0.2]], dtype=torch.float64)
    exact = torch.log(2 * torch.sinh(weights) / weights).sum(-1)  # ∫_{-1}^{1} e^{wa} da = 2 sinh(w)/w
    generator = torch.Generator().manual_seed(0)
    errors = []
    for n in (64, 200_000):
        estimate = mixture_log_integral_exp(
            linear_q(weights), 2, 3, n, generator=generator, like=weights, chunk_size=50_000
        )
        errors.append(float((estimate - exact).abs().max()))
    assert errors[1] < 0.01
    assert errors[1] < errors[0]


def gaussian_peak(mu: torch.Tensor, sigma: float, offset: float):
    return lambda actions: offset - ((actions - mu.unsqueeze(1)) ** 2).sum(-1) / (2 * sigma**2)


def gaussian_peak_exact(mu: torch.Tensor, sigma: float, offset: float) -> torch.Tensor:
    scale = sigma * math.sqrt(2.0)
    one_dim = sigma * math.sqrt(math.pi / 2) * (torch.erf((1 - mu) / scale) - torch.erf((-1 - mu) / scale))
    return offset + torch.log(one_dim).sum(-1)


def test_reference_converges_on_a_narrow_q_where_the_sampled_estimate_fails() -> None:
    """A narrow Q peak (sigma 0.05 in 3-d) around the policy's mode: the picture of SAQ Fig. 2."""
    batch, dim, sigma = 64, 3, 0.05
    gen = torch.Generator().manual_seed(1)
    mu = (torch.rand((batch, dim), generator=gen, dtype=torch.float64) - 0.5)
    exact = gaussian_peak_exact(mu, sigma, offset=5.0)
    q_fn = gaussian_peak(mu, sigma, offset=5.0)
    # a policy centred near the peak but wider than it, as a CQL actor would be
    policy = SquashedGaussianProposal(torch.atanh(mu) + 0.02, torch.full_like(mu, 0.15))

    reference = mixture_log_integral_exp(q_fn, batch, dim, 65_536, policy, generator=gen, chunk_size=8192)
    assert float((reference - exact).abs().mean()) < 0.03
    assert float((reference - exact).abs().max()) < 0.15
    coarse = mixture_log_integral_exp(q_fn, batch, dim, 32, policy, generator=gen)
    assert float((reference - exact).abs().mean()) < float((coarse - exact).abs().mean())

    # d3rlpy CQL's 3 x 10-sample estimate is biased low here (log of a noisy mean, Jensen)
    sampled = sampled_cql_log_integral_exp(q_fn, batch, dim, 10, policy, policy, generator=gen)
    assert float((sampled - exact).mean()) < -0.2


def test_squashed_gaussian_density_integrates_to_one() -> None:
    proposal = SquashedGaussianProposal(torch.tensor([[0.3, -0.5]], dtype=torch.float64), torch.tensor([[0.4, 0.7]], dtype=torch.float64))
    gen = torch.Generator().manual_seed(2)
    grid = torch.linspace(-1 + 1e-4, 1 - 1e-4, 801, dtype=torch.float64)
    a0, a1 = torch.meshgrid(grid, grid, indexing="ij")
    actions = torch.stack([a0.reshape(-1), a1.reshape(-1)], -1).unsqueeze(0)
    mass = proposal.log_prob(actions).exp().sum() * (grid[1] - grid[0]) ** 2
    assert float(mass) == pytest.approx(1.0, abs=0.01)
    samples, log_prob = proposal.sample(5, gen)
    torch.testing.assert_close(log_prob, proposal.log_prob(samples), rtol=1e-6, atol=1e-6)


# ---- agreement with d3rlpy's continuous CQL ---------------------------------------------------


def test_sampled_estimate_is_d3rlpys_cql_estimator() -> None:
    torch.manual_seed(0)
    dataset = random_dataset(discrete=False)
    algo = d3rlpy.algos.CQLConfig(
        actor_encoder_factory=ENCODER, critic_encoder_factory=ENCODER, batch_size=32, n_action_samples=10
    ).create(device="cpu:0")
    quiet_fit(algo, dataset, n_steps=30)
    states = PenaltyStates(dataset, n_states=256, seed=0)
    ours = np.mean([cql_penalty(algo, states, n_reference_samples=64, seed=s)["sampled_penalty"] for s in range(8)])
    obs, act, nxt = (torch.from_numpy(states.observations), torch.from_numpy(states.actions), torch.from_numpy(states.next_observations))
    cfg = algo.config
    with torch.no_grad():
        theirs = []
        for _ in range(8):
            per_critic = algo.impl._compute_conservative_loss(obs, act, nxt, torch.zeros(len(obs), 1))  # noqa: SLF001
            raw = per_critic / cfg.conservative_weight + cfg.alpha_threshold  # mean(logsumexp - Q(s,a))
            theirs.append(float(raw.mean()) - math.log(3 * cfg.n_action_samples))  # d3rlpy omits log 3N
    assert ours == pytest.approx(np.mean(theirs), abs=0.03)
    record = cql_penalty(algo, states, n_reference_samples=8192)
    assert record["penalty_gap"] == pytest.approx(record["sampled_penalty"] - record["reference_penalty"])
    assert np.isfinite(list(record.values())).all()


# ---- logging during fit -------------------------------------------------------------------------


def test_monitor_callback_and_evaluators_log_during_fit(tmp_path: Path) -> None:
    dataset = random_dataset(discrete=False)
    algo = d3rlpy.algos.CQLConfig(actor_encoder_factory=ENCODER, critic_encoder_factory=ENCODER, batch_size=32).create(
        device="cpu:0"
    )
    monitor = CQLPenaltyMonitor(dataset, interval=10, n_states=32, n_reference_samples=512)
    results = quiet_fit(
        algo,
        dataset,
        n_steps=40,
        n_steps_per_epoch=20,
        callback=monitor,
        evaluators=cql_penalty_evaluators(discrete=False, n_states=32, n_reference_samples=512),
    )
    assert [int(r["step"]) for r in monitor.history] == [10, 20, 30, 40]
    for _, metrics in results:
        assert {"cql_sampled_penalty", "cql_reference_penalty", "cql_penalty_gap"} <= set(metrics)
        assert metrics["cql_penalty_gap"] == pytest.approx(metrics["cql_sampled_penalty"] - metrics["cql_reference_penalty"])
    out = tmp_path / "penalty.json"
    monitor.save_json(out)
    assert json.loads(out.read_text()) == monitor.history

    discrete = random_dataset(discrete=True)
    dcql = d3rlpy.algos.DiscreteCQLConfig(encoder_factory=ENCODER, batch_size=32).create(device="cpu:0")
    dmon = CQLPenaltyMonitor(discrete, interval=5, n_states=64)
    results = quiet_fit(dcql, discrete, n_steps=10, callback=dmon, evaluators=cql_penalty_evaluators(discrete=True))
    assert [set(r) for r in dmon.history] == [{"step", "exact_penalty"}] * 2
    assert np.isfinite(results[-1][1]["cql_exact_penalty"])
    with pytest.raises(ValueError, match="not defined for DiscreteCQL"):
        cql_penalty_evaluators(discrete=False)["cql_sampled_penalty"](dcql, discrete)
