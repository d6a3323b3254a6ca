"""The wrappers' ``observe_candidates`` option: the agent sees ``(s, g(s, 1), ..., g(s, n))``.

The properties that matter to an agent whose policy reads the candidate actions (issue 37's
action-density policy): what it sees is exactly the candidate observation of the env's
observation, the action executed for index ``k`` is the candidate ``k`` it saw (not a second
decode, which differs for a sampler drawing fresh candidates), and the candidates are decoded
once per observation. ``DrawnActionSet`` draws fresh random candidates on every call, so any
extra decode shows up as an executed action the agent never saw.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.spaces import Box
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import SyncVectorEnv
from gymnasium.vector.utils import batch_space
from test_wrappers import ACT_SPACE, OBS_SPACE, RecorderEnv, _bug_warnings

from saq_wrappers.action_set import FixedActionSet
from saq_wrappers.candidate_observations import (
    candidate_observation_space,
    candidate_observations,
    split_candidate_observations,
)
from saq_wrappers.errors import DataError, SpaceMismatchError
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.wrappers import SAQActionWrapper, SAQVectorActionWrapper

N = 5
ACT_DIM = ACT_SPACE.shape[0]
OBS_DIM = OBS_SPACE.shape[0]


class DrawnActionSet:
    """State-conditioned candidates ``obs[:2] + k`` plus fresh noise on every call (like ARQ).

    Records every ``candidates`` call, the candidates it returned last, and ``decode`` calls.
    """

    def __init__(self, noise: float = 1.0) -> None:
        self.observation_space = OBS_SPACE
        self.action_space = ACT_SPACE
        self.noise = noise
        self.rng = np.random.default_rng(0)
        self.candidate_calls: list[tuple[int, ...]] = []
        self.drawn: np.ndarray | None = None
        self.decode_calls = 0

    @property
    def n(self) -> int:
        return N

    def _draw(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        actions = obs[:, None, :2] + np.arange(N, dtype=np.float32)[None, :, None]
        return (actions + self.noise * self.rng.normal(size=actions.shape)).astype(np.float32)

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.candidate_calls.append(np.shape(obs))
        self.drawn = self._draw(obs)
        return self.drawn.copy(), np.ones((len(obs), N), dtype=bool)

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        self.decode_calls += 1
        return self._draw(obs)[np.arange(len(obs)), index]


class PartlyInvalidActionSet(DrawnActionSet):
    """Once ``refuse`` is set, its first candidate is invalid (an ARQ sample below the threshold)."""

    refuse = False

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actions, valid = super().candidates(obs)
        valid[:, 0] = not self.refuse
        return actions, valid


class MatrixObsEnv(gym.Env[np.ndarray, np.ndarray]):
    """Observations that are ``(2, 3)`` matrices: candidate observations cannot append to them."""

    observation_space = Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
    action_space = Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros((2, 3), np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros((2, 3), np.float32), 0.0, False, False, {}


@pytest.fixture(scope="module")
def quantizer() -> Any:
    """A tiny SAQ quantizer of Pendulum: deterministic, state-conditioned candidates."""
    from saq_wrappers.vqvae import VQVAEQuantizer

    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1.0, 1.0, (256, 3)).astype(np.float32)
    actions = rng.uniform(-2.0, 2.0, (256, 1)).astype(np.float32)
    fitted = VQVAEQuantizer(env.observation_space, env.action_space, n_codes=8, hidden_sizes=(16, 16),
                            embedding_dim=8, batch_size=64)
    fitted.fit(obs, actions, n_steps=5, progress=False)
    return fitted


def _candidates_seen(obs: np.ndarray) -> np.ndarray:
    """The ``(B, N, ACT_DIM)`` candidates inside a batch of ``DrawnActionSet`` candidate observations."""
    return split_candidate_observations(np.atleast_2d(obs), N, ACT_DIM)[1]


def _sync(lengths: tuple[int, ...]) -> SyncVectorEnv:
    return SyncVectorEnv([lambda n=n: RecorderEnv(episode_length=n) for n in lengths])


# --------------------------------------------------------------------------- single env


def test_observations_are_the_candidate_observations_of_the_env_observation(quantizer: Any) -> None:
    env = SAQActionWrapper(gym.make("Pendulum-v1"), quantizer, observe_candidates=True)
    assert env.observation_space == candidate_observation_space(quantizer)
    assert env.observation_space.shape == (3 + 8 * 1,)
    reference = gym.make("Pendulum-v1")  # the same env without the wrapper: the raw observations
    obs, _ = env.reset(seed=0)
    raw, _ = reference.reset(seed=0)
    seen_candidates = []
    for k in (0, 3, 7, 7, 1):
        np.testing.assert_array_equal(env.current_observation, raw)
        np.testing.assert_array_equal(obs, candidate_observations(quantizer, env.current_observation[None])[0])
        assert obs.dtype == np.float32 and env.observation_space.contains(obs)
        seen_candidates.append(obs[3:])
        obs, _, _, _, info = env.step(k)
        raw, *_ = reference.step(info["continuous_action"])
    # the candidates are the state's: the test would not notice a stale table if they never moved
    assert len({tuple(c) for c in seen_candidates}) == len(seen_candidates)


@pytest.mark.parametrize("tight_bounds", [False, True])
def test_the_executed_action_is_the_candidate_the_agent_saw(tight_bounds: bool) -> None:
    base = RecorderEnv(episode_length=4)
    if tight_bounds:  # the env accepts less than the action set decodes: executed actions are clipped
        base.action_space = Box(-1.5, 1.5, shape=(ACT_DIM,), dtype=np.float32)
    env = SAQActionWrapper(base, DrawnActionSet(), observe_candidates=True)
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=0)
    for _ in range(10):
        k = int(rng.integers(N))
        want = _candidates_seen(obs)[0, k]
        if tight_bounds:
            want = np.clip(want, -1.5, 1.5)
        obs, _, terminated, truncated, info = env.step(k)
        np.testing.assert_array_equal(base.received[-1], want)
        np.testing.assert_array_equal(info["continuous_action"], want)
        if terminated or truncated:
            obs, _ = env.reset()
    assert tight_bounds == any(np.any(np.abs(a) == 1.5) for a in base.received)  # clipping happened


def test_candidates_are_decoded_once_per_observation_and_the_step_decodes_nothing() -> None:
    action_set = DrawnActionSet()
    env = SAQActionWrapper(RecorderEnv(episode_length=50), action_set, observe_candidates=True)
    obs, _ = env.reset(seed=0)
    assert action_set.candidate_calls == [(1, OBS_DIM)]
    np.testing.assert_array_equal(obs, np.concatenate([env.current_observation, action_set.drawn[0].ravel()]))
    for step in range(1, 6):
        assert env.action_masks().all()  # from the same table: every candidate shown is valid
        np.testing.assert_array_equal(env.action(2), _candidates_seen(obs)[0, 2])
        obs, *_ = env.step(step % N)
        assert action_set.candidate_calls == [(1, OBS_DIM)] * (step + 1)
        np.testing.assert_array_equal(_candidates_seen(obs)[0], action_set.drawn[0])
    assert action_set.decode_calls == 0


def test_the_agent_editing_its_observation_in_place_changes_nothing() -> None:
    base = RecorderEnv()
    env = SAQActionWrapper(base, DrawnActionSet(), observe_candidates=True)
    obs, _ = env.reset(seed=0)
    want = _candidates_seen(obs)[0, 3].copy()
    raw = env.current_observation.copy()
    obs *= 0.0  # e.g. an agent normalizing the array it was given, in place
    env.step(3)
    np.testing.assert_array_equal(base.received[-1], want)
    assert np.any(raw != 0.0)


def test_env_checker_is_clean_with_candidate_observations(quantizer: Any) -> None:
    env = SAQActionWrapper(gym.make("Pendulum-v1"), quantizer, observe_candidates=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)  # Pendulum's render needs pygame
    assert _bug_warnings(caught) == []


def test_code_weights_get_what_the_agent_sees() -> None:
    seen: list[np.ndarray] = []

    def weights(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.copy())
        return np.ones((len(obs), N))

    acting = ModeAveraging()
    env = SAQActionWrapper(RecorderEnv(), DrawnActionSet(), acting=acting, code_weights=weights,
                           observe_candidates=True)
    obs, _ = env.reset(seed=0)
    *_, info = env.step(1)
    assert len(seen) == 1 and seen[0].shape == (1, OBS_DIM + N * ACT_DIM)
    np.testing.assert_array_equal(seen[0][0], obs)
    # the mode is climbed over the candidates the agent saw, not over a second draw
    want = acting.act(_candidates_seen(obs), np.ones((1, N)), np.array([1]))[0]
    np.testing.assert_allclose(info["continuous_action"], want, rtol=0, atol=1e-6)


def test_the_env_spec_records_the_option_only_when_on() -> None:
    env = gym.make("Pendulum-v1")
    grid = FixedActionSet.grid(env.observation_space, env.action_space, bins=3)
    assert "observe_candidates" not in SAQActionWrapper(env, grid)._saved_kwargs
    wrapped = SAQActionWrapper(gym.make("Pendulum-v1"), grid, observe_candidates=True)
    assert wrapped.spec.additional_wrappers[-1].kwargs == {"action_set": grid, "observe_candidates": True}
    rebuilt = gym.make(wrapped.spec)
    assert isinstance(rebuilt, SAQActionWrapper) and rebuilt.observe_candidates
    assert rebuilt.observation_space == wrapped.observation_space
    np.testing.assert_array_equal(rebuilt.reset(seed=3)[0], wrapped.reset(seed=3)[0])


def test_default_path_passes_the_raw_observation_and_decodes_no_table() -> None:
    action_set = DrawnActionSet()
    base = RecorderEnv()
    env = SAQActionWrapper(base, action_set)
    assert env.observation_space is base.observation_space
    obs, _ = env.reset(seed=0)
    ref_obs, _ = RecorderEnv().reset(seed=0)
    np.testing.assert_array_equal(obs, ref_obs)
    obs, *_ = env.step(2)
    assert obs.shape == (OBS_DIM,) and action_set.candidate_calls == [] and action_set.decode_calls == 1


def test_non_flat_observations_and_bad_options_are_refused_clearly() -> None:
    env = MatrixObsEnv()
    action_set = FixedActionSet(env.observation_space, env.action_space, [[-0.5], [0.5]])
    message = r"observe_candidates=True .* flat \(1-D\) .*shape \(2, 3\).*FlattenObservation"
    with pytest.raises(SpaceMismatchError, match=message):
        SAQActionWrapper(env, action_set, observe_candidates=True)
    with pytest.raises(SpaceMismatchError, match=message):
        SAQVectorActionWrapper(SyncVectorEnv([MatrixObsEnv, MatrixObsEnv]), action_set, observe_candidates=True)
    with pytest.raises(TypeError, match="observe_candidates must be a bool, got str"):
        SAQActionWrapper(RecorderEnv(), DrawnActionSet(), observe_candidates="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("vector", [False, True])
def test_an_invalid_candidate_is_refused_and_leaves_nothing_to_act_on(vector: bool) -> None:
    action_set = PartlyInvalidActionSet()
    env: Any = (SAQVectorActionWrapper(_sync((5, 5)), action_set, observe_candidates=True) if vector
                else SAQActionWrapper(RecorderEnv(), action_set, observe_candidates=True))
    index = np.array([1, 1]) if vector else 1
    env.reset(seed=0)
    env.step(index)
    action_set.refuse = True  # the next observation has an invalid candidate
    with pytest.raises(DataError, match="invalid"):
        env.step(index)
    # acting on the previous observation now would be acting on a state the env has left
    assert (env.current_observations if vector else env.current_observation) is None
    with pytest.raises(ResetNeeded):
        env.step(index)
    action_set.refuse = False
    env.reset(seed=0)
    env.step(index)


# --------------------------------------------------------------------------- vector env


def test_vector_observations_and_executed_actions_across_autoresets() -> None:
    lengths = (2, 3, 4)
    action_set = DrawnActionSet()
    envs = SAQVectorActionWrapper(_sync(lengths), action_set, observe_candidates=True)
    single = candidate_observation_space(action_set)
    assert envs.single_observation_space == single
    assert envs.observation_space == batch_space(single, len(lengths))
    reference = _sync(lengths)  # RecorderEnv's observations do not depend on the actions
    obs, _ = envs.reset(seed=0)
    raw, _ = reference.reset(seed=0)
    rng = np.random.default_rng(2)
    ended = np.zeros(len(lengths), dtype=bool)
    autoresets = 0
    for step in range(1, 14):
        np.testing.assert_array_equal(envs.current_observations, raw)
        np.testing.assert_array_equal(obs, np.concatenate([raw, action_set.drawn.reshape(len(raw), -1)], axis=1))
        assert envs.observation_space.contains(obs)
        assert action_set.candidate_calls == [(len(lengths), OBS_DIM)] * step  # one batched call per step
        k = rng.integers(N, size=len(lengths))
        want = _candidates_seen(obs)[np.arange(len(lengths)), k]
        received_before = [len(e.unwrapped.received) for e in envs.env.envs]
        obs, _, terminated, truncated, info = envs.step(k)
        raw, *_ = reference.step(np.zeros((len(lengths), ACT_DIM), np.float32))
        np.testing.assert_array_equal(info["continuous_action"], want)
        for i, sub_env in enumerate(envs.env.envs):
            received = sub_env.unwrapped.received
            if ended[i]:  # NEXT_STEP autoreset: this step reset the sub-env and ignored its action
                assert len(received) == received_before[i]
            else:
                np.testing.assert_array_equal(received[-1], want[i])
        autoresets += int(ended.sum())
        ended = np.logical_or(terminated, truncated)
    assert autoresets >= 6 and action_set.decode_calls == 0


def test_vector_candidate_observations_of_a_quantizer(quantizer: Any) -> None:
    envs = SAQVectorActionWrapper(gym.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync"), quantizer,
                                  observe_candidates=True)
    obs, _ = envs.reset(seed=0)
    for k in ([0, 4, 7], [2, 2, 2]):
        np.testing.assert_array_equal(obs, candidate_observations(quantizer, envs.current_observations))
        want = split_candidate_observations(obs, 8, 1)[1][np.arange(3), k]
        obs, *_, info = envs.step(np.array(k))
        np.testing.assert_array_equal(info["continuous_action"], want)
    envs.close()


def test_vector_code_weights_get_what_the_agent_sees() -> None:
    seen: list[np.ndarray] = []

    def weights(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.copy())
        return np.ones((len(obs), N))

    envs = SAQVectorActionWrapper(_sync((3, 3, 3)), DrawnActionSet(), acting=ModeAveraging(),
                                  code_weights=weights, observe_candidates=True)
    obs, _ = envs.reset(seed=0)
    envs.step(np.array([0, 1, 2]))
    assert len(seen) == 1 and seen[0].shape == (3, OBS_DIM + N * ACT_DIM)
    np.testing.assert_array_equal(seen[0], obs)


def test_vector_default_path_is_unchanged() -> None:
    action_set = DrawnActionSet()
    envs = SAQVectorActionWrapper(_sync((3, 3)), action_set)
    assert envs.single_observation_space == OBS_SPACE
    assert envs.observation_space == envs.env.observation_space
    assert "observe_candidates" not in envs._saved_kwargs
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, OBS_DIM) and action_set.candidate_calls == []
