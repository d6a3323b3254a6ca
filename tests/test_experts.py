"""The built-in scripted expert and the cached quickstart dataset."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers import experts
from saq_wrappers.experts import PendulumSwingUpExpert, collect_transitions, quickstart_dataset


def test_scripted_expert_swings_up_and_balances() -> None:
    env = gym.make("Pendulum-v1")
    expert = collect_transitions(env, PendulumSwingUpExpert(), 5, seed=3, progress=False)
    random = collect_transitions(env, None, 5, seed=3, progress=False)
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
    monkeypatch.setattr(experts, "collect_transitions", no_rollouts)
    second, meta2 = quickstart_dataset(cache_dir=tmp_path, n_episodes=3, progress=False)
    assert meta == meta2 and len(first) == 600
    for name, array in first.to_dict().items():
        assert np.array_equal(array, getattr(second, name)), name
    assert meta["random_return"] < meta["dataset_mean_return"] < meta["expert_return"] + 50
    # another recipe (more episodes) is another cache entry, not the cached one
    with pytest.raises(AssertionError, match="generated again"):
        quickstart_dataset(cache_dir=tmp_path, n_episodes=4, progress=False)
