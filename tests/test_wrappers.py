"""Tests of SAQActionWrapper and SAQVectorActionWrapper.

The action sets here decode to a known function of (observation, index), and the env records every
action it receives, so each test can assert *exactly* which observation an index was decoded at.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.spaces import Box, Discrete, MultiDiscrete
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import SyncVectorEnv

from saq_wrappers.action_set import FixedActionSet
from saq_wrappers.errors import DataError, SpaceMismatchError
from saq_wrappers.wrappers import SAQActionWrapper, SAQVectorActionWrapper

OBS_SPACE = Box(-1000.0, 1000.0, shape=(3,), dtype=np.float32)
ACT_SPACE = Box(-1e4, 1e4, shape=(2,), dtype=np.float32)
N = 7


class RecorderEnv(gym.Env[np.ndarray, np.ndarray]):
    """Tiny Box env whose observations are all distinct and which records every action it gets.

    Observation after ``t`` steps of episode ``e``: ``[100 e + t, u, 0.5 t]`` with ``u`` drawn from
    the env's seeded generator, so seeding is deterministic and different seeds differ.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, episode_length: int = 5) -> None:
        self.observation_space = OBS_SPACE
        self.action_space = ACT_SPACE
        self.episode_length = episode_length
        self.received: list[np.ndarray] = []
        self.episode = -1
        self.t = 0

    def _obs(self) -> np.ndarray:
        u = self.np_random.uniform(-1.0, 1.0)
        return np.array([100.0 * self.episode + self.t, u, 0.5 * self.t], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # seeded resets restart the count so that a seeded reset is fully deterministic
        self.episode = 0 if seed is not None else self.episode + 1
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.received.append(np.array(action, copy=True))
        self.t += 1
        return self._obs(), float(self.t), self.t >= self.episode_length, False, {}


class AffineActionSet:
    """Decodes index ``k`` at ``obs`` to ``2 * obs[:2] + k``; validity depends on the observation.

    Counts its calls and records the shapes it was given, so tests can check batching.
    """

    def __init__(self, n: int = N, stochastic: bool = False) -> None:
        self.observation_space = OBS_SPACE
        self.action_space = ACT_SPACE
        self._n = n
        self.stochastic = stochastic
        self.rng = np.random.default_rng(0)
        self.decode_calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        self.candidate_calls: list[tuple[int, ...]] = []

    @property
    def n(self) -> int:
        return self._n

    @staticmethod
    def expected(obs: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32)[:2] * np.float32(2.0) + np.float32(k)

    @staticmethod
    def expected_valid(obs: np.ndarray, n: int = N) -> np.ndarray:
        return (np.arange(n) + int(obs[0])) % 3 != 0

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float32)
        self.candidate_calls.append(obs.shape)
        k = np.arange(self._n, dtype=np.float32)
        actions = obs[:, None, :2] * np.float32(2.0) + k[None, :, None]
        if self.stochastic:  # like an ARQ sampler: fresh random draws on every call
            actions = actions + self.rng.normal(size=actions.shape).astype(np.float32)
        valid = np.stack([self.expected_valid(row, self._n) for row in obs])
        return actions.astype(np.float32), valid

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        index = np.asarray(index)
        self.decode_calls.append((obs.shape, index.shape))
        assert np.issubdtype(index.dtype, np.integer)
        out = obs[:, :2] * np.float32(2.0) + index[:, None].astype(np.float32)
        if self.stochastic:
            out = out + self.rng.normal(size=out.shape).astype(np.float32)
        return out.astype(np.float32)


def _bug_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """Warnings other than the one check_env always emits for any wrapper."""
    return [
        str(w.message)
        for w in caught
        if "different from the unwrapped version" not in str(w.message)
    ]


# --------------------------------------------------------------------------- single env


def test_check_env_passes_on_registered_env() -> None:
    env = gym.make("Pendulum-v1")
    grid = FixedActionSet.grid(env.observation_space, env.action_space, bins=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Pendulum's render modes need pygame, which is not the wrapper's business.
        check_env(SAQActionWrapper(env, grid), skip_render_check=True)
    assert _bug_warnings(caught) == []


def test_check_env_passes_on_custom_env() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # no spec and no render modes: the render check would only warn about that
        check_env(SAQActionWrapper(RecorderEnv(), AffineActionSet()), skip_render_check=True)
    assert _bug_warnings(caught) == []


def test_action_space_is_discrete_n_and_observations_pass_through() -> None:
    base = RecorderEnv()
    env = SAQActionWrapper(base, AffineActionSet(n=11))
    assert env.action_space == Discrete(11)
    assert env.observation_space is base.observation_space
    obs, _ = env.reset(seed=3)
    reference = RecorderEnv()
    ref_obs, _ = reference.reset(seed=3)
    np.testing.assert_array_equal(obs, ref_obs)


def test_decodes_at_the_observation_seen_after_reset_and_each_step() -> None:
    action_set = AffineActionSet()
    env = SAQActionWrapper(RecorderEnv(episode_length=4), action_set)
    rng = np.random.default_rng(0)
    expected: list[np.ndarray] = []
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            k = int(rng.integers(N))
            want = AffineActionSet.expected(obs, k)
            expected.append(want)
            obs, _, terminated, truncated, info = env.step(k)
            np.testing.assert_array_equal(info["continuous_action"], want)
            assert info["action_index"] == k and type(info["action_index"]) is int
            done = terminated or truncated
    received = env.unwrapped.received
    assert len(received) == len(expected) == 12
    for got, want in zip(received, expected):
        np.testing.assert_array_equal(got, want)
    # every decode saw one observation and one index
    assert set(action_set.decode_calls) == {((1, 3), (1,))}


def test_reset_mid_episode_decodes_at_the_reset_observation() -> None:
    env = SAQActionWrapper(RecorderEnv(episode_length=10), AffineActionSet())
    env.reset(seed=1)
    env.step(2)
    env.step(3)
    obs, _ = env.reset()
    np.testing.assert_array_equal(env.current_observation, obs)
    env.step(5)
    np.testing.assert_array_equal(env.unwrapped.received[-1], AffineActionSet.expected(obs, 5))


def test_action_method_decodes_without_stepping() -> None:
    env = SAQActionWrapper(RecorderEnv(), AffineActionSet())
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.action(4), AffineActionSet.expected(obs, 4))
    assert env.unwrapped.received == []


@pytest.mark.parametrize(
    "index", [3, np.int64(3), np.int32(3), np.array(3), np.array([3]), np.array([[3]]), 3.0]
)
def test_accepts_common_index_forms(index: Any) -> None:
    env = SAQActionWrapper(RecorderEnv(), AffineActionSet())
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step(index)
    assert info["action_index"] == 3
    np.testing.assert_array_equal(env.unwrapped.received[-1], AffineActionSet.expected(obs, 3))


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (N, rf"action index {N} is outside .*Discrete\({N}\).*\[0, {N}\)"),
        (-1, r"action index -1 is outside"),
        (np.array([N + 4]), rf"action index {N + 4} is outside"),
        (2.5, r"integers"),
        (np.array([1, 2]), r"expected one action index .*shape \(2,\)"),
    ],
)
def test_refuses_bad_indices(index: Any, message: str) -> None:
    env = SAQActionWrapper(RecorderEnv(), AffineActionSet())
    env.reset(seed=0)
    with pytest.raises(DataError, match=message):
        env.step(index)
    assert env.unwrapped.received == []


def test_step_or_masks_before_reset_raise_reset_needed() -> None:
    env = SAQActionWrapper(RecorderEnv(), AffineActionSet())
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(0)
    with pytest.raises(ResetNeeded, match="reset"):
        env.action_masks()


def test_action_masks_follow_the_current_observation_and_are_lazy() -> None:
    action_set = AffineActionSet()
    env = SAQActionWrapper(RecorderEnv(episode_length=50), action_set)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        env.step(1)
    assert action_set.candidate_calls == []  # plain stepping never computes candidates
    obs, *_ = env.step(1)
    mask = env.action_masks()
    assert mask.dtype == np.bool_ and mask.shape == (N,)
    np.testing.assert_array_equal(mask, AffineActionSet.expected_valid(obs))
    assert action_set.candidate_calls == [(1, 3)]
    _, valid = action_set.candidates(obs[None])
    np.testing.assert_array_equal(mask, valid[0])
    action_set.candidate_calls.clear()
    mask[:] = False  # callers may scribble on what they get; the cache must not change
    np.testing.assert_array_equal(env.action_masks(), AffineActionSet.expected_valid(obs))
    assert action_set.candidate_calls == []  # cached per observation
    obs, *_ = env.step(2)
    np.testing.assert_array_equal(env.action_masks(), AffineActionSet.expected_valid(obs))
    assert action_set.candidate_calls == [(1, 3)]


def test_step_after_masks_executes_the_masked_candidate_table() -> None:
    """With random candidates (ARQ), the executed action is the row the mask judged."""
    action_set = AffineActionSet(stochastic=True)
    env = SAQActionWrapper(RecorderEnv(), action_set)
    obs, _ = env.reset(seed=0)
    env.action_masks()
    table = env._candidate_actions.copy()
    decode_calls = len(action_set.decode_calls)
    _, _, _, _, info = env.step(4)
    np.testing.assert_array_equal(env.unwrapped.received[-1], table[4])
    np.testing.assert_array_equal(info["continuous_action"], table[4])
    assert len(action_set.decode_calls) == decode_calls


def test_invalid_index_is_allowed_and_executed_as_decoded() -> None:
    env = SAQActionWrapper(RecorderEnv(), AffineActionSet())
    obs, _ = env.reset(seed=0)
    mask = env.action_masks()
    invalid = int(np.flatnonzero(~mask)[0])
    env.step(invalid)
    np.testing.assert_array_equal(
        env.unwrapped.received[-1], AffineActionSet.expected(obs, invalid)
    )


def test_actions_are_clipped_to_tighter_env_bounds() -> None:
    class Narrow(RecorderEnv):
        def __init__(self) -> None:
            super().__init__()
            self.action_space = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    env = SAQActionWrapper(Narrow(), AffineActionSet())
    env.reset(seed=0)
    _, _, _, _, info = env.step(6)  # obs[0] == 0, so the decoded action is [6, 2u + 6]
    np.testing.assert_array_equal(env.unwrapped.received[-1], [1.0, 1.0])
    np.testing.assert_array_equal(info["continuous_action"], [1.0, 1.0])


def test_refuses_discrete_action_env() -> None:
    env = gym.make("CartPole-v1")
    action_set = FixedActionSet(env.observation_space, Box(-1, 1, (1,), np.float32), [[0.0]])
    with pytest.raises(SpaceMismatchError, match=r"action space must be a gymnasium.spaces.Box, "
                       r"got Discrete.*Expected a Box action space of shape \(1,\)"):
        SAQActionWrapper(env, action_set)


def test_refuses_observation_shape_mismatch() -> None:
    env = gym.make("Pendulum-v1")  # observations (3,)
    action_set = FixedActionSet(Box(-1, 1, (4,), np.float32), env.action_space, [[0.0]])
    with pytest.raises(SpaceMismatchError, match=r"observation shape \(3,\) differs from .*\(4,\)"):
        SAQActionWrapper(env, action_set)


def test_refuses_action_shape_mismatch() -> None:
    env = gym.make("Pendulum-v1")  # actions (1,)
    action_set = FixedActionSet(env.observation_space, ACT_SPACE, [[0.0, 0.0]])
    with pytest.raises(SpaceMismatchError, match=r"action shape \(1,\) differs from .*\(2,\)"):
        SAQActionWrapper(env, action_set)


def test_record_constructor_args_and_spec_rebuild() -> None:
    env = gym.make("Pendulum-v1")
    grid = FixedActionSet.grid(env.observation_space, env.action_space, bins=3)
    wrapped = SAQActionWrapper(env, grid)
    assert wrapped._saved_kwargs == {"action_set": grid}
    assert wrapped._saved_kwargs["action_set"] is grid  # recorded by reference, not copied
    last = wrapped.spec.additional_wrappers[-1]
    assert last.name == "SAQActionWrapper"
    assert last.entry_point == "saq_wrappers.wrappers:SAQActionWrapper"
    assert last.kwargs == {"action_set": grid}
    assert env.spec.additional_wrappers == ()  # the inner spec is untouched

    rebuilt = gym.make(wrapped.spec)
    assert isinstance(rebuilt, SAQActionWrapper) and rebuilt.action_space == Discrete(3)
    assert rebuilt.spec.additional_wrappers[-1].name == "SAQActionWrapper"
    obs_a, _ = wrapped.reset(seed=7)
    obs_b, _ = rebuilt.reset(seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    step_a = wrapped.step(2)
    step_b = rebuilt.step(2)
    np.testing.assert_array_equal(step_a[0], step_b[0])
    np.testing.assert_array_equal(step_a[4]["continuous_action"], [2.0])


# --------------------------------------------------------------------------- vector env


def _sync(lengths: tuple[int, ...], copy: bool = True) -> SyncVectorEnv:
    return SyncVectorEnv(
        [lambda n=n: RecorderEnv(episode_length=n) for n in lengths], copy=copy
    )


def test_vector_spaces() -> None:
    envs = SAQVectorActionWrapper(_sync((3, 3, 3, 3)), AffineActionSet(n=5))
    assert envs.single_action_space == Discrete(5)
    assert envs.action_space == MultiDiscrete([5, 5, 5, 5])
    assert envs.single_observation_space == OBS_SPACE
    assert envs.observation_space == envs.env.observation_space
    assert envs._saved_kwargs["action_set"] is envs.action_set


@pytest.mark.parametrize("copy", [True, False])
def test_vector_decodes_batch_in_one_call_across_autoresets(copy: bool) -> None:
    lengths = (2, 3, 4)
    action_set = AffineActionSet()
    envs = SAQVectorActionWrapper(_sync(lengths, copy=copy), action_set)
    rng = np.random.default_rng(1)
    obs, _ = envs.reset(seed=0)
    obs = obs.copy()
    expected: list[list[np.ndarray]] = [[] for _ in lengths]
    ended = np.zeros(len(lengths), dtype=bool)
    autoreset_steps = 0
    for _ in range(13):
        k = rng.integers(N, size=len(lengths))
        calls_before = len(action_set.decode_calls)
        next_obs, _, terminated, truncated, info = envs.step(k)
        assert len(action_set.decode_calls) == calls_before + 1
        assert action_set.decode_calls[-1] == ((3, 3), (3,))
        for i in range(len(lengths)):
            want = AffineActionSet.expected(obs[i], int(k[i]))
            np.testing.assert_array_equal(info["continuous_action"][i], want)
            if not ended[i]:  # NEXT_STEP autoreset: an ended sub-env ignores this action
                expected[i].append(want)
        np.testing.assert_array_equal(info["_continuous_action"], ~ended)
        np.testing.assert_array_equal(info["action_index"], k)
        autoreset_steps += int(ended.sum())
        ended = np.logical_or(terminated, truncated)
        obs = next_obs.copy()
    assert autoreset_steps >= 6  # the run crossed many episode boundaries
    for i, sub_env in enumerate(envs.env.envs):
        received = sub_env.unwrapped.received
        assert len(received) == len(expected[i])
        for got, want in zip(received, expected[i]):
            np.testing.assert_array_equal(got, want)


def test_vector_action_masks_and_cached_table() -> None:
    action_set = AffineActionSet(stochastic=True)
    envs = SAQVectorActionWrapper(_sync((5, 5)), action_set)
    obs, _ = envs.reset(seed=0)
    for _ in range(3):
        obs, *_ = envs.step(np.array([1, 2]))
    assert action_set.candidate_calls == []
    masks = envs.action_masks()
    assert masks.shape == (2, N) and masks.dtype == np.bool_
    for i in range(2):
        np.testing.assert_array_equal(masks[i], AffineActionSet.expected_valid(obs[i]))
    table = envs._candidate_actions.copy()
    np.testing.assert_array_equal(envs.action_masks(), masks)
    assert action_set.candidate_calls == [(2, 3)]
    decode_calls = len(action_set.decode_calls)
    _, _, _, _, info = envs.step(np.array([3, 6]))
    assert len(action_set.decode_calls) == decode_calls
    np.testing.assert_array_equal(info["continuous_action"], table[[0, 1], [3, 6]])
    np.testing.assert_array_equal(envs.env.envs[1].unwrapped.received[-1], table[1, 6])


def test_vector_refuses_bad_indices_and_spaces() -> None:
    envs = SAQVectorActionWrapper(_sync((3, 3)), AffineActionSet())
    envs.reset(seed=0)
    with pytest.raises(DataError, match=rf"action index {N} of sub-env 1 is outside"):
        envs.step(np.array([0, N]))
    with pytest.raises(DataError, match="expected 2 indices"):
        envs.step(np.array([0, 1, 2]))
    with pytest.raises(SpaceMismatchError, match=r"got Discrete"):
        SAQVectorActionWrapper(
            gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"),
            FixedActionSet(Box(-5, 5, (4,), np.float32), Box(-1, 1, (1,), np.float32), [[0.0]]),
        )
    pendulums = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(SpaceMismatchError, match=r"observation shape \(3,\) differs .*\(4,\)"):
        SAQVectorActionWrapper(
            pendulums, FixedActionSet(Box(-1, 1, (4,), np.float32), Box(-2, 2, (1,)), [[0.0]])
        )
    with pytest.raises(SpaceMismatchError, match=r"action shape \(1,\) differs .*\(2,\)"):
        SAQVectorActionWrapper(
            pendulums, FixedActionSet(pendulums.single_observation_space, ACT_SPACE, [[0.0, 0.0]])
        )
    fresh = SAQVectorActionWrapper(_sync((3, 3)), AffineActionSet())
    with pytest.raises(ResetNeeded):
        fresh.step(np.array([0, 0]))


def test_vector_wrapper_on_async_env() -> None:
    envs = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="async")
    try:
        grid = FixedActionSet.grid(envs.single_observation_space, envs.single_action_space, 5)
        envs = SAQVectorActionWrapper(envs, grid)
        envs.reset(seed=0)
        _, _, _, _, info = envs.step(np.array([0, 4]))
        np.testing.assert_array_equal(info["continuous_action"], [[-2.0], [2.0]])
        assert envs.action_masks().all()
    finally:
        envs.close()


def test_agent_editing_observations_in_place_does_not_change_decoding() -> None:
    env = SAQActionWrapper(RecorderEnv(), AffineActionSet())
    obs, _ = env.reset(seed=0)
    want = AffineActionSet.expected(obs, 2)
    obs *= 0.0  # e.g. an agent normalizing the array it was given, in place
    env.step(2)
    np.testing.assert_array_equal(env.unwrapped.received[-1], want)

    envs = SAQVectorActionWrapper(_sync((4, 4), copy=False), AffineActionSet())
    batch, _ = envs.reset(seed=0)
    wants = [AffineActionSet.expected(row, 3) for row in batch]
    batch *= 0.0
    envs.step(np.array([3, 3]))
    for sub_env, want in zip(envs.env.envs, wants):
        np.testing.assert_array_equal(sub_env.unwrapped.received[-1], want)


def test_multidimensional_observations_get_a_batch_axis() -> None:
    class Grid(gym.Env[np.ndarray, np.ndarray]):
        observation_space = Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
        action_space = Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
            super().reset(seed=seed)
            return np.zeros((2, 3), np.float32), {}

        def step(self, action: np.ndarray):
            return np.zeros((2, 3), np.float32), 0.0, False, False, {}

    env = Grid()
    action_set = FixedActionSet(env.observation_space, env.action_space, [[-0.5], [0.5]])
    wrapped = SAQActionWrapper(env, action_set)
    wrapped.reset(seed=0)
    assert wrapped.current_observation.shape == (2, 3)
    _, _, _, _, info = wrapped.step(1)
    np.testing.assert_array_equal(info["continuous_action"], [0.5])
    np.testing.assert_array_equal(wrapped.action_masks(), [True, True])


def test_single_and_vector_wrappers_point_to_each_other() -> None:
    with pytest.raises(TypeError, match="use SAQVectorActionWrapper"):
        SAQActionWrapper(_sync((3, 3)), AffineActionSet())
    with pytest.raises(TypeError, match="use SAQActionWrapper"):
        SAQVectorActionWrapper(RecorderEnv(), AffineActionSet())


def test_works_with_the_vqvae_quantizer() -> None:
    from saq_wrappers.vqvae import VQVAEQuantizer

    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1.0, 1.0, (256, 3)).astype(np.float32)
    actions = rng.uniform(-2.0, 2.0, (256, 1)).astype(np.float32)
    quantizer = VQVAEQuantizer(
        env.observation_space, env.action_space, n_codes=8, hidden_sizes=(16, 16),
        embedding_dim=8, batch_size=64,
    )
    quantizer.fit(obs, actions, n_steps=5, progress=False)
    wrapped = SAQActionWrapper(env, quantizer)
    assert wrapped.action_space == Discrete(8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(wrapped, skip_render_check=True)
    assert _bug_warnings(caught) == []
    current, _ = wrapped.reset(seed=0)
    for k in (0, 5, 7):
        want = quantizer.decode(current[None], np.array([k]))[0]
        current, _, _, _, info = wrapped.step(k)
        np.testing.assert_allclose(info["continuous_action"], want, rtol=0, atol=1e-6)
    assert wrapped.action_masks().all()
