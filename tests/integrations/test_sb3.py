"""SB3 on the SAQ wrapper: env checker, DQN/QRDQN learning, exact warm start, MaskablePPO masks."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import d3rlpy
import gymnasium as gym
import numpy as np
import pytest
import torch
from saq_wrappers.integrations.d3rlpy import (
    saq_cql_config,
    saq_iql_config,
    to_discrete_dataset,
)
from saq_wrappers.integrations.d3rlpy.presets import saq_encoder
from saq_wrappers.integrations.sb3 import (
    SAQDQN,
    EvaluationCurveCallback,
    add_offline_transitions,
    dqn_policy_kwargs,
    evaluation_policy,
    make_agent,
    make_saq_vec_env,
    warm_start_dqn,
    warm_started_dqn,
)
from stable_baselines3 import DQN
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.logger import configure

from saq_wrappers.action_set import FixedActionSet, as_observation_batch
from saq_wrappers.app import finetune
from saq_wrappers.app.finetune import FinetuneConfig, run_finetune
from saq_wrappers.errors import DataError, SpaceMismatchError
from saq_wrappers.evaluation import evaluate
from saq_wrappers.rollouts import random_policy, rollout
from saq_wrappers.transitions import Transitions
from saq_wrappers.wrappers import SAQActionWrapper


class MatchTargetEnv(gym.Env[np.ndarray, np.ndarray]):
    """Continuous action in [-1, 1]; reward ``-|a - s|`` for a target ``s`` shown as observation.

    With ``sign_only`` the target is -1 or +1, so on a 5-point grid one index is clearly best at
    each state (index 0 or 4, reward 0) while uniformly random indices average -1.
    """

    def __init__(self, horizon: int = 1, sign_only: bool = True) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.horizon, self.sign_only = horizon, sign_only
        self._t, self._target = 0, np.zeros(1, np.float32)

    def _draw(self) -> np.ndarray:
        value = self.np_random.choice([-1.0, 1.0]) if self.sign_only else self.np_random.uniform(-1, 1)
        self._target = np.array([value], dtype=np.float32)
        return self._target.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._draw(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = -float(np.abs(np.asarray(action, np.float32)[0] - self._target[0]))
        self._t += 1
        return self._draw(), reward, self._t >= self.horizon, False, {}


class HalfMaskedSet(FixedActionSet):
    """6 fixed actions; at ``s > 0`` only even indices are valid, else only odd ones."""

    def __init__(self, observation_space: gym.spaces.Box, action_space: gym.spaces.Box) -> None:
        super().__init__(observation_space, action_space, np.linspace(-1, 1, 6, dtype=np.float32)[:, None])

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actions, _ = super().candidates(obs)
        batch = as_observation_batch(obs, self.observation_space)
        parity = (batch[:, 0] > 0).astype(int)[:, None]
        valid = (np.arange(self.n)[None] % 2) == (1 - parity)
        return actions, valid


class MaskAudit(gym.Wrapper):
    """Records, for every executed index, whether the action set marked it valid right then."""

    def __init__(self, env: SAQActionWrapper, log: list[bool]) -> None:
        super().__init__(env)
        self.log = log

    def step(self, action: Any) -> Any:
        mask = self.env.action_masks()
        self.log.append(bool(mask[int(np.asarray(action).reshape(()))]))
        return self.env.step(action)


def _pendulum_grid(bins: int) -> tuple[gym.Env, FixedActionSet]:
    env = gym.make("Pendulum-v1")
    return env, FixedActionSet.grid(env.observation_space, env.action_space, bins=bins)


def _random_transitions(env: gym.Env, n_episodes: int, seed: int) -> Transitions:
    """Uniform random actions for ``n_episodes`` episodes reset with seeds ``seed, seed + 1, ...``."""
    return Transitions.from_episodes(rollout(env, random_policy(env.action_space, seed), n_episodes=n_episodes,
                                             seed=seed, progress=False))


def _random_code_dataset(n_codes: int, seed: int = 0) -> tuple[Any, np.ndarray]:
    """Random-action Pendulum transitions with random codes: enough to fit a scaler and train."""
    env = gym.make("Pendulum-v1")
    transitions = _random_transitions(env, n_episodes=3, seed=seed)
    codes = np.random.default_rng(seed).integers(0, n_codes, len(transitions))
    return to_discrete_dataset(transitions, codes, n_codes=n_codes), transitions.observations


def _probe_observations(data_obs: np.ndarray, n: int = 2000) -> np.ndarray:
    """Dataset states plus states far outside them (the scaler must still match there)."""
    rng = np.random.default_rng(1)
    wide = rng.uniform([-1, -1, -8], [1, 1, 8], size=(n, 3)).astype(np.float32)
    return np.concatenate([data_obs.astype(np.float32), wide])


def _d3rlpy_q_values(algo: Any, obs: np.ndarray, n_actions: int) -> np.ndarray:
    return np.stack([algo.predict_value(obs, np.full(len(obs), k)) for k in range(n_actions)], axis=1)


def _sb3_q_values(q_net: torch.nn.Module, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return q_net(torch.as_tensor(obs)).numpy()


def test_sb3_check_env_accepts_the_wrapper() -> None:
    env, grid = _pendulum_grid(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(SAQActionWrapper(env, grid), warn=True)
        check_env(SAQActionWrapper(MatchTargetEnv(horizon=3), HalfMaskedSet(
            MatchTargetEnv().observation_space, MatchTargetEnv().action_space)), warn=True)
    assert not [w for w in caught if "env_checker" in str(w.filename)], [str(w.message) for w in caught]


@pytest.mark.parametrize("agent_name", ["dqn", "qrdqn"])
def test_dqn_and_qrdqn_learn_a_tiny_wrapped_task(agent_name: str) -> None:
    base = MatchTargetEnv()
    grid = FixedActionSet.grid(base.observation_space, base.action_space, bins=5)
    venv = make_saq_vec_env(MatchTargetEnv, grid, n_envs=2, seed=0)
    policy_kwargs: dict[str, Any] = {"net_arch": [32]}
    if agent_name == "qrdqn":
        policy_kwargs["n_quantiles"] = 25  # the default 200 makes the quantile loss slow on CPU
    agent = make_agent(agent_name, venv, seed=0, learning_rate=1e-3, learning_starts=64, batch_size=32,
                       train_freq=1, target_update_interval=50, exploration_fraction=0.4,
                       policy_kwargs=policy_kwargs)
    agent.learn(1500)
    eval_env = SAQActionWrapper(MatchTargetEnv(), grid)
    learned = evaluate(evaluation_policy(agent), eval_env, n_episodes=100, seed=0, progress=False)
    rng = np.random.default_rng(0)
    random = evaluate(lambda o: rng.integers(0, 5, len(o)), eval_env, n_episodes=100, seed=0, progress=False)
    # best index scores 0 at every state, uniform random indices average -1
    assert random.mean_return < -0.7
    assert learned.mean_return > -0.1


def test_warm_start_reproduces_saq_cql_exactly(tmp_path: Path) -> None:
    dataset, data_obs = _random_code_dataset(n_codes=8)
    d3rlpy.seed(0)
    cql = saq_cql_config().create(device="cpu")  # the SAQ preset: 512-512 ReLU, standard scaler
    cql.fit(dataset, n_steps=30, n_steps_per_epoch=30, show_progress=False,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    scaler = cql.config.observation_scaler
    assert np.abs(scaler.std - 1).max() > 0.5  # the normalization is not the identity
    _, grid = _pendulum_grid(8)
    venv = make_saq_vec_env("Pendulum-v1", grid, seed=0)
    dqn = warm_started_dqn(venv, cql, seed=0)
    assert dqn.policy_kwargs["net_arch"] == [512, 512]

    obs = _probe_observations(data_obs)
    expected_q = _d3rlpy_q_values(cql, obs, 8)
    for q_net in (dqn.q_net, dqn.q_net_target):
        np.testing.assert_allclose(_sb3_q_values(q_net, obs), expected_q, atol=1e-5, rtol=0)
    greedy, _ = dqn.predict(obs, deterministic=True)
    np.testing.assert_array_equal(greedy, cql.predict(obs))

    # SB3's own save/load keeps the normalization buffers and the weights
    dqn.save(tmp_path / "dqn.zip")
    reloaded = SAQDQN.load(tmp_path / "dqn.zip", device="cpu")
    np.testing.assert_array_equal(reloaded.predict(obs, deterministic=True)[0], greedy)


def test_warm_start_from_saq_iql_copies_the_chosen_critic() -> None:
    dataset, data_obs = _random_code_dataset(n_codes=6, seed=1)
    d3rlpy.seed(0)
    iql = saq_iql_config(critic_encoder_factory=saq_encoder((64, 64)),
                         value_encoder_factory=saq_encoder((64, 64)),
                         behavior_encoder_factory=saq_encoder((64, 64))).create(device="cpu")
    iql.fit(dataset, n_steps=30, n_steps_per_epoch=30, show_progress=False,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    _, grid = _pendulum_grid(6)
    venv = make_saq_vec_env("Pendulum-v1", grid, seed=0)
    with pytest.raises(DataError, match="critic"):
        warm_started_dqn(venv, iql)
    dqn = warm_started_dqn(venv, iql, critic=1)
    obs = _probe_observations(data_obs, 500)
    with torch.no_grad():
        scaled = iql.config.observation_scaler.transform(torch.as_tensor(obs))
        expected = iql.impl.q_function[1](scaled).q_value.numpy()
    np.testing.assert_allclose(_sb3_q_values(dqn.q_net, obs), expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(dqn.predict(obs, deterministic=True)[0], expected.argmax(axis=1))


def test_warm_start_refuses_mismatched_networks() -> None:
    dataset, _ = _random_code_dataset(n_codes=4)
    cql = saq_cql_config(encoder_factory=saq_encoder((32, 32))).create(device="cpu")
    cql.fit(dataset, n_steps=1, n_steps_per_epoch=1, show_progress=False,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    _, grid4 = _pendulum_grid(4)
    _, grid5 = _pendulum_grid(5)
    plain = DQN("MlpPolicy", make_saq_vec_env("Pendulum-v1", grid4), policy_kwargs={"net_arch": [32, 32]},
                device="cpu")
    with pytest.raises(DataError, match="dqn_policy_kwargs"):
        warm_start_dqn(plain, cql)
    wrong_k = DQN("MlpPolicy", make_saq_vec_env("Pendulum-v1", grid5), policy_kwargs=dqn_policy_kwargs(cql),
                  device="cpu")
    with pytest.raises(SpaceMismatchError, match="K=4"):
        warm_start_dqn(wrong_k, cql)


def test_offline_transitions_enter_the_replay_buffer_with_exact_episode_ends() -> None:
    env, grid = _pendulum_grid(4)
    transitions = _random_transitions(env, n_episodes=2, seed=0)
    codes = np.arange(len(transitions)) % 4
    agent = SAQDQN("MlpPolicy", make_saq_vec_env("Pendulum-v1", grid), buffer_size=1000, device="cpu")
    assert add_offline_transitions(agent, transitions, codes) == len(transitions) == 400
    buffer = agent.replay_buffer
    assert buffer.size() == 400
    np.testing.assert_array_equal(buffer.actions[:400, 0, 0], codes)
    np.testing.assert_array_equal(buffer.next_observations[:400, 0], transitions.next_observations)
    # Pendulum episodes end by timeout only: done for SB3, but bootstrapped through (timeouts)
    np.testing.assert_array_equal(buffer.dones[:400, 0], transitions.timeouts)
    np.testing.assert_array_equal(buffer.timeouts[:400, 0], transitions.timeouts)
    assert transitions.timeouts.sum() == 2 and not transitions.terminals.any()
    with pytest.raises(SpaceMismatchError):
        add_offline_transitions(agent, transitions, codes + 1)


def test_conservative_term_makes_the_replayed_action_greedy() -> None:
    """With only index 2 in the replay buffer and zero rewards, the CQL-style term (exact over
    the indices) pushes Q(s, 2) above every other index; the plain DQN loss alone does not."""
    base = MatchTargetEnv(sign_only=False)
    grid = FixedActionSet.grid(base.observation_space, base.action_space, bins=5)
    obs = np.random.default_rng(0).uniform(-1, 1, (256, 1)).astype(np.float32)
    greedy_share = {}
    for alpha in (0.0, 5.0):
        agent = SAQDQN("MlpPolicy", make_saq_vec_env(MatchTargetEnv, grid), seed=0, device="cpu",
                       conservative_alpha=alpha, conservative_steps=1000, learning_rate=1e-3,
                       policy_kwargs={"net_arch": [32]})
        agent.set_logger(configure(None, [""]))
        for row in obs:
            agent.replay_buffer.add(row[None], row[None], np.array([2]), np.array([0.0]), np.array([True]), [{}])
        assert agent.current_conservative_alpha() == alpha
        agent.train(gradient_steps=150, batch_size=64)
        greedy_share[alpha] = float(np.mean(agent.predict(obs, deterministic=True)[0] == 2))
    assert greedy_share[5.0] == 1.0
    assert greedy_share[0.0] < 1.0
    agent.num_timesteps = 500
    assert agent.current_conservative_alpha() == pytest.approx(2.5)
    agent.num_timesteps = 2000
    assert agent.current_conservative_alpha() == 0.0


def test_maskable_ppo_never_executes_a_masked_index() -> None:
    base = MatchTargetEnv(horizon=5, sign_only=False)
    action_set = HalfMaskedSet(base.observation_space, base.action_space)
    log: list[bool] = []
    venv = make_saq_vec_env(lambda: MatchTargetEnv(horizon=5, sign_only=False), action_set, n_envs=2, seed=0,
                            outer_wrapper=lambda env: MaskAudit(env, log))
    agent = make_agent("maskable_ppo", venv, seed=0, n_steps=64, batch_size=64, n_epochs=2,
                       policy_kwargs={"net_arch": [16]})
    agent.learn(512)
    eval_env = MaskAudit(SAQActionWrapper(MatchTargetEnv(horizon=5, sign_only=False), action_set), log)
    evaluate(evaluation_policy(agent, eval_env, deterministic=True), eval_env, n_episodes=10, seed=0, progress=False)
    evaluate(evaluation_policy(agent, eval_env, deterministic=False), eval_env, n_episodes=10, seed=50, progress=False)
    assert len(log) >= 512 + 100
    assert all(log)
    with pytest.raises(DataError, match="env="):
        evaluation_policy(agent)
    from saq_wrappers.integrations.sb3 import sb3_policy  # the former name stays importable

    assert sb3_policy is evaluation_policy


def test_evaluation_curve_starts_at_the_offline_policy(tmp_path: Path) -> None:
    """The callback's first point is the warm-started agent before any update: the offline
    SAQ-CQL policy's own return on the same seeded episodes."""
    from saq_wrappers.integrations.d3rlpy import evaluate_algo

    dataset, _ = _random_code_dataset(n_codes=5)
    cql = saq_cql_config(encoder_factory=saq_encoder((32, 32))).create(device="cpu")
    cql.fit(dataset, n_steps=20, n_steps_per_epoch=20, show_progress=False,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    env, grid = _pendulum_grid(5)
    dqn = warm_started_dqn(make_saq_vec_env("Pendulum-v1", grid, seed=0), cql, learning_starts=50,
                           batch_size=32, seed=0)
    callback = EvaluationCurveCallback(SAQActionWrapper(gym.make("Pendulum-v1"), grid), eval_freq=100,
                                       n_episodes=2, seed=7)
    dqn.learn(200, callback=callback)
    offline = evaluate_algo(cql, env, grid, n_episodes=2, seed=7, progress=False)
    assert [p["env_steps"] for p in callback.curve] == [0, 100, 200]
    assert callback.curve[0]["mean_return"] == pytest.approx(offline.mean_return, abs=1e-6)


def test_finetune_recipe_writes_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: dict[str, tuple[Any, Any]] = {}  # arm -> (its agent, the offline transitions)
    make_arm_agent = finetune._arm_agent

    def recording_arm_agent(arm: str, config: FinetuneConfig, venv: Any, data: Any, offline: Any) -> Any:
        agent = make_arm_agent(arm, config, venv, data, offline)
        built[arm] = (agent, data.transitions)
        return agent

    monkeypatch.setattr(finetune, "_arm_agent", recording_arm_agent)
    config = FinetuneConfig.quick(quantizer_steps=50, offline_steps=20, online_steps=100, eval_every=100,
                                  eval_episodes=1, learning_starts=50, conservative_steps=50,
                                  conservative_alpha=2.0, arms=("finetune", "finetune-mixed", "scratch"),
                                  output_dir=str(tmp_path), progress=False)
    results = run_finetune(config)
    runs = {run["arm"]: run for run in results["runs"]}
    assert set(runs) == {"finetune", "finetune-mixed", "scratch"}
    assert runs["finetune"]["conservative_alpha"] == runs["finetune-mixed"]["conservative_alpha"] == 2.0
    assert runs["scratch"]["conservative_alpha"] == 0.0

    # The mixed arm's replay buffer holds the offline transitions first, then its online steps;
    # the other arms' buffers hold their online steps only.
    agent, transitions = built["finetune-mixed"]
    n_offline = len(transitions)
    assert n_offline == results["dataset"]["transitions"] > 0
    buffer = agent.replay_buffer
    assert buffer.size() == n_offline + config.online_steps
    np.testing.assert_array_equal(buffer.observations[:n_offline, 0], transitions.observations)
    np.testing.assert_array_equal(buffer.next_observations[:n_offline, 0], transitions.next_observations)
    assert runs["finetune-mixed"]["offline_transitions_in_replay"] == n_offline
    for arm in ("finetune", "scratch"):
        assert built[arm][0].replay_buffer.size() == config.online_steps
        assert runs[arm]["offline_transitions_in_replay"] == 0

    finetune_run = runs["finetune"]
    assert finetune_run["curve"][0]["mean_return"] == pytest.approx(
        results["offline"]["evaluation"]["mean_return"], abs=1e-6)
    for suffix in ("json", "md", "png"):
        assert (tmp_path / f"finetune_quick.{suffix}").stat().st_size > 0


def test_zoo_model_generates_a_loadable_medium_dataset(tmp_path: Path) -> None:
    """--zoo-model path of the recipe: the generated Minari id must be valid for any noise level."""
    from stable_baselines3 import SAC

    from saq_wrappers.app.datasets import load_dataset
    from saq_wrappers.app.finetune import _dataset_spec

    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), policy_kwargs={"net_arch": [8]}, device="cpu")
    model.save(tmp_path / "sac.zip")
    config = FinetuneConfig(zoo_model=str(tmp_path / "sac.zip"), env_id="Pendulum-v1", dataset_steps=400,
                            noise_std=0.5, progress=False)
    data = load_dataset(_dataset_spec(config))
    assert len(data.transitions) == 400 and data.transitions.n_episodes == 2
    with pytest.raises(DataError, match="needs --env"):
        _dataset_spec(FinetuneConfig(zoo_model=str(tmp_path / "sac.zip"), progress=False))
