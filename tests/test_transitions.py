"""Transitions: validation, exact episode structure, the loaders' helpers, relabel statistics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers import DataError, FixedActionSet, Transitions, relabel
from saq_wrappers.transitions import as_bool_flags, derive_next_observations


def _episodes(lengths: list[int], terminated: list[bool]) -> list[dict]:
    episodes = []
    for number, (steps, done) in enumerate(zip(lengths, terminated)):
        # observation value encodes (episode, step) so any shift is visible
        obs = (1000 * number + np.arange(steps + 1, dtype=np.float32))[:, None].repeat(2, axis=1)
        episodes.append({"observations": obs, "actions": np.full((steps, 1), number, np.float32),
                         "rewards": np.arange(steps, dtype=np.float32), "terminated": done})
    return episodes


def test_from_episodes_keeps_real_final_observation_and_flags() -> None:
    t = Transitions.from_episodes(_episodes([3, 2, 4], [False, True, False]))
    assert len(t) == 9 and t.n_episodes == 3
    # next observation of each episode's last step is that episode's final observation
    assert t.next_observations[2, 0] == 3 and t.next_observations[4, 0] == 1002
    assert t.next_observations[8, 0] == 2004
    # within episodes next_obs[i] == obs[i + 1]; never across episodes
    assert np.array_equal(t.terminals, [0, 0, 0, 0, 1, 0, 0, 0, 0])
    assert np.array_equal(t.timeouts, [0, 0, 1, 0, 0, 0, 0, 0, 1])
    assert np.array_equal(t.episode_starts, [1, 0, 0, 1, 0, 1, 0, 0, 0])
    assert np.array_equal(t.episode_ids, [0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert np.allclose(t.episode_returns(), [3, 1, 6])
    picked = t.select_episodes([2, 0])
    assert np.array_equal(picked.observations[:, 0], [2000, 2001, 2002, 2003, 0, 1, 2])


def test_inputs_are_copied_and_result_is_read_only() -> None:
    obs = np.zeros((3, 2), np.float32)
    t = Transitions(obs, np.zeros((3, 1)), np.zeros(3), obs + 1, np.zeros(3, bool), np.zeros(3, bool))
    obs[0, 0] = 42.0
    assert t.observations[0, 0] == 0.0
    assert t.timeouts[-1]  # the data stops: the last episode is cut
    with pytest.raises(ValueError):
        t.observations[0, 0] = 1.0


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(observations=np.zeros((0, 2))), "empty"),
        (dict(actions=np.zeros((4, 1))), "actions has 4 rows"),
        (dict(next_observations=np.zeros((3, 5))), "next_observations has shape"),
        (dict(rewards=np.array([0.0, np.nan, 0.0])), "rewards contains NaN"),
        (dict(observations=np.full((3, 2), np.inf)), "observations contains NaN or inf"),
        (dict(terminals=np.array([0, 2, 0])), "terminals must hold booleans"),
    ],
)
def test_bad_input_raises_data_error(change: dict, message: str) -> None:
    fields = dict(observations=np.zeros((3, 2)), actions=np.zeros((3, 1)), rewards=np.zeros(3),
                  next_observations=np.zeros((3, 2)), terminals=np.zeros(3), timeouts=np.zeros(3))
    fields.update(change)
    with pytest.raises(DataError, match=message):
        Transitions(**fields)


def test_from_episodes_rejects_t_observations() -> None:
    bad = {"observations": np.zeros((3, 2)), "actions": np.zeros((3, 1)), "rewards": np.zeros(3)}
    with pytest.raises(DataError, match="T \\+ 1 observations"):
        Transitions.from_episodes([bad])


def test_as_bool_flags_accepts_0_1_refuses_the_rest_and_names_the_source() -> None:
    raw = np.array([[0.0], [1.0], [1.0]])
    flags = as_bool_flags(raw, "dones")
    assert flags.dtype == bool and np.array_equal(flags, [False, True, True])
    source = np.array([True, False])
    copied = as_bool_flags(source, "dones")
    copied[0] = False
    assert source[0]  # a copy, never a view of the input
    with pytest.raises(DataError, match=r"^terminals must hold booleans"):
        as_bool_flags(np.array([0, 2]), "terminals")
    with pytest.raises(DataError, match=r"^d.hdf5: '/data/demo_0/dones' must hold booleans"):
        as_bool_flags(np.array([0.5]), "/data/demo_0/dones", "d.hdf5")


def test_derive_next_observations_keeps_terminal_ends_and_drops_cut_ones() -> None:
    # episodes: rows 0-2 terminal at 2; rows 3-5 timeout at 5; row 6 a one-row timeout episode;
    # rows 7-8 run off the end of the data (cut).
    obs = np.arange(9, dtype=np.float32)[:, None] * 10
    terminals = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0], bool)
    timeouts = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0], bool)
    next_obs, term, tout, keep = derive_next_observations(obs, terminals, timeouts)
    assert np.array_equal(keep, [1, 1, 1, 1, 1, 0, 0, 1, 0])
    assert np.array_equal(next_obs[keep][:, 0], [10, 20, 20, 40, 50, 80])  # row 2: placeholder
    assert np.array_equal(term[keep], [0, 0, 1, 0, 0, 0])
    assert np.array_equal(tout[keep], [0, 0, 0, 0, 1, 1])  # cut one step earlier, real successor
    assert not terminals[5] and timeouts[5]  # the inputs are not modified
    t = Transitions(obs[keep], np.zeros((6, 1)), np.zeros(6), next_obs[keep], term[keep], tout[keep])
    assert t.n_episodes == 3 and not (t.terminals & t.timeouts).any()


class _NearestGrid(FixedActionSet):
    """A grid action set that can also encode (nearest grid point), for relabel tests."""

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        table = self.candidates(obs)[0][0]
        return np.abs(actions[:, None, :] - table[None]).sum(-1).argmin(1)


def test_relabel_codes_and_statistics_match_brute_force() -> None:
    space_o = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    space_a = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    grid = _NearestGrid.grid(space_o, space_a, bins=5)  # -1, -0.5, 0, 0.5, 1
    actions = np.array([[-0.9], [0.1], [0.4], [0.45], [1.0], [0.05]], np.float32)
    t = Transitions(np.zeros((6, 2)), actions, np.zeros(6), np.zeros((6, 2)), np.zeros(6), np.zeros(6))
    result = relabel(t, grid, batch_size=4, progress=False)
    assert result.n_codes == 5
    assert result.codes.tolist() == [0, 2, 3, 3, 4, 2]
    decoded = np.array([-1, 0, 0.5, 0.5, 1, 0])
    assert result.stats["mse"] == pytest.approx(np.mean((decoded - actions[:, 0]) ** 2), rel=1e-5)
    assert result.stats["dead_codes"] == 1 and result.stats["used_codes"] == 4
    usage = np.array([1, 0, 2, 2, 1]) / 6
    entropy = -(usage[usage > 0] * np.log(usage[usage > 0])).sum()
    assert result.stats["perplexity"] == pytest.approx(np.exp(entropy))


def test_relabel_rejects_shape_mismatch() -> None:
    grid = _NearestGrid.grid(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (1,)), bins=3)
    t = Transitions(np.zeros((2, 2)), np.zeros((2, 1)), np.zeros(2), np.zeros((2, 2)), np.zeros(2), np.zeros(2))
    with pytest.raises(DataError, match="observations have shape"):
        relabel(t, grid, progress=False)


def test_content_hash_tells_datasets_apart_and_ignores_copies() -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(5, 3))
    fields = dict(observations=obs, actions=rng.normal(size=(5, 2)), rewards=rng.normal(size=5),
                  next_observations=obs + 1, terminals=np.zeros(5, bool), timeouts=np.eye(5, dtype=bool)[4])
    base = Transitions(**fields).content_sha256()
    assert Transitions(**{k: np.array(v, copy=True) for k, v in fields.items()}).content_sha256() == base
    for name in fields:  # one changed value in any array changes the identity
        changed = {k: np.array(v, copy=True) for k, v in fields.items()}
        changed[name][2] = np.logical_not(changed[name][2]) if changed[name].dtype == bool else changed[name][2] + 1
        assert Transitions(**changed).content_sha256() != base, name
