"""D4RL-style hdf5: exact round trips, honest episode ends without next_observations, clear errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d4rl import load_d4rl_hdf5, write_d4rl_hdf5
from saq_wrappers.transitions import Transitions

# Episodes of a flat D4RL table: (length, how it ends). "end" = the file stops mid-episode.
LAYOUT = [(3, "terminal"), (4, "timeout"), (1, "timeout"), (2, "terminal"), (3, "end")]


def _table() -> dict[str, np.ndarray]:
    obs, actions, rewards, terminals, timeouts = [], [], [], [], []
    for e, (steps, end) in enumerate(LAYOUT):
        for t in range(steps):
            obs.append([100.0 * e + t, -1.0 * e])
            actions.append([0.01 * t, 0.5 - 0.1 * e, 0.25])
            rewards.append(10.0 * e + t)
            last = t == steps - 1
            terminals.append(last and end == "terminal")
            timeouts.append(last and end == "timeout")
    return {
        "observations": np.array(obs, np.float32),
        "actions": np.array(actions, np.float32),
        "rewards": np.array(rewards, np.float32),
        "terminals": np.array(terminals),
        "timeouts": np.array(timeouts),
    }


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
        handle.create_group("infos").create_dataset("qpos", data=np.zeros((3, 2)))
        handle.create_group("metadata").attrs["algorithm"] = "test"
    return path


def test_round_trip_with_next_observations_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 12
    original = Transitions(
        observations=rng.standard_normal((n, 4)),
        actions=rng.uniform(-1, 1, (n, 2)),
        rewards=rng.standard_normal(n),
        next_observations=rng.standard_normal((n, 4)),
        terminals=np.isin(np.arange(n), [3]),
        timeouts=np.isin(np.arange(n), [7, 11]),
    )
    path = write_d4rl_hdf5(original, tmp_path / "data.hdf5")
    loaded = load_d4rl_hdf5(path)
    for key, value in original.to_dict().items():
        np.testing.assert_array_equal(getattr(loaded, key), value, err_msg=key)
    assert [s.stop for s in loaded.episode_slices()] == [4, 8, 12]


def test_without_next_observations_episode_ends_are_honest(tmp_path: Path) -> None:
    table = _table()
    data = load_d4rl_hdf5(_write(tmp_path / "d4rl.hdf5", table))
    # Kept: terminal episodes whole; timeout-cut episodes lose their last row (no successor
    # stored); the 1-step timeout episode vanishes; the final unfinished episode is cut too.
    expected_lengths = [3, 3, 2, 2]
    assert [s.stop - s.start for s in data.episode_slices()] == expected_lengths
    assert len(data) == sum(expected_lengths)
    kept_episodes = [0, 1, 3, 4]
    for sl, e in zip(data.episode_slices(), kept_episodes):
        steps, end = LAYOUT[e]
        n = sl.stop - sl.start
        np.testing.assert_array_equal(data.observations[sl, 0], [100.0 * e + t for t in range(n)])
        np.testing.assert_allclose(data.rewards[sl], [10.0 * e + t for t in range(n)])
        if end == "terminal":
            assert data.terminals[sl.stop - 1] and not data.timeouts[sl.stop - 1]
            # Real successors inside, placeholder (own observation) at the terminal step.
            np.testing.assert_array_equal(data.next_observations[sl][:-1], data.observations[sl][1:])
            np.testing.assert_array_equal(data.next_observations[sl.stop - 1], data.observations[sl.stop - 1])
        else:
            assert data.timeouts[sl.stop - 1] and not data.terminals[sl.stop - 1]
            # Every next observation is the real one, including the new last row's.
            np.testing.assert_array_equal(data.next_observations[sl, 0], [100.0 * e + t + 1 for t in range(n)])
            np.testing.assert_array_equal(data.next_observations[sl, 1], -1.0 * e)
    # No next observation ever comes from another episode.
    assert (data.next_observations[:, 1] == data.observations[:, 1]).all()
    assert not (data.terminals & data.timeouts).any()


def test_bad_inputs_are_clear(tmp_path: Path) -> None:
    table = _table()
    missing = dict(table)
    del missing["timeouts"]
    path = _write(tmp_path / "missing.hdf5", missing)
    with pytest.raises(DataError, match=r"missing.hdf5.*'timeouts'"):
        load_d4rl_hdf5(path)

    short = dict(table)
    short["actions"] = table["actions"][:-2]
    path = _write(tmp_path / "short.hdf5", short)
    with pytest.raises(DataError, match=r"short.hdf5.*'actions' has 11 rows.*13.*equal lengths"):
        load_d4rl_hdf5(path)

    bad_next = dict(table, next_observations=np.zeros((13, 5), np.float32))
    path = _write(tmp_path / "next.hdf5", bad_next)
    with pytest.raises(DataError, match=r"next.hdf5.*'next_observations'.*expected the shape"):
        load_d4rl_hdf5(path)

    flags = dict(table, terminals=np.full(13, 2))
    path = _write(tmp_path / "flags.hdf5", flags)
    with pytest.raises(DataError, match=r"flags.hdf5.*'terminals'.*0/1"):
        load_d4rl_hdf5(path)

    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\nthis is not really hdf5")
    with pytest.raises(DataError, match=r"corrupt.hdf5.*not a readable hdf5"):
        load_d4rl_hdf5(corrupt)
    with pytest.raises(DataError, match=r"absent.hdf5' does not exist \(expected a D4RL-style .hdf5 dataset\)"):
        load_d4rl_hdf5(tmp_path / "absent.hdf5")


@pytest.mark.parametrize(
    "key, shape", [("observations", r"\(N, obs_dim\)"), ("rewards", r"\(N,\)"), ("next_observations", r"\(N, obs_dim\)")]
)
def test_a_scalar_dataset_names_the_key_and_the_shape(key: str, shape: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "scalar.hdf5", dict(_table(), **{key: np.float32(1.0)}))
    with pytest.raises(DataError, match=rf"scalar.hdf5: '{key}' is a scalar, expected an array of shape {shape}"):
        load_d4rl_hdf5(path)


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_d4rl_hdf5(_write(tmp_path / "d4rl.hdf5", _table()))
    real = h5py.Group.create_dataset
    calls = {"n": 0}

    def flaky(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_d4rl_hdf5(data, tmp_path / "out.hdf5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d4rl.hdf5"]
