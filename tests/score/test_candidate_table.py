"""Candidate-table precompute: chunked, atomic, resumable; rows equal the sampler's candidates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from saq_wrappers.errors import CheckpointError, DataError
from saq_wrappers.io import temp_prefix
from saq_wrappers.score import CandidateTable, ScoreSupportSampler, precompute_candidate_table

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


@pytest.fixture(scope="module")
def sampler() -> ScoreSupportSampler:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(512, 2)).astype(np.float32)
    acts = np.tanh(obs[:, :1] + 0.1 * rng.normal(size=(512, 1))).astype(np.float32)
    model = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, n_samples=5, hidden=32, n_blocks=1, steps=4, seed=3)
    model.fit(obs, acts, n_steps=30, batch_size=128, progress=False)
    return model


OBS = np.random.default_rng(1).normal(size=(23, 2)).astype(np.float32)


def test_table_matches_candidates(sampler: ScoreSupportSampler, tmp_path: Path) -> None:
    original = OBS.copy()
    table = precompute_candidate_table(sampler, OBS, tmp_path / "t", chunk_size=5, batch_size=3, progress=False)
    np.testing.assert_array_equal(OBS, original)
    assert table.actions.shape == (23, 5, 1) and table.log_lik.shape == (23, 5)
    actions, valid = sampler.candidates(OBS)
    np.testing.assert_allclose(table.actions, actions, atol=1e-5)
    np.testing.assert_array_equal(table.observations, OBS)
    assert sorted(p.name for p in (tmp_path / "t").iterdir())[0] == "chunk_000000.safetensors"
    assert len(list((tmp_path / "t").glob("chunk_*.safetensors"))) == 5


def test_interrupted_precompute_resumes_and_never_reads_partial_chunks(
    sampler: ScoreSupportSampler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "t"
    real = sampler._sample_seeded
    calls = {"n": 0}

    def flaky(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(batch)

    monkeypatch.setattr(sampler, "_sample_seeded", flaky)
    with pytest.raises(KeyboardInterrupt):
        precompute_candidate_table(sampler, OBS, folder, chunk_size=5, batch_size=5, progress=False)
    assert len(list(folder.glob("chunk_*.safetensors"))) == 2
    # A half-written chunk left by a writer killed in the middle of a write: it must be ignored,
    # and removed on resume since its writer is gone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stray = folder / (temp_prefix(folder / "chunk_000002.safetensors", pid=dead.pid) + "abc123.tmp")
    stray.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="incomplete"):
        CandidateTable.load(folder)
    monkeypatch.setattr(sampler, "_sample_seeded", real)
    calls["n"] = 0
    resumed = precompute_candidate_table(sampler, OBS, folder, chunk_size=5, batch_size=5, progress=False)
    assert not stray.exists() and not list(folder.glob(".*.tmp"))
    stray.write_bytes(b"\x00garbage")  # also removed when no chunk is left to write
    precompute_candidate_table(sampler, OBS, folder, chunk_size=5, batch_size=5, progress=False)
    assert not stray.exists()
    fresh = precompute_candidate_table(sampler, OBS, tmp_path / "fresh", chunk_size=5, batch_size=5, progress=False)
    np.testing.assert_array_equal(resumed.actions, fresh.actions)
    np.testing.assert_array_equal(resumed.log_lik, fresh.log_lik)


def test_table_bad_inputs(sampler: ScoreSupportSampler, tmp_path: Path) -> None:
    precompute_candidate_table(sampler, OBS, tmp_path / "t", chunk_size=8, progress=False)
    with pytest.raises(DataError, match="other settings"):
        precompute_candidate_table(sampler, OBS[:10], tmp_path / "t", chunk_size=8, progress=False)
    with pytest.raises(DataError, match="shape"):
        precompute_candidate_table(sampler, np.zeros((4, 3), np.float32), tmp_path / "u", progress=False)
    bad = OBS.copy()
    bad[2, 1] = np.inf
    with pytest.raises(DataError, match="NaN or inf"):
        precompute_candidate_table(sampler, bad, tmp_path / "u", progress=False)
    (tmp_path / "t" / "chunk_000001.safetensors").write_bytes(b"corrupt")
    with pytest.raises(CheckpointError):
        CandidateTable.load(tmp_path / "t")
    with pytest.raises(CheckpointError, match="not a candidate table"):
        CandidateTable.load(tmp_path)
