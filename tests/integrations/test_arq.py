"""ARQ (eq. 5-6) as a d3rlpy algorithm: the K-th-largest target (alone and bootstrapped through a
non-terminal transition), fit/save/load, both policies."""

from __future__ import annotations

from pathlib import Path

import d3rlpy
import gymnasium as gym
import numpy as np
import pytest
import torch

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy.arq import ARQ, ARQConfig, arq_table_states, kth_largest_target
from saq_wrappers.score import CandidateTable, ScoreSupportSampler, precompute_candidate_table
from saq_wrappers.transitions import Transitions

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def test_kth_largest_target_eq5() -> None:
    q = torch.tensor([[5.0, 4.0, 3.0, 9.0], [1.0, 2.0, 3.0, 4.0], [7.0, 8.0, 9.0, 10.0]])
    valid = torch.tensor([[True, True, True, False], [True, True, True, True], [False, False, False, False]])
    q_data = torch.tensor([0.0, 10.0, -1.0])
    # row 0: {0, 5, 4, 3} (9 dropped) -> 2nd largest = 4; row 1: raised to Q(a'_data) = 10;
    # row 2: every candidate dropped -> Q(s', a'_data) alone.
    torch.testing.assert_close(kth_largest_target(q, valid, q_data, 2), torch.tensor([4.0, 10.0, -1.0]))
    # K larger than the available set: the smallest available value.
    torch.testing.assert_close(kth_largest_target(q, valid, q_data, 9), torch.tensor([0.0, 10.0, -1.0]))


# ---- eq. 5's bootstrap on a two-state MDP ----------------------------------------------------

S0, S1 = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
#: the action the data takes at s1 after s0 (so a'_data of every s0 -> s1 transition)
A1_DATA = -0.9
#: the table's candidates at s1; the last one is rejected by eps
S1_CANDIDATES = [-0.5, 0.0, 0.5, 0.9, 0.95]
S1_VALID = [True, True, True, True, False]


def _bootstrap_mdp(n_chains: int = 120, n_probes: int = 30) -> d3rlpy.dataset.MDPDataset:
    """s0 --a=0, r=0--> s1 --a'_data=-0.9, r=0.1--> end, plus one-step episodes from s1.

    At s1 every action ends the episode with reward ``1 + a``; the one-step episodes try each
    valid candidate, so ``Q(s1, a) = 1 + a`` is learned at {-0.9, -0.5, 0, 0.5, 0.9}. With K = 3,
    eq. 5 at s1 ranks ``{Q(a'_data) = 0.1} U {0.5, 1.0, 1.5, 1.9}`` and takes the 3rd largest,
    1.0, so ``Q(s0, 0) = gamma * 1.0``; the max would give ``gamma * 1.9``, SARSA ``gamma * 0.1``.
    """
    obs, act, rew, term = [], [], [], []
    for _ in range(n_chains):
        obs += [S0, S1]
        act += [0.0, A1_DATA]
        rew += [0.0, 1.0 + A1_DATA]
        term += [0.0, 1.0]
    for a in [c for c, ok in zip(S1_CANDIDATES, S1_VALID) if ok]:
        for _ in range(n_probes):
            obs.append(S1)
            act.append(a)
            rew.append(1.0 + a)
            term.append(1.0)
    return d3rlpy.dataset.MDPDataset(
        observations=np.stack(obs), actions=np.array(act, np.float32)[:, None],
        rewards=np.array(rew, np.float32), terminals=np.array(term, np.float32),
    )


def _bootstrap_table() -> CandidateTable:
    """Exact candidates: those of s1 above; s0 never appears as a non-terminal s'."""
    n = len(S1_CANDIDATES)
    actions = np.array([[[0.0]] * n, [[c] for c in S1_CANDIDATES]], np.float32)
    log_lik = np.where([[True] * n, S1_VALID], 0.0, -10.0).astype(np.float32)
    return CandidateTable(np.stack([S0, S1]), actions, log_lik, log_eps=-1.0)


def _eq5_by_hand(algo: ARQ, kth: int) -> float:
    """ARQ eq. 5 at s1 for a'_data = -0.9 from the target critics, with a sorted Python list."""
    targ = algo.impl.modules.targ_q_funcs

    def q_targ(a: float) -> float:
        x, action = torch.from_numpy(S1[None]), torch.tensor([[a]], dtype=torch.float32)
        with torch.no_grad():
            return min(float(q(x, action).q_value) for q in targ)

    q_data = q_targ(A1_DATA)
    ranked = sorted([q_data] + [q_targ(c) for c, ok in zip(S1_CANDIDATES, S1_VALID) if ok], reverse=True)
    return max(ranked[min(kth, len(ranked)) - 1], q_data)


def _s0_to_s1_batch(size: int) -> d3rlpy.dataset.TransitionMiniBatch:
    transition = d3rlpy.dataset.Transition(
        observation=S0, action=np.zeros(1, np.float32), reward=np.zeros(1, np.float32),
        next_observation=S1, next_action=np.array([A1_DATA], np.float32), terminal=0.0, interval=1,
        rewards_to_go=np.zeros((1, 1), np.float32),
    )
    return d3rlpy.dataset.TransitionMiniBatch.from_transitions([transition] * size)


def test_eq5_bootstraps_from_the_kth_largest_candidate_value_at_the_next_state() -> None:
    """Non-terminal s0 -> s1: Q(s0) must be gamma times the K-th largest Q over s1's candidates."""
    torch.manual_seed(0)
    gamma, kth = 0.99, 3
    algo = ARQConfig(batch_size=64, learning_rate=2e-3, tau=0.05, gamma=gamma, kth=kth,
                     critic_encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=[64, 64]),
                     actor_encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=[8])).create()
    algo.attach_candidates(_bootstrap_table())
    dataset = _bootstrap_mdp()
    algo.fit(dataset, n_steps=800, n_steps_per_epoch=800, show_progress=False, save_interval=10**9,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    # Q(s1, a) = 1 + a at the data's actions (terminal: no bootstrap there)
    tried = np.array([A1_DATA] + [c for c, ok in zip(S1_CANDIDATES, S1_VALID) if ok], np.float32)
    q_s1 = algo.predict_value(np.repeat(S1[None], len(tried), 0), tried[:, None])
    np.testing.assert_allclose(q_s1, 1.0 + tried, atol=0.05)
    # Q(s0, 0) = gamma * 3rd largest of {0.1, 0.5, 1.0, 1.5, 1.9} = gamma * 1.0 (max: 1.88)
    q_s0 = float(algo.predict_value(S0[None], np.zeros((1, 1), np.float32))[0])
    assert q_s0 == pytest.approx(gamma * 1.0, abs=0.05)
    # the target the update computes is eq. 5 from the target critics, exactly
    expected = _eq5_by_hand(algo, kth)
    metrics = algo.update(_s0_to_s1_batch(8))
    assert metrics["valid_fraction"] == pytest.approx(4 / 5)
    assert metrics["target_mean"] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def _bandit(n: int = 600, seed: int = 0) -> Transitions:
    """One-step episodes: behavior picks a = -0.8 (reward 0) or a = +0.8 (reward 1)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 2)).astype(np.float32)
    good = rng.random(n) < 0.3
    acts = np.where(good, 0.8, -0.8)[:, None] + 0.02 * rng.normal(size=(n, 1))
    return Transitions(
        observations=obs, actions=acts.astype(np.float32), rewards=good.astype(np.float32),
        next_observations=rng.normal(size=(n, 2)).astype(np.float32),
        terminals=np.ones(n, bool), timeouts=np.zeros(n, bool),
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Transitions, ScoreSupportSampler, Path]:
    data = _bandit()
    sampler = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, n_samples=8, hidden=32, n_blocks=1, steps=4, seed=0)
    sampler.fit(data.observations, data.actions, n_steps=600, batch_size=256, learning_rate=3e-3, progress=False)
    folder = tmp_path_factory.mktemp("arq") / "table"
    precompute_candidate_table(sampler, arq_table_states(data), folder, chunk_size=512, progress=False)
    path = folder.parent / "sampler.safetensors"
    sampler.save(path)
    return data, sampler, folder


def _mdp(data: Transitions) -> d3rlpy.dataset.MDPDataset:
    return d3rlpy.dataset.MDPDataset(
        observations=data.observations, actions=data.actions, rewards=data.rewards,
        terminals=data.terminals.astype(np.float32), timeouts=data.timeouts.astype(np.float32),
    )


def test_fit_learns_in_support_values_and_the_implicit_policy_picks_the_good_mode(setup, tmp_path: Path) -> None:
    data, sampler, folder = setup
    config = ARQConfig(batch_size=64, learning_rate=1e-3, candidate_table=str(folder),
                       sampler_path=str(folder.parent / "sampler.safetensors"), kth=2)
    algo = config.create()
    history = algo.fit(_mdp(data), n_steps=300, n_steps_per_epoch=150, show_progress=False, save_interval=10**9,
                       experiment_name="arq", logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    assert all(np.isfinite(m["critic_loss"]) for _, m in history)
    obs = data.observations[:20]
    q_good = algo.predict_value(obs, np.full((20, 1), 0.8, np.float32))
    q_bad = algo.predict_value(obs, np.full((20, 1), -0.8, np.float32))
    assert (q_good - q_bad).mean() > 0.5
    actions = algo.predict(obs)
    assert actions.shape == (20, 1)
    assert (actions[:, 0] > 0.4).mean() > 0.8  # the in-support high-reward mode
    sampled = algo.sample_action(obs)
    assert sampled.shape == (20, 1) and np.all(np.abs(sampled) <= 1.0)
    # save/load through d3rlpy (the table and sampler are config paths, not pickled state).
    algo.save(str(tmp_path / "arq.d3"))
    loaded = d3rlpy.load_learnable(str(tmp_path / "arq.d3"))
    assert isinstance(loaded, ARQ)
    np.testing.assert_allclose(loaded.predict_value(obs, actions), algo.predict_value(obs, actions), rtol=1e-5)


def test_awr_policy_moves_toward_the_good_mode(setup) -> None:
    data, sampler, folder = setup
    algo = ARQConfig(batch_size=64, learning_rate=1e-3, actor_learning_rate=3e-3, use_awr_policy=True,
                     awr_beta=5.0, candidate_table=str(folder)).create()
    algo.fit(_mdp(data), n_steps=300, n_steps_per_epoch=300, show_progress=False, save_interval=10**9,
             experiment_name="arq_awr", logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    assert algo.predict(data.observations[:50])[:, 0].mean() > 0.3  # behavior mean is -0.32


def test_awr_policy_acts_beyond_unit_bounds(tmp_path: Path) -> None:
    """Actions in [-3, 3]: the AWR policy must reach the good mode at +2.4 (not tanh's [-1, 1])."""
    base = _bandit()
    data = Transitions(observations=base.observations, actions=3.0 * base.actions, rewards=base.rewards,
                       next_observations=base.next_observations, terminals=base.terminals, timeouts=base.timeouts)
    wide = gym.spaces.Box(-3.0, 3.0, (1,), np.float32)
    sampler = ScoreSupportSampler(OBS_SPACE, wide, n_samples=8, hidden=32, n_blocks=1, steps=4, seed=0)
    sampler.fit(data.observations, data.actions, n_steps=300, batch_size=256, learning_rate=3e-3, progress=False)
    precompute_candidate_table(sampler, arq_table_states(data), tmp_path / "table", chunk_size=512, progress=False)
    sampler.save(tmp_path / "sampler.safetensors")
    algo = ARQConfig(batch_size=64, learning_rate=1e-3, actor_learning_rate=3e-3, use_awr_policy=True, awr_beta=5.0,
                     candidate_table=str(tmp_path / "table"), sampler_path=str(tmp_path / "sampler.safetensors")).create()
    algo.fit(_mdp(data), n_steps=300, n_steps_per_epoch=300, show_progress=False, save_interval=10**9,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    actions = algo.predict(data.observations[:50])
    assert actions[:, 0].mean() > 1.2 and np.all(np.abs(actions) <= 3.0)


def test_bad_inputs_and_eps_rejecting_everything(setup) -> None:
    data, sampler, folder = setup
    algo = ARQConfig(batch_size=32).create()
    with pytest.raises(DataError, match="candidate table"):
        algo.fit(_mdp(data), n_steps=1, n_steps_per_epoch=1, show_progress=False,
                 logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    o = _bandit(seed=5)  # non-terminal transitions whose next observations the table never saw
    other = Transitions(observations=o.observations, actions=o.actions, rewards=o.rewards,
                        next_observations=o.next_observations, terminals=np.zeros(len(o), bool),
                        timeouts=np.zeros(len(o), bool))
    algo = ARQConfig(batch_size=32, candidate_table=str(folder)).create()
    with pytest.raises(DataError, match="not in the candidate table"):
        algo.fit(_mdp(other), n_steps=1, n_steps_per_epoch=1, show_progress=False,
                 logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    with pytest.raises(DataError, match="kth"):
        ARQConfig(kth=0).create().create_impl((2,), 1)
    # eps that rejects every candidate: targets fall back to Q(s', a'_data), training still runs.
    table = CandidateTable.load(folder)
    strict = CandidateTable(table.observations, table.actions, table.log_lik, log_eps=1e9)
    assert not strict.valid.any()
    algo = ARQConfig(batch_size=32).create()
    algo.create_impl((2,), 1)
    algo.attach_candidates(strict)
    chain = Transitions(observations=data.observations, actions=data.actions, rewards=data.rewards,
                        next_observations=data.next_observations, terminals=np.zeros(len(data), bool),
                        timeouts=np.zeros(len(data), bool))  # one long episode: s' = the next row
    hist = algo.fit(_mdp(chain), n_steps=20, n_steps_per_epoch=20, show_progress=False,
                    logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    assert hist[-1][1]["valid_fraction"] == 0.0


@pytest.mark.parametrize("field, value, message", [
    # batch_size=0 used to train on empty minibatches: a NaN critic loss
    ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
    ("batch_size", 2.5, "batch_size must be an integer >= 1, got 2.5"),
    ("n_critics", 0, "n_critics must be an integer >= 1, got 0"),
    ("kth", 2.9, "kth must be an integer >= 1, got 2.9"),
    ("kth", 0, "kth must be an integer >= 1, got 0"),
    ("n_candidates", 0, "n_candidates must be an integer >= 1 and <= 65,536, got 0"),
    ("n_candidates", 10**9, "n_candidates must be an integer >= 1 and <= 65,536"),
    ("alpha", float("nan"), "alpha must be a finite number >= 0, got nan"),
    ("alpha", -1.0, "alpha must be a finite number >= 0, got -1.0"),
    ("awr_beta", float("inf"), "awr_beta must be a finite number >= 0, got inf"),
    ("max_weight", -1.0, "max_weight must be a finite number > 0, got -1.0"),
    ("max_weight", float("nan"), "max_weight must be a finite number > 0, got nan"),
    ("learning_rate", 0.0, "learning_rate must be a finite number > 0, got 0.0"),
    ("actor_learning_rate", float("inf"), "actor_learning_rate must be a finite number > 0, got inf"),
    ("gamma", 1.5, "gamma must be a finite number >= 0 and <= 1, got 1.5"),
    ("tau", float("nan"), "tau must be a finite number > 0 and <= 1, got nan"),
    ("tau", 0.0, "tau must be a finite number > 0 and <= 1, got 0.0"),  # 0 would freeze the targets
])
def test_bad_config_values_are_refused_when_the_config_is_made(field: str, value: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        ARQConfig(**{field: value})
    good = ARQConfig(batch_size=8, kth=3, alpha=0.0, awr_beta=0.0)
    assert ARQConfig.deserialize(good.serialize()) == good
