"""Minari reader and relabeled writer: exact at episode ends, env-less datasets, atomic output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from saq_wrappers.errors import DataError, OutputPathError
from saq_wrappers.integrations.minari import (
    load_minari,
    minari_info,
    write_minari_dataset,
    write_relabeled_minari,
)

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT_SPACE = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
# (length, terminated): episodes of different lengths, ending either way.
EPISODES = [(3, True), (5, False), (1, False), (4, True)]


def _obs(episode: int, t: int) -> list[float]:
    """Distinctive observation: episode and step readable from the values."""
    return [1000.0 * (episode + 1) + t, float(episode), float(t)]


def _buffers() -> list[EpisodeBuffer]:
    buffers = []
    for e, (steps, terminated) in enumerate(EPISODES):
        buffers.append(
            EpisodeBuffer(
                id=e,
                seed=100 + e,
                observations=np.array([_obs(e, t) for t in range(steps + 1)], np.float32),
                actions=np.array([[0.1 * e + 0.01 * t + 0.5] for t in range(steps)], np.float32),
                rewards=[float(10 * e + t) for t in range(steps)],
                terminations=[False] * (steps - 1) + [terminated],
                truncations=[False] * (steps - 1) + [not terminated],
            )
        )
    return buffers


def _create(dataset_id: str, env: str | None = None, **kwargs) -> None:
    spaces = {} if env else {"observation_space": OBS_SPACE, "action_space": ACT_SPACE}
    with pytest.warns(UserWarning):  # Minari warns about missing author etc.
        minari.create_dataset_from_buffers(dataset_id, _buffers(), env=env, **spaces, **kwargs)


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class ParityQuantizer:
    """A deterministic stand-in quantizer: code = (step index of the observation) mod K."""

    n = 3
    observation_space = OBS_SPACE
    action_space = ACT_SPACE

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        assert obs.shape[1:] == (3,) and actions.shape[1:] == (1,)
        return (obs[:, 2].astype(np.int64) + (actions[:, 0] > 0.6)) % self.n


def test_next_observations_are_exact_at_episode_ends() -> None:
    _create("saqtest/offbyone-v0")
    data = load_minari("saqtest/offbyone-v0")
    assert len(data) == sum(s for s, _ in EPISODES)
    assert data.n_episodes == len(EPISODES)
    for e, (sl, (steps, terminated)) in enumerate(zip(data.episode_slices(), EPISODES)):
        assert sl.stop - sl.start == steps
        expected_obs = np.array([_obs(e, t) for t in range(steps)], np.float32)
        expected_next = np.array([_obs(e, t + 1) for t in range(steps)], np.float32)
        np.testing.assert_array_equal(data.observations[sl], expected_obs)
        np.testing.assert_array_equal(data.next_observations[sl], expected_next)
        # The last step's next observation is this episode's own final observation.
        np.testing.assert_array_equal(data.next_observations[sl.stop - 1], _obs(e, steps))
        assert data.terminals[sl.stop - 1] == terminated
        assert data.timeouts[sl.stop - 1] == (not terminated)
        assert not data.terminals[sl.start : sl.stop - 1].any()
        assert not data.timeouts[sl.start : sl.stop - 1].any()
        np.testing.assert_allclose(data.rewards[sl], [10 * e + t for t in range(steps)])
        np.testing.assert_allclose(data.actions[sl, 0], [0.1 * e + 0.01 * t + 0.5 for t in range(steps)], rtol=1e-6)


def test_d3rlpy_get_minari_shifts_observations_and_we_do_not() -> None:
    """d3rlpy 2.8.1 concatenates T+1 observations per episode against T actions."""
    d3rlpy_datasets = pytest.importorskip("d3rlpy.datasets")
    _create("saqtest/pendulum-shift-v0", env="Pendulum-v1")
    ours = load_minari("saqtest/pendulum-shift-v0")
    theirs, _ = d3rlpy_datasets.get_minari("saqtest/pendulum-shift-v0")
    their_obs = np.concatenate([ep.observations for ep in theirs.episodes])[: len(ours)]
    starts = np.flatnonzero(ours.episode_starts)
    # Episode 0 agrees; episode 1 starts with episode 0's final observation, and from there on
    # their observations are shifted by one more row per episode (pairing the wrong obs with
    # each action), while ours start every episode at its reset observation.
    np.testing.assert_array_equal(their_obs[: starts[1]], ours.observations[: starts[1]])
    np.testing.assert_array_equal(their_obs[starts[1]], _obs(0, EPISODES[0][0]))
    for e in range(1, len(EPISODES)):
        assert not np.array_equal(their_obs[starts[e]], ours.observations[starts[e]])
        np.testing.assert_array_equal(ours.observations[starts[e]], _obs(e, 0))
        episode_of_their_row = their_obs[starts[e] :, 0] // 1000 - 1
        assert (episode_of_their_row < e).any()  # rows of earlier episodes leak into episode e


def test_load_by_path_envless_and_reference_scores(tmp_path: Path) -> None:
    _create("saqtest/envless-v0")
    info = minari_info("saqtest/envless-v0")
    assert info.env_spec is None and info.total_episodes == len(EPISODES)
    assert info.ref_min_score is None
    with pytest.raises(DataError, match="no reference scores"):
        info.normalized_score([1.0])
    with pytest.raises(DataError, match="stores no environment"):
        info.make_env()
    by_path = load_minari(info.data_path.parent)
    by_id = load_minari("saqtest/envless-v0")
    assert by_id.n_episodes == len(EPISODES)
    for key, value in by_id.to_dict().items():
        np.testing.assert_array_equal(getattr(by_path, key), value)

    # Minari keeps reference scores only for datasets with an (evaluation) env.
    _create("saqtest/pendulum-scores-v0", env="Pendulum-v1", ref_min_score=-10.0, ref_max_score=30.0)
    info = minari_info("saqtest/pendulum-scores-v0")
    assert info.ref_min_score == -10.0 and info.ref_max_score == 30.0
    np.testing.assert_allclose(info.normalized_score([-10.0, 10.0, 30.0]), [0.0, 50.0, 100.0])
    env = info.make_env()
    assert env.spec is not None and env.spec.id == "Pendulum-v1"
    env.close()


def test_unknown_id_says_how_to_download() -> None:
    with pytest.raises(DataError) as error:
        load_minari("saqtest/does-not-exist-v0")
    message = str(error.value)
    assert "saqtest/does-not-exist-v0" in message
    assert "minari download" in message and "download=True" in message


def test_not_a_minari_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a Minari dataset folder"):
        load_minari(tmp_path)


def test_write_relabeled_minari_opens_with_minari(tmp_path: Path) -> None:
    _create("saqtest/relabel-src-v0", env="Pendulum-v1", ref_min_score=-1.0, ref_max_score=2.0)
    source_folder = minari_info("saqtest/relabel-src-v0").data_path
    before = _tree_digest(source_folder)
    quantizer = ParityQuantizer()
    write_relabeled_minari("saqtest/relabel-src-v0", quantizer, "saqtest/relabel-codes-v0")
    assert _tree_digest(source_folder) == before  # input untouched

    relabeled = minari.load_dataset("saqtest/relabel-codes-v0")
    assert relabeled.action_space == gym.spaces.Discrete(3)
    original = load_minari("saqtest/relabel-src-v0")
    expected_codes = quantizer.encode(np.asarray(original.observations), np.asarray(original.actions))
    codes = np.concatenate([ep.actions for ep in relabeled.iterate_episodes()])
    np.testing.assert_array_equal(codes, expected_codes)
    for ep, src in zip(relabeled.iterate_episodes(), minari.load_dataset("saqtest/relabel-src-v0").iterate_episodes()):
        np.testing.assert_array_equal(ep.observations, src.observations)
        np.testing.assert_array_equal(ep.rewards, src.rewards)
        np.testing.assert_array_equal(ep.terminations, src.terminations)
        np.testing.assert_array_equal(ep.truncations, src.truncations)
    metadata = relabeled.storage.metadata
    assert metadata["saq"]["source_dataset"] == "saqtest/relabel-src-v0"
    assert metadata["saq"]["quantizer"]["n_codes"] == 3
    assert metadata["ref_min_score"] == -1.0 and metadata["ref_max_score"] == 2.0
    seeds = [m["seed"] for m in relabeled.storage.get_episode_metadata(range(len(EPISODES)))]
    assert seeds == [100 + e for e in range(len(EPISODES))]
    with pytest.raises(OutputPathError, match="already exists"):
        write_relabeled_minari("saqtest/relabel-src-v0", quantizer, "saqtest/relabel-codes-v0")
    assert relabeled.env_spec is None  # its actions are codes, not Pendulum's
    assert minari_info("saqtest/relabel-codes-v0").make_env().spec.id == "Pendulum-v1"
    with pytest.raises(DataError, match="expected a continuous Box"):
        load_minari("saqtest/relabel-codes-v0")


def test_relabel_with_a_real_vqvae_records_its_identity() -> None:
    from saq_wrappers.vqvae import VQVAEQuantizer

    _create("saqtest/relabel-vq-v0")
    data = load_minari("saqtest/relabel-vq-v0")
    quantizer = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, hidden_sizes=(16,), embedding_dim=8, seed=0)
    quantizer.fit(np.asarray(data.observations), np.asarray(data.actions), n_steps=5, progress=False)
    write_relabeled_minari("saqtest/relabel-vq-v0", quantizer, "saqtest/relabel-vq-codes-v0")
    relabeled = minari.load_dataset("saqtest/relabel-vq-codes-v0")
    codes = np.concatenate([ep.actions for ep in relabeled.iterate_episodes()])
    np.testing.assert_array_equal(codes, quantizer.encode(np.asarray(data.observations), np.asarray(data.actions)))
    identity = relabeled.storage.metadata["saq"]["quantizer"]
    assert identity["class"].endswith("VQVAEQuantizer") and len(identity["weights_sha256"]) == 64


def test_failed_write_leaves_no_partial_dataset(tmp_path: Path) -> None:
    _create("saqtest/relabel-fail-v0")

    class Broken(ParityQuantizer):
        calls = 0

        def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
            Broken.calls += 1
            if Broken.calls == 3:
                raise RuntimeError("encoder crashed")
            return super().encode(obs, actions)

    root = minari_info("saqtest/relabel-fail-v0").data_path.parent.parent
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_relabeled_minari("saqtest/relabel-fail-v0", Broken(), "saqtest/relabel-fail-out-v0")
    assert not (root / "relabel-fail-out-v0").exists()

    class OutOfRange(ParityQuantizer):
        def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
            return np.full(len(obs), 7)

    with pytest.raises(DataError, match="outside"):
        write_relabeled_minari("saqtest/relabel-fail-v0", OutOfRange(), "saqtest/relabel-fail-out-v0")
    # Bad episodes fail inside the temporary folder: nothing at the destination, no leftovers.
    with pytest.raises(DataError, match="T \\+ 1"):
        write_minari_dataset(
            "saqtest/bad-episode-v0",
            [{"observations": np.zeros((3, 3)), "actions": np.zeros((3, 1)), "rewards": np.zeros(3),
              "terminations": np.zeros(3, bool), "truncations": np.zeros(3, bool)}],
            OBS_SPACE, ACT_SPACE,
        )
    assert not (root / "bad-episode-v0").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_dict_observations_are_flattened_in_space_order() -> None:
    space = gym.spaces.Dict(
        {"observation": gym.spaces.Box(-np.inf, np.inf, (2,), np.float64),
         "desired_goal": gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)}
    )
    keys = list(space.spaces)
    steps = 4
    observations = {
        "observation": np.array([[t, 10.0 + t] for t in range(steps + 1)]),
        "desired_goal": np.full((steps + 1, 1), 7.0),
    }
    buffer = EpisodeBuffer(id=0, observations=observations, actions=np.zeros((steps, 1), np.float32) + 0.5,
                           rewards=[0.0] * steps, terminations=[False] * steps, truncations=[False] * (steps - 1) + [True])
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("saqtest/dict-v0", [buffer], observation_space=space, action_space=ACT_SPACE)
    data = load_minari("saqtest/dict-v0")
    assert data.observation_shape == (3,)
    expected = np.concatenate([observations[k].reshape(steps + 1, -1) for k in keys], axis=1)
    np.testing.assert_array_equal(data.observations, expected[:-1])
    np.testing.assert_array_equal(data.next_observations, expected[1:])


def test_a_relative_root_writes_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Minari sizes a dataset by joining its data path onto itself: a relative one broke."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets").mkdir()
    episode = {"observations": np.zeros((3, 3), np.float32), "actions": np.zeros((2, 1), np.float32),
               "rewards": [0.0, 1.0], "terminations": [False, True], "truncations": [False, False]}
    folder = write_minari_dataset("saqtest/relative-v0", [episode], OBS_SPACE, ACT_SPACE, root="datasets")
    assert folder == tmp_path / "datasets" / "saqtest" / "relative-v0"
    assert load_minari("datasets/saqtest/relative-v0").n_episodes == 1
    assert sorted(p.name for p in (tmp_path / "datasets" / "saqtest").iterdir()) == ["relative-v0"]
