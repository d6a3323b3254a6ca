"""``ScoreSupportSampler``: a trained score model on a Figure A.1-like conditional distribution.

Data: ``s ~ U(-1, 1)``; for ``s > 0`` the action is uniform on ``[-1.5, -1] U [1, 1.5]`` (two
disjoint intervals), for ``s <= 0`` uniform on ``[-0.3, 0.3]``. A small network (64 wide, 2 blocks,
1,500 DSM steps) is trained once per module, so tolerances are loose: >= 90% of valid candidates
inside the support (0.1 margin), and the model's density is far higher inside the support
than in the gap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from saq_wrappers.action_set import ActionSet
from saq_wrappers.errors import CheckpointError, DataError
from saq_wrappers.score import NotFittedError, ScoreSupportSampler
from saq_wrappers.vqvae.normalization import Normalizer

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
ACT_SPACE = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def _dataset(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    side = rng.choice([-1.0, 1.0], n)
    wide = side * rng.uniform(1.0, 1.5, n)
    narrow = rng.uniform(-0.3, 0.3, n)
    acts = np.where(obs[:, 0] > 0, wide, narrow)[:, None].astype(np.float32)
    return obs, acts


def _in_support(obs: np.ndarray, acts: np.ndarray, margin: float = 0.1) -> np.ndarray:
    a = np.abs(acts)
    s = np.broadcast_to(obs, acts.shape)
    pos = (a > 1.0 - margin) & (a < 1.5 + margin)
    neg = a < 0.3 + margin
    return np.where(s > 0, pos, neg)


@pytest.fixture(scope="module")
def sampler() -> ScoreSupportSampler:
    obs, acts = _dataset(4000)
    model = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, n_samples=30, hidden=64, n_blocks=2, seed=0)
    model.fit(obs, acts, n_steps=1500, batch_size=256, learning_rate=2e-3, progress=False)
    return model


QUERY = np.array([[-0.6], [-0.2], [0.3], [0.7]], dtype=np.float32)


def test_public_names_stay_importable_from_the_package() -> None:
    import saq_wrappers
    import saq_wrappers.score as score
    from saq_wrappers.score.support_sampler import ScoreSupportSampler as defined

    assert saq_wrappers.ScoreSupportSampler is ScoreSupportSampler is defined
    for name in score.__all__:
        assert getattr(score, name) is not None, name
    assert score.NotFittedError is saq_wrappers.NotFittedError


def test_is_an_action_set_with_bounded_candidates(sampler: ScoreSupportSampler) -> None:
    assert isinstance(sampler, ActionSet)
    assert sampler.n == 30
    actions, valid = sampler.candidates(QUERY)
    assert actions.shape == (4, 30, 1) and actions.dtype == np.float32
    assert valid.shape == (4, 30) and valid.dtype == bool
    assert np.all(actions >= ACT_SPACE.low) and np.all(actions <= ACT_SPACE.high)


def test_valid_candidates_fall_in_the_disjoint_support(sampler: ScoreSupportSampler) -> None:
    obs = np.linspace(-0.9, 0.9, 10, dtype=np.float32)[:, None]
    actions, valid = sampler.candidates(obs)
    inside = _in_support(obs, actions[..., 0])
    assert valid.mean() > 0.5
    assert inside[valid].mean() > 0.9
    # Both intervals of the s > 0 states are populated (multi-modality is kept).
    pos = actions[obs[:, 0] > 0][..., 0][valid[obs[:, 0] > 0]]
    assert (pos > 0.5).mean() > 0.2 and (pos < -0.5).mean() > 0.2


def test_density_is_high_in_support_and_low_in_the_gap(sampler: ScoreSupportSampler) -> None:
    obs = np.full((3, 1), 0.5, dtype=np.float32)
    ll = sampler.log_likelihood(obs, np.array([[1.25], [-1.25], [0.0]], dtype=np.float32), divergence="exact")
    assert ll[0] > -5 and ll[1] > -5
    assert ll[2] < ll[0] - 3 and ll[2] < -5  # the gap between the intervals is out of support
    # Original-space densities differ from normalized ones by the z-scoring Jacobian only.
    orig = sampler.log_likelihood(obs, np.array([[1.25], [-1.25], [0.0]], dtype=np.float32),
                                  divergence="exact", space="original")
    np.testing.assert_allclose(orig - ll, -np.log(sampler.normalizer.act_std).sum(), rtol=1e-6)


def test_fast_log_likelihood_agrees_with_rk45_on_a_trained_net(sampler: ScoreSupportSampler) -> None:
    acts, fast = sampler.candidates_with_log_likelihood(QUERY)
    inside = (acts[..., 0] > ACT_SPACE.low[0]) & (acts[..., 0] < ACT_SPACE.high[0])  # unclipped
    obs = np.repeat(QUERY, 30, axis=0)
    slow = sampler.log_likelihood(obs, acts.reshape(-1, 1), divergence="exact").reshape(4, 30)
    diff = np.abs(fast - slow)[inside]
    assert np.median(diff) < 0.1
    assert np.quantile(diff, 0.9) < 0.5


def test_decode_and_determinism(sampler: ScoreSupportSampler, tmp_path: Path) -> None:
    actions, valid = sampler.candidates(QUERY)
    idx = np.array([0, 5, 17, 29])
    np.testing.assert_array_equal(sampler.decode(QUERY, idx), actions[np.arange(4), idx])
    # Recomputed without the cache (a reloaded sampler): same candidates up to float rounding.
    path = sampler.save(tmp_path / "sampler.safetensors")
    again = ScoreSupportSampler.load(path)
    actions2, valid2 = again.candidates(QUERY[::-1].copy())
    np.testing.assert_allclose(actions2[::-1], actions, atol=1e-5)
    np.testing.assert_array_equal(valid2[::-1], valid)
    # A different seed gives different candidates.
    again.seed = 1
    again._cache.clear()
    assert not np.allclose(again.candidates(QUERY)[0], actions)


def test_inputs_are_not_modified(sampler: ScoreSupportSampler) -> None:
    obs = QUERY.copy()
    sampler.candidates(obs)
    sampler.decode(obs, np.zeros(4, dtype=np.int64))
    np.testing.assert_array_equal(obs, QUERY)


class _LineEnv(gym.Env[np.ndarray, np.ndarray]):
    observation_space = OBS_SPACE
    action_space = ACT_SPACE

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._s = np.array([0.5], dtype=np.float32)
        return self._s.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.last_action = np.asarray(action).copy()
        self._s = np.array([-0.5], dtype=np.float32)
        return self._s.copy(), 0.0, False, False, {}


def test_works_with_the_saq_action_wrapper(sampler: ScoreSupportSampler) -> None:
    from saq_wrappers.wrappers import SAQActionWrapper

    env = SAQActionWrapper(_LineEnv(), sampler)
    assert env.action_space == gym.spaces.Discrete(30)
    obs, _ = env.reset(seed=0)
    masks = env.action_masks()
    actions, valid = sampler.candidates(obs[None])
    np.testing.assert_array_equal(masks, valid[0])
    index = int(np.flatnonzero(masks)[0])
    _, _, _, _, info = env.step(index)
    np.testing.assert_array_equal(info["continuous_action"], actions[0, index])
    np.testing.assert_array_equal(env.unwrapped.last_action, actions[0, index])


def test_bad_inputs(sampler: ScoreSupportSampler, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="shape"):
        sampler.candidates(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(DataError, match="NaN"):
        sampler.candidates(np.array([[np.nan]], dtype=np.float32))
    with pytest.raises(DataError, match="indices"):
        sampler.decode(QUERY, np.array([0, 1, 2, 30]))
    with pytest.raises(DataError, match=">= 1"):
        ScoreSupportSampler(OBS_SPACE, ACT_SPACE, n_samples=0)
    with pytest.raises(DataError, match=">= 1"):
        sampler.sample(QUERY, n=0)
    fresh = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, n_samples=4, hidden=16, n_blocks=1)
    with pytest.raises(NotFittedError):
        fresh.candidates(QUERY)
    obs, acts = _dataset(16)
    with pytest.raises(DataError, match="expected \\(16, 1\\)"):
        fresh.fit(obs, np.zeros((16, 2), dtype=np.float32), n_steps=1, progress=False)
    bad = acts.copy()
    bad[3, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fresh.fit(obs, bad, n_steps=1, progress=False)
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        ScoreSupportSampler.load(tmp_path / "junk.safetensors")


def test_fit_uses_the_one_normalizer_in_float64_with_the_samplers_floor(tmp_path: Path) -> None:
    """The sampler's z-scoring is :class:`Normalizer`'s, fitted in float64: observations far from
    zero (where a float32 mean loses digits) and a constant action dimension (floored at the
    sampler's ``std_floor``, 0.05, not the quantizer's 1e-3); saved and loaded unchanged."""
    rng = np.random.default_rng(0)
    obs = (1e5 + rng.standard_normal((4097, 1))).astype(np.float32)
    acts = np.stack([rng.uniform(-1, 1, 4097), np.full(4097, 0.5)], axis=1).astype(np.float32)
    space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    sampler = ScoreSupportSampler(space, gym.spaces.Box(-1.0, 1.0, (2,), np.float32), n_samples=2, hidden=8, n_blocks=1)
    sampler.fit(obs, acts, n_steps=1, progress=False)
    expected = Normalizer.fit(obs, acts, std_floor=0.05)
    assert obs.std(0)[0] != expected.obs_std[0] and obs.mean(0)[0] != expected.obs_mean[0]  # float32 differs
    assert sampler.normalizer.act_std[1] == np.float32(0.05)
    sampler.save(tmp_path / "sampler.safetensors")
    loaded = ScoreSupportSampler.load(tmp_path / "sampler.safetensors").normalizer
    for name, values in expected.as_dict().items():
        assert np.array_equal(getattr(sampler.normalizer, name), values), name
        assert np.array_equal(getattr(loaded, name), values), name


def test_eps_that_rejects_everything_gives_all_false_masks(sampler: ScoreSupportSampler) -> None:
    strict = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, n_samples=30, log_eps=1e6, hidden=64, n_blocks=2)
    strict._set_model(list(sampler.model.members))
    strict.normalizer = sampler.normalizer
    _, valid = strict.candidates(QUERY)
    assert not valid.any()  # documented: nothing is valid; ARQ still bootstraps from the dataset action


def _clone(sampler: ScoreSupportSampler, **kwargs: Any) -> ScoreSupportSampler:
    other = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, n_samples=30, hidden=64, n_blocks=2, **kwargs)
    other._set_model(list(sampler.model.members))
    other.normalizer = sampler.normalizer
    return other


def test_default_fast_path_bf16_tangents_match_fp32_and_previous_rk4(sampler: ScoreSupportSampler) -> None:
    assert sampler.config["method"] == "multistep" and sampler.config["tangent_dtype"] == "auto"
    acts, ll = _clone(sampler, tangent_dtype="bfloat16").candidates_with_log_likelihood(QUERY)
    acts32, ll32 = _clone(sampler, tangent_dtype="float32").candidates_with_log_likelihood(QUERY)
    np.testing.assert_allclose(acts32, acts, atol=1e-5)  # the trajectory is float32 either way
    assert np.abs(ll32 - ll).max() < 0.05
    # The previous default (RK4 x 10) on the same prior draws: same samples, close log-likelihoods.
    acts_rk4, ll_rk4 = _clone(sampler, method="rk4", steps=10).candidates_with_log_likelihood(QUERY)
    inside = (np.abs(acts[..., 0]) < ACT_SPACE.high[0]) & (np.abs(acts_rk4[..., 0]) < ACT_SPACE.high[0])
    assert np.median(np.abs(acts_rk4 - acts)) < 0.01
    assert np.median(np.abs(ll_rk4 - ll)[inside]) < 0.1
    with pytest.raises(DataError, match="tangent_dtype"):
        ScoreSupportSampler(OBS_SPACE, ACT_SPACE, tangent_dtype="float16")  # type: ignore[arg-type]


def test_auto_tangents_are_bfloat16_only_on_cpus_that_have_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulated bfloat16 made the ARQ table 10x slower on an AVX2-only CPU: auto must not pick it."""
    from saq_wrappers.score import support_sampler

    for native, expected in ((False, torch.float32), (True, torch.bfloat16)):
        monkeypatch.setattr(support_sampler, "native_bfloat16_cpu", lambda native=native: native)
        assert support_sampler.resolve_tangent_dtype("auto") == expected
        assert support_sampler.resolve_tangent_dtype("float32") == torch.float32
        assert support_sampler.resolve_tangent_dtype("bfloat16") == torch.bfloat16
