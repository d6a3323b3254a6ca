"""Hardening of the core: forged checkpoints, oversized settings, interrupted writes, bad output
paths, out-of-bounds actions, empty batches and what "reproducible" means.

Every bad input must end in a library error that names what was wrong, before anything large is
allocated and without leaving files behind.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from saq_wrappers import __version__
from saq_wrappers.errors import CheckpointError, DataError, OutputPathError
from saq_wrappers.io import (
    STALE_AFTER_S,
    atomic_output,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
    temp_prefix,
)
from saq_wrappers.score import ScoreSupportSampler
from saq_wrappers.vqvae import VQVAEQuantizer, training
from tiny_checkpoints import ACT_SPACE, OBS_SPACE, fitted_quantizer, fitted_sampler, forge

TINY = dict(n_codes=4, hidden_sizes=(16, 16), embedding_dim=8, learning_rate=1e-3)
SAMPLER_TINY = dict(n_samples=4, hidden=16, n_blocks=1)


def _data(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    return obs, np.clip(obs[:, ::-1] * 0.9, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def quantizer() -> VQVAEQuantizer:
    return fitted_quantizer(_data(), n_steps=20, **TINY)


@pytest.fixture(scope="module")
def sampler() -> ScoreSupportSampler:
    return fitted_sampler(_data(), n_steps=5, **SAMPLER_TINY)


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _never_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building a real (non-meta) quantizer model fail the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was built from a checkpoint that should be refused")

    monkeypatch.setattr(VQVAEQuantizer, "_new_model", refuse)


# --------------------------------------------------------------------------- forged checkpoints
def test_forged_quantizer_sizes_are_refused_before_building(
    quantizer: VQVAEQuantizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "good.safetensors"
    quantizer.save(good)
    config = load_checkpoint(good, "vqvae_quantizer")[1]["config"]
    cases = [
        # beyond the constructor's bounds
        ({"n_codes": 10**7}, r"n_codes must be an integer >= 2 and <= 65,536, got 10,000,000"),
        ({"hidden_sizes": [30_000, 30_000]}, r"each hidden size must be an integer >= 1 and <= 16,384"),
        ({"hidden_sizes": [16] * 1000}, r"1000 layers, expected at most 16"),
        # each size within its bound, the model beyond MAX_MODEL_VALUES
        ({"n_codes": 60_000, "embedding_dim": 16_000}, r"would hold 960,528,706 parameters"),
        # within every bound, but ~1 GB the 10 KB file does not hold
        ({"n_codes": 60_000, "embedding_dim": 4_000},
         r"n_codes=60000, embedding_dim=4000.*'model.codebook' of shape \(60000, 4000\).*"
         r"stores shape \(4, 8\)"),
        ({"hidden_sizes": [8_000, 8_000]},
         r"hidden_sizes=\[8000, 8000\].*'model.encoder.0.weight' of shape \(8000, 4\).*"
         r"stores shape \(16, 4\)"),
    ]
    _never_build(monkeypatch)
    for number, (change, message) in enumerate(cases):
        forged = forge(good, tmp_path / f"forged{number}.safetensors", "vqvae_quantizer",
                        config={**config, **change})
        assert forged.stat().st_size < 20_000
        started = time.perf_counter()
        with pytest.raises(CheckpointError, match=message):
            VQVAEQuantizer.load(forged)
        assert time.perf_counter() - started < 1.0


def test_absurd_normalization_statistics_are_refused(
    quantizer: VQVAEQuantizer, tmp_path: Path
) -> None:
    good = tmp_path / "good.safetensors"
    quantizer.save(good)
    norm = load_checkpoint(good, "vqvae_quantizer")[1]["normalization"]
    for key, values, message in [
        ("obs_std", [1e30, 1.0], r"obs_std\[0\] is 1e\+30"),
        ("act_std", [1.0, 1e-30], r"act_std\[1\] is 1e-30"),
        ("obs_mean", [float("nan"), 0.0], r"obs_mean\[0\] is nan"),
        ("act_mean", [0.0, float("inf")], r"act_mean\[1\] is inf"),
    ]:
        forged = forge(good, tmp_path / f"{key}.safetensors", "vqvae_quantizer",
                        normalization={**norm, key: values})
        with pytest.raises(CheckpointError, match="normalization is out of range: " + message):
            VQVAEQuantizer.load(forged)


def test_format_and_library_version_policy(quantizer: VQVAEQuantizer, tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    quantizer.save(good)
    assert load_checkpoint(good, "vqvae_quantizer")[1]["library_version"] == __version__
    newer = forge(good, tmp_path / "newer.safetensors", "vqvae_quantizer",
                   format=2, library_version="9.9.0")
    with pytest.raises(CheckpointError, match=r"format 2, written by saq-wrappers 9\.9\.0.*"
                                              r"reads format 1: upgrade saq-wrappers"):
        VQVAEQuantizer.load(newer)
    for bad in ("1", None, True):
        forged = forge(good, tmp_path / "bad_format.safetensors", "vqvae_quantizer", format=bad)
        with pytest.raises(CheckpointError, match="no valid format number"):
            VQVAEQuantizer.load(forged)
    # the same format written by a newer library loads: the format alone decides
    same = forge(good, tmp_path / "same.safetensors", "vqvae_quantizer", library_version="9.9.0")
    assert VQVAEQuantizer.load(same).n == quantizer.n


def test_forged_sampler_checkpoints_are_refused(
    sampler: ScoreSupportSampler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "good.safetensors"
    sampler.save(good)
    tensors, meta = load_checkpoint(good, "score_support_sampler")
    assert meta["format"] == 1 and meta["library_version"] == __version__
    legacy = {k: v for k, v in meta.items() if k != "format"}
    save_checkpoint(tmp_path / "legacy.safetensors", tensors, {**legacy, "version": 1})
    assert ScoreSupportSampler.load(tmp_path / "legacy.safetensors").n == sampler.n

    config = meta["config"]
    for number, (change, message) in enumerate([
        ({"config": {**config, "hidden": 10**6}}, r"hidden must be an integer >= 1 and <= 16,384, got 1,000,000"),
        ({"config": {**config, "hidden": 16_384, "n_blocks": 64}},
         r"would hold [0-9,]+ parameters .* more than the limit"),
        ({"config": {**config, "hidden": 4096}},
         r"hidden=4096.*implies tensor 'model\.members\.0\..*' of shape \(2048,\).*stores shape \(8,\)"),
        ({"n_samples": 10**9}, r"n_samples \(N\) must be an integer >= 1 and <= 65,536"),
        ({"format": 7}, r"format 7.*upgrade saq-wrappers"),
    ]):
        forged = forge(good, tmp_path / f"forged{number}.safetensors", "score_support_sampler",
                        **change)
        started = time.perf_counter()
        with pytest.raises(CheckpointError, match=message):
            ScoreSupportSampler.load(forged)
        assert time.perf_counter() - started < 1.0

    for name, value, message in [
        ("obs_std", 1e30, r"obs_std\[0\] is 1e\+30"),
        ("act_std", 1e-30, r"act_std\[0\] is 1e-30"),
        ("act_mean", float("nan"), "holds NaN or inf"),
    ]:
        bad = dict(tensors)
        bad[name] = bad[name].clone()
        bad[name][0] = value
        save_checkpoint(tmp_path / "stats.safetensors", bad, meta)
        with pytest.raises(CheckpointError, match=message):
            ScoreSupportSampler.load(tmp_path / "stats.safetensors")
    bad = dict(tensors, obs_mean=tensors["obs_mean"][:1])
    save_checkpoint(tmp_path / "short.safetensors", bad, meta)
    with pytest.raises(CheckpointError, match=r"'obs_mean' of shape \(2,\).*stores shape \(1,\)"):
        ScoreSupportSampler.load(tmp_path / "short.safetensors")


# --------------------------------------------------------------------------- sizes
def test_oversized_settings_fail_before_allocating() -> None:
    started = time.perf_counter()
    for kwargs, message in [
        (dict(n_codes=10**7), "n_codes must be an integer >= 2 and <= 65,536"),
        (dict(hidden_sizes=(30_000,)), "each hidden size must be an integer >= 1 and <= 16,384"),
        (dict(hidden_sizes=(8,) * 17), "17 layers, expected at most 16"),
        (dict(embedding_dim=10**6), "embedding_dim must be an integer >= 1 and <= 16,384"),
        (dict(n_codes=65_536, embedding_dim=16_384), r"would hold 1,091,065,858 parameters \(4\.1 GiB"),
    ]:
        with pytest.raises(DataError, match=message):
            VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **kwargs)
    for kwargs, message in [
        (dict(n_samples=10**7), r"n_samples \(N\) must be an integer >= 1 and <= "),
        (dict(hidden=10**5), "hidden must be an integer >= 1 and <= "),
        (dict(n_ensemble=1000), "n_ensemble must be an integer >= 1 and <= "),
        (dict(std_floor=1e-30), "std_floor must be"),
    ]:
        with pytest.raises(DataError, match=message):
            ScoreSupportSampler(OBS_SPACE, ACT_SPACE, **kwargs)
    assert time.perf_counter() - started < 2.0


def test_sizes_are_checked_against_the_data() -> None:
    obs, acts = _data(300)
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **{**TINY, "n_codes": 64})
    with pytest.raises(DataError, match="n_codes=64 is more than the 10 data rows"):
        q.fit(obs[:10], acts[:10], n_steps=1, progress=False)
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, batch_size=10**9, **TINY)
    with pytest.warns(UserWarning, match="batch_size=1000000000 is more than the 300 data rows"):
        q.fit(obs, acts, n_steps=2, progress=False)
    assert q.is_fitted


def test_large_codebooks_skip_kmeans_plus_plus_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "KMEANS_MAX_CODES", 4)

    def too_slow(*args: object) -> None:
        raise AssertionError("k-means++ ran for a codebook above KMEANS_MAX_CODES")

    monkeypatch.setattr(training, "kmeans_plus_plus", too_slow)
    obs, acts = _data()
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **{**TINY, "n_codes": 8})
    with pytest.warns(UserWarning, match="kmeans\\+\\+' is skipped for n_codes=8 > 4"):
        q.fit(obs, acts, n_steps=1, progress=False)


def test_data_that_cannot_be_z_scored_is_refused() -> None:
    obs, acts = _data()
    huge = obs.copy()
    huge[:, 1] *= 1e14
    with pytest.raises(DataError, match=r"cannot be z-scored: obs_\w+\[1\] is"):
        VQVAEQuantizer(OBS_SPACE, gym.spaces.Box(-1, 1, (2,))).fit(huge, acts, n_steps=1,
                                                                   progress=False)
    with pytest.raises(DataError, match=r"cannot be z-scored: obs_\w+\[1\] is"):
        ScoreSupportSampler(OBS_SPACE, ACT_SPACE, **SAMPLER_TINY).fit(huge, acts, n_steps=1,
                                                                      progress=False)


# --------------------------------------------------------------------------- interrupted writes
def test_a_writer_killed_mid_save_leaves_a_temp_file_the_next_save_removes(
    quantizer: VQVAEQuantizer, tmp_path: Path
) -> None:
    script = textwrap.dedent(f"""
        import os, signal, torch
        from saq_wrappers import io
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # dies before the rename
        io.save_checkpoint({str(tmp_path / 'q.safetensors')!r}, {{"w": torch.zeros(3)}}, {{"kind": "k"}})
    """)
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".q.safetensors.saqtmp-")
    quantizer.save(tmp_path / "q.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.safetensors"]


def test_only_our_stale_temp_files_are_removed(quantizer: VQVAEQuantizer, tmp_path: Path) -> None:
    target = tmp_path / "q.safetensors"
    old = time.time() - STALE_AFTER_S - 60

    def ours(pid: int, name: str, age: float | None = None) -> Path:
        path = tmp_path / (temp_prefix(tmp_path / name, pid=pid) + "ab12cd_3.tmp")
        path.write_bytes(b"partial")
        if age is not None:
            os.utime(path, (age, age))
        return path

    dead_writer = ours(_dead_pid(), "q.safetensors")
    live_writer = ours(os.getpid(), "q.safetensors")
    abandoned = ours(os.getpid(), "other.bin", age=old)  # the pid is alive, but nothing wrote for 24 h
    other_host = tmp_path / ".q.safetensors.saqtmp-otherhost-1-abcdefgh.tmp"
    other_host.write_bytes(b"partial")  # pid 1 here says nothing about that host
    other_host_old = tmp_path / ".x.saqtmp-otherhost-1-abcdefgh.tmp"
    other_host_old.write_bytes(b"partial")
    os.utime(other_host_old, (old, old))
    foreign = [tmp_path / name for name in (".q.safetensors.abcdefgh.tmp", "notes.tmp",
                                            ".q.safetensors.saqtmp-x-1-ab.part", "saqtmp-h-1-a.tmp")]
    for path in foreign:
        path.write_bytes(b"not ours")
        os.utime(path, (old, old))
    quantizer.save(target)
    assert not dead_writer.exists() and not abandoned.exists() and not other_host_old.exists()
    assert live_writer.exists() and other_host.exists()
    assert all(path.read_bytes() == b"not ours" for path in foreign)
    assert VQVAEQuantizer.load(target).n == quantizer.n


def test_checkpoints_are_written_as_one_buffer(
    quantizer: VQVAEQuantizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    def no_file_writer(*args: object, **kwargs: object) -> None:
        raise AssertionError("safetensors wrote a file of its own")

    monkeypatch.setattr(safetensors.torch, "save_file", no_file_writer)
    quantizer.save(tmp_path / "q.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["q.safetensors"]


# --------------------------------------------------------------------------- output paths
def test_output_paths_say_what_is_wrong_with_the_given_path(
    quantizer: VQVAEQuantizer, tmp_path: Path
) -> None:
    folder_like = str(tmp_path / "newname") + "/"
    with pytest.raises(OutputPathError, match="ends with a separator, so it names a folder"):
        quantizer.save(folder_like)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for path in (a_file / "q.safetensors", a_file / "sub" / "q.safetensors"):
        with pytest.raises(OutputPathError, match=f"{str(a_file)!r} is a file, not a folder"):
            quantizer.save(path)
    with pytest.raises(OutputPathError, match="folder .* does not exist"):
        quantizer.save(tmp_path / "missing" / "q.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    with pytest.raises(OutputPathError) as caught:
        quantizer.save("/proc/q.safetensors")
    message = str(caught.value)
    assert "'/proc/q.safetensors'" in message and "saqtmp" not in message and ".tmp" not in message
    assert not Path("/proc/q.safetensors").exists()


def test_write_failures_name_the_target_and_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.bin"

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputPathError, match=f"cannot write {str(target)!r}: No space left"):
        atomic_write_bytes(target, b"data")
    monkeypatch.undo()
    with pytest.raises(OutputPathError, match=f"cannot write {str(target)!r}: File exists"):
        with atomic_output(target) as tmp:
            os.open(tmp, os.O_CREAT | os.O_EXCL)  # an error about the temporary file
    with pytest.raises(FileNotFoundError, match="an input"):  # other errors pass unchanged
        with atomic_output(target):
            raise FileNotFoundError(errno.ENOENT, "missing", "an input")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- quiet data errors
def test_actions_outside_the_bounds_are_refused_or_clipped_on_request() -> None:
    obs, acts = _data()
    far = acts * 100.0
    n_outside = int((np.abs(far) > 1.0).any(axis=1).sum())
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **TINY)
    with pytest.raises(DataError, match=f"{n_outside} of 256 action rows lie outside the action "
                                        r"space bounds \(low=\[-1\.0, -1\.0\], high=\[1\.0, 1\.0\]"):
        q.fit(obs, far, n_steps=1, progress=False)
    assert not q.is_fitted
    far_copy = far.copy()
    with pytest.warns(UserWarning, match=f"clipped {n_outside} of 256 action rows"):
        q.fit(obs, far, n_steps=1, progress=False, clip_actions=True)
    np.testing.assert_array_equal(far, far_copy)  # the caller's array is untouched
    # float noise at the bounds and D4RL's +-0.999 pass; so does anything in an unbounded space
    noisy = np.clip(acts * 2, -1, 1)
    noisy[noisy == 1.0] = np.nextafter(np.float32(1.0), np.float32(2.0))
    d4rl = np.clip(acts * 2, -0.999, 0.999)
    for fine in (noisy, d4rl):
        VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **TINY).fit(obs, fine, n_steps=1, progress=False)
    unbounded = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    VQVAEQuantizer(OBS_SPACE, unbounded, **TINY).fit(obs, far, n_steps=1, progress=False)


def test_empty_batches_give_empty_arrays(
    quantizer: VQVAEQuantizer, sampler: ScoreSupportSampler
) -> None:
    none = np.zeros((0, 2), np.float32)
    codes = quantizer.encode(none, none)
    assert codes.dtype == np.int64 and codes.shape == (0,)
    for decode in (quantizer.decode, quantizer.decode_numpy, quantizer.decode_torch):
        out = decode(none, np.zeros(0, np.int64))
        assert out.dtype == np.float32 and out.shape == (0, 2)
    assert quantizer.decode(none, []).shape == (0, 2)
    actions, valid = quantizer.candidates(none)
    assert actions.dtype == np.float32 and actions.shape == (0, 4, 2)
    assert valid.dtype == bool and valid.shape == (0, 4)
    actions, valid = sampler.candidates(none)
    assert actions.dtype == np.float32 and actions.shape == (0, 4, 2)
    assert valid.dtype == bool and valid.shape == (0, 4)
    out = sampler.decode(none, np.zeros(0, np.int64))
    assert out.dtype == np.float32 and out.shape == (0, 2)


# --------------------------------------------------------------------------- reproducibility
def test_fit_is_bit_identical_for_the_same_thread_count(tmp_path: Path) -> None:
    obs, acts = _data(512)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for run in ("a", "b"):
            q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **TINY)
            q.fit(obs, acts, n_steps=100, progress=False)
            assert q.fit_summary is not None and q.fit_summary["torch_threads"] == 2
            q.save(tmp_path / f"{run}.safetensors")
    finally:
        torch.set_num_threads(threads)
    first, meta_a = load_checkpoint(tmp_path / "a.safetensors", "vqvae_quantizer")
    second, meta_b = load_checkpoint(tmp_path / "b.safetensors", "vqvae_quantizer")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert meta_a["normalization"] == meta_b["normalization"]
    assert json.dumps(meta_a["fit_summary"]["usage"]) == json.dumps(meta_b["fit_summary"]["usage"])


def test_loading_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    from saq_wrappers import ScoreSupportSampler, VQVAEQuantizer
    from saq_wrappers.errors import CheckpointError

    for cls in (VQVAEQuantizer, ScoreSupportSampler):
        with pytest.raises(CheckpointError, match="is a folder: expected a checkpoint file"):
            cls.load(tmp_path)
