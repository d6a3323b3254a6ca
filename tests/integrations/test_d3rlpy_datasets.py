"""to_discrete_dataset / to_continuous_dataset / from_d3rlpy: exact at episode ends."""

from __future__ import annotations

import d3rlpy
import numpy as np
import pytest

from saq_wrappers import DataError, Transitions
from saq_wrappers.integrations.d3rlpy import from_d3rlpy, to_continuous_dataset, to_discrete_dataset


def _transitions() -> Transitions:
    episodes = []
    for number, (steps, done) in enumerate([(5, False), (3, True), (4, False), (2, True)]):
        obs = (100 * number + np.arange(steps + 1, dtype=np.float32))[:, None] * np.ones((1, 3), np.float32)
        episodes.append({"observations": obs, "actions": np.linspace(-1, 1, steps)[:, None],
                         "rewards": 10 * number + np.arange(steps, dtype=np.float32), "terminated": done})
    return Transitions.from_episodes(episodes)


def _picked(dataset: d3rlpy.dataset.ReplayBufferBase) -> list:
    return [dataset.transition_picker(ep, i) for ep in dataset.episodes for i in range(ep.transition_count)]


def test_discrete_dataset_keeps_action_size_k_and_every_exact_transition() -> None:
    t = _transitions()
    codes = np.arange(len(t)) % 3  # only codes 0..2 used, K = 8
    dataset = to_discrete_dataset(t, codes, n_codes=8)
    assert dataset.dataset_info.action_space == d3rlpy.ActionSpace.DISCRETE
    assert dataset.dataset_info.action_size == 8
    picked = _picked(dataset)
    assert len(picked) == len(t) == dataset.transition_count
    for row, tr in enumerate(picked):
        assert np.array_equal(tr.observation, t.observations[row])
        assert int(tr.action[0]) == codes[row]
        assert tr.reward[0] == t.rewards[row]
        assert tr.terminal == float(t.terminals[row])
        if not t.terminals[row]:  # d3rlpy zeroes the next observation of terminal steps
            assert np.array_equal(tr.next_observation, t.next_observations[row])
    # the last step of the timeout episode 0 bootstraps from its real final observation (5),
    # not from episode 1's first observation (100)
    assert picked[4].next_observation[0] == 5.0 and picked[4].terminal == 0.0


def test_continuous_dataset_and_round_trip() -> None:
    t = _transitions()
    dataset = to_continuous_dataset(t)
    assert dataset.dataset_info.action_space == d3rlpy.ActionSpace.CONTINUOUS
    back = from_d3rlpy(dataset)
    for name in ("observations", "actions", "rewards", "terminals", "timeouts"):
        assert np.array_equal(getattr(back, name), getattr(t, name)), name
    live = ~t.terminals
    assert np.array_equal(back.next_observations[live], t.next_observations[live])
    assert np.all(back.next_observations[t.terminals] == 0)


def test_discrete_dataset_from_a_quantizer_like_encoder() -> None:
    from saq_wrappers import VQVAEQuantizer

    t = _transitions()
    import gymnasium as gym

    q = VQVAEQuantizer(gym.spaces.Box(-np.inf, np.inf, (3,)), gym.spaces.Box(-1, 1, (1,)), n_codes=4,
                       hidden_sizes=(16,), embedding_dim=4, n_steps=20)
    q.fit(t, progress=False)
    dataset = to_discrete_dataset(t, q, progress=False)
    assert dataset.dataset_info.action_size == 4
    codes = np.array([int(tr.action[0]) for tr in _picked(dataset)])
    assert np.array_equal(codes, q.encode(t.observations, t.actions))


@pytest.mark.parametrize(
    "codes, n_codes, message",
    [
        (np.zeros(14, np.int64), None, "n_codes is required"),
        (np.zeros(14, np.int64), 1, "must be >= 2"),
        (np.full(14, 9), 8, "must lie in \\[0, 8\\)"),
        (np.zeros(13, np.int64), 8, "expected \\(14,\\)"),
        (np.zeros(14) + 0.5, 8, "must be integers"),
    ],
)
def test_bad_codes(codes: np.ndarray, n_codes: int | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        to_discrete_dataset(_transitions(), codes, n_codes=n_codes)
