"""The built-in scripted expert and the cached quickstart dataset."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers import experts
from saq_wrappers.experts import PendulumSwingUpExpert, quickstart_dataset
from saq_wrappers.rollouts import StepPolicy, random_policy, rollout
from saq_wrappers.transitions import Transitions


def _episodes(env: gym.Env, policy: StepPolicy, n_episodes: int, seed: int) -> Transitions:  # type: ignore[type-arg]
    return Transitions.from_episodes(rollout(env, policy, n_episodes=n_episodes, seed=seed, progress=False))


def test_scripted_expert_swings_up_and_balances() -> None:
    env = gym.make("Pendulum-v1")
    expert = _episodes(env, PendulumSwingUpExpert().step_policy(), 5, seed=3)
    random = _episodes(env, random_policy(env.action_space, 3), 5, seed=3)
    assert expert.episode_returns().mean() > -250  # SB3 zoo's SAC reaches about -150
    assert random.episode_returns().mean() < -700
    # upright at the end of every episode: cos(theta) close to 1
    last = np.flatnonzero(expert.timeouts)
    assert np.all(expert.next_observations[last, 0] > 0.99)
    assert np.all(expert.timeouts[last]) and not expert.terminals.any()  # Pendulum only truncates


def test_quickstart_dataset_is_cached_and_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, meta = quickstart_dataset(cache_dir=tmp_path, n_episodes=3, progress=False)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")

    def no_rollouts(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached dataset was generated again")

    # a second call must read the cache: generating again is impossible now
    monkeypatch.setattr(experts, "rollout", no_rollouts)
    second, meta2 = quickstart_dataset(cache_dir=tmp_path, n_episodes=3, progress=False)
    assert meta == meta2 and len(first) == 600
    for name, array in first.to_dict().items():
        assert np.array_equal(array, getattr(second, name)), name
    assert meta["random_return"] < meta["dataset_mean_return"] < meta["expert_return"] + 50
    # another recipe (more episodes) is another cache entry, not the cached one
    with pytest.raises(AssertionError, match="generated again"):
        quickstart_dataset(cache_dir=tmp_path, n_episodes=4, progress=False)


def test_quickstart_noise_is_in_half_action_ranges(tmp_path: Path) -> None:
    """``noise_std`` is in half action ranges (rollouts.noisy_policy's convention): 0.2 on
    Pendulum's [-2, 2] is a std of 0.4 around the expert's action (rows far from the bounds,
    where clipping does not shrink it); 0.2 of the full range would be 0.8."""
    data, meta = quickstart_dataset(cache_dir=tmp_path, n_episodes=5, progress=False)
    assert meta["noise_std"] == 0.2
    clean = PendulumSwingUpExpert()(data.observations)[:, 0]
    inside = np.abs(clean) < 0.5
    assert inside.sum() > 300
    assert np.std(data.actions[inside, 0] - clean[inside]) == pytest.approx(0.4, rel=0.1)
