"""Hardening of the core, round 2 (issue 38): numeric arguments and seeds, checkpoint and manifest
headers (every numeric field, JSON nesting and size), and temporary names of long output files.

Each bad value must end in the library's own error naming the value and what was expected, before
any work: nothing fitted, no folder created, no file written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from safetensors.torch import save as safetensors_bytes

from saq_wrappers.errors import CheckpointError, DataError
from saq_wrappers.io import (
    METADATA_KEY,
    atomic_write_bytes,
    load_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
    temp_prefix,
)
from saq_wrappers.rollouts import noisy_policy, random_policy, rollout
from saq_wrappers.score import CandidateTable, ScoreSupportSampler, precompute_candidate_table
from saq_wrappers.validation import MAX_SEED
from saq_wrappers.vqvae import VQVAEQuantizer
from tiny_checkpoints import ACT_SPACE, OBS_SPACE, fitted_quantizer, fitted_sampler, forge

TINY = dict(n_codes=4, hidden_sizes=(16, 16), embedding_dim=8, learning_rate=1e-3, batch_size=32)
SAMPLER_TINY = dict(n_samples=4, hidden=16, n_blocks=1, steps=2)
NAN, INF = float("nan"), float("inf")


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    obs = np.random.default_rng(0).uniform(-1, 1, (n, 2)).astype(np.float32)
    return obs, (0.5 * obs[:, ::-1]).astype(np.float32)


@pytest.fixture(scope="module")
def quantizer() -> VQVAEQuantizer:
    return fitted_quantizer(_data(), n_steps=5, **TINY)


@pytest.fixture(scope="module")
def sampler() -> ScoreSupportSampler:
    return fitted_sampler(_data(), n_steps=3, **SAMPLER_TINY)


def _raw_checkpoint(path: Path, document: str) -> Path:
    """A safetensors file whose saq-wrappers metadata is the raw text ``document``."""
    path.write_bytes(safetensors_bytes({"w": torch.zeros(2)}, metadata={METADATA_KEY: document}))
    return path


# --------------------------------------------------------------------------- seeds
BAD_SEEDS = [(2.9, "2.9"), (-1, "-1"), (MAX_SEED + 1, "4,294,967,296"), (2**70, "1,180,591"),
             (True, "True"), ("3", "'3'")]


@pytest.mark.parametrize("seed, shown", BAD_SEEDS)
def test_bad_seeds_are_refused_not_truncated(seed: Any, shown: str) -> None:
    for build in (lambda: VQVAEQuantizer(OBS_SPACE, ACT_SPACE, seed=seed, **TINY),
                  lambda: ScoreSupportSampler(OBS_SPACE, ACT_SPACE, seed=seed, **SAMPLER_TINY)):
        with pytest.raises(DataError, match=rf"seed must be an integer >= 0 and <= 4,294,967,295, got {shown}"):
            build()
    assert VQVAEQuantizer(OBS_SPACE, ACT_SPACE, seed=np.int64(MAX_SEED), **TINY).config.seed == MAX_SEED
    assert ScoreSupportSampler(OBS_SPACE, ACT_SPACE, seed=MAX_SEED, **SAMPLER_TINY).seed == MAX_SEED


def test_the_largest_seed_fits_and_samples() -> None:
    """The derived seeds (per ensemble member, per observation) stay within torch's range."""
    s = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, seed=MAX_SEED, n_ensemble=2, **SAMPLER_TINY)
    s.fit(*_data(), n_steps=2, progress=False)
    assert s.candidates(_data()[0][:2])[0].shape == (2, 4, 2)


# --------------------------------------------------------------------------- numeric arguments
SAMPLER_SETTINGS = [
    (dict(fourier_scale=NAN), "fourier_scale must be a finite number > 0, got nan"),
    (dict(fourier_scale=0.0), "fourier_scale must be a finite number > 0"),
    (dict(beta_min=-1.0), "beta_min must be a finite number >= 0, got -1.0"),
    (dict(beta_max=INF), "beta_max must be a finite number > 0, got inf"),
    (dict(beta_min=5.0, beta_max=1.0), r"expected beta_min < beta_max, got 5\.0 and 1\.0"),
    (dict(steps=10**9), "steps must be an integer >= 1 and <= "),
    (dict(steps=2.5), "steps must be an integer >= 1"),
    (dict(method="euler2"), "method must be one of 'multistep', 'rk45', 'euler', 'heun', 'rk4', got 'euler2'"),
    (dict(divergence="exactly"), "divergence must be one of 'auto', 'exact', 'hutchinson', got 'exactly'"),
    (dict(std_floor="0.05"), "std_floor must be a finite number >= 1e-06, got '0.05'"),
    (dict(log_eps="-5"), "log_eps must be a finite number or -inf, got '-5'"),
    (dict(log_eps=INF), "log_eps must be a finite number or -inf, got inf"),
    (dict(n_samples=4.0), "n_samples"),
]


@pytest.mark.parametrize("kwargs, message", SAMPLER_SETTINGS)
def test_bad_sampler_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        ScoreSupportSampler(OBS_SPACE, ACT_SPACE, **{**SAMPLER_TINY, **kwargs})


QUANTIZER_SETTINGS = [
    (dict(codebook_weight=True), "codebook_weight must be a finite number >= 0, got True"),
    (dict(commitment_weight="1"), "commitment_weight must be a finite number >= 0, got '1'"),
    (dict(learning_rate=NAN), "learning_rate must be a finite number > 0, got nan"),
    (dict(learning_rate="3e-4"), "learning_rate must be a finite number > 0, got '3e-4'"),
    (dict(restart_until=NAN), "restart_until must be a finite number >= 0 and <= 1, got nan"),
    (dict(batch_size=2.0), "batch_size must be an integer >= 1, got 2.0"),
    (dict(state_conditioned="no"), "state_conditioned must be True or False, got 'no'"),
    (dict(dead_code_restart=1), "dead_code_restart must be True or False, got 1"),
]


@pytest.mark.parametrize("kwargs, message", QUANTIZER_SETTINGS)
def test_bad_quantizer_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **{**TINY, **kwargs})


SAMPLER_FIT = [
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 1, got 2.5"),
    (dict(batch_size=True), "batch_size must be an integer >= 1, got True"),
    (dict(n_steps=0), "n_steps must be an integer >= 1, got 0"),
    (dict(n_steps=2.5), "n_steps must be an integer >= 1, got 2.5"),
    (dict(learning_rate=NAN), "learning_rate must be a finite number > 0, got nan"),
    (dict(learning_rate=-1e-4), "learning_rate must be a finite number > 0"),
    (dict(ema_decay=2.0), "ema_decay must be a finite number >= 0 and <= 1, got 2.0"),
    (dict(ema_decay=NAN), "ema_decay must be a finite number >= 0 and <= 1, got nan"),
]


@pytest.mark.parametrize("kwargs, message", SAMPLER_FIT)
def test_bad_sampler_fit_arguments_are_refused_before_training(
    kwargs: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fit(batch_size=0)`` used to train on empty minibatches and return a NaN loss."""
    s = ScoreSupportSampler(OBS_SPACE, ACT_SPACE, **SAMPLER_TINY)
    rng_state = torch.get_rng_state()
    with pytest.raises(DataError, match=message):
        s.fit(*_data(), **{"n_steps": 2, "progress": False, **kwargs})
    assert s._model is None and torch.equal(torch.get_rng_state(), rng_state)


@pytest.mark.parametrize("n_steps", [0, 2.5, True, NAN])
def test_bad_quantizer_fit_steps_are_refused(n_steps: Any) -> None:
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, **TINY)
    with pytest.raises(DataError, match="n_steps must be an integer >= 1"):
        q.fit(*_data(), n_steps=n_steps, progress=False)
    assert not q.is_fitted


def test_bad_sampling_arguments_are_refused(sampler: ScoreSupportSampler) -> None:
    obs, acts = _data(2)
    for call, message in [
        (lambda: sampler.sample(obs, 2.5), "n must be an integer >= 1 and <= 65,536, got 2.5"),
        (lambda: sampler.sample(obs, True), "n must be an integer >= 1 and <= 65,536, got True"),
        (lambda: sampler.sample(obs, 0), "n must be an integer >= 1"),
        (lambda: sampler.sample(obs, 2, path="paper", pc_steps=0), "pc_steps must be an integer >= 1"),
        (lambda: sampler.sample(obs, 2, path="paper", pc_steps=10**9), "pc_steps must be an integer >= 1 and <= "),
        (lambda: sampler.sample(obs, 2, path="paper", n_probes=0), "n_probes must be an integer >= 1"),
        (lambda: sampler.sample(obs, 2, path="quick"), "path must be one of 'fast', 'paper', got 'quick'"),
        (lambda: sampler.log_likelihood(obs, acts, rtol=NAN), "rtol must be a finite number > 0, got nan"),
        (lambda: sampler.log_likelihood(obs, acts, atol=0.0), "atol must be a finite number > 0, got 0.0"),
        (lambda: sampler.log_likelihood(obs, acts, space="raw"), "space must be one of 'normalized', 'original', got 'raw'"),
    ]:
        with pytest.raises(DataError, match=message):
            call()


@pytest.mark.parametrize("kwargs, message", [
    (dict(chunk_size=0), "chunk_size must be an integer >= 1, got 0"),
    (dict(chunk_size=2.5), "chunk_size must be an integer >= 1, got 2.5"),
    (dict(chunk_size=NAN), "chunk_size must be an integer >= 1, got nan"),
    (dict(batch_size=True), "batch_size must be an integer >= 1, got True"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 1, got 2.5"),
])
def test_bad_table_sizes_are_refused_before_the_folder_is_made(
    sampler: ScoreSupportSampler, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        precompute_candidate_table(sampler, _data(5)[0], tmp_path / "t", progress=False, **kwargs)
    assert not (tmp_path / "t").exists()


# --------------------------------------------------------------------------- checkpoint headers
@pytest.mark.parametrize("change, message", [
    (dict(seed=2**70), r"seed must be an integer >= 0 and <= 4,294,967,295, got 1,180,591"),
    (dict(seed=-1), r"seed must be an integer >= 0 and <= 4,294,967,295, got -1"),
    (dict(seed=2.9), r"seed must be an integer >= 0 and <= 4,294,967,295, got 2.9"),
    (dict(learning_rate="fast"), r"learning_rate must be a finite number > 0, got 'fast'"),
    (dict(restart_until=None), r"restart_until must be a finite number"),
    (dict(state_conditioned="false"), r"state_conditioned must be True or False"),
])
def test_forged_quantizer_config_values_are_checkpoint_errors(
    quantizer: VQVAEQuantizer, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    good = tmp_path / "good.safetensors"
    quantizer.save(good)
    config = load_checkpoint(good, "vqvae_quantizer")[1]["config"]
    forged = forge(good, tmp_path / "forged.safetensors", "vqvae_quantizer", config={**config, **change})
    with pytest.raises(CheckpointError, match=rf"forged\.safetensors.*{message}"):
        VQVAEQuantizer.load(forged)


@pytest.mark.parametrize("change, message", [
    (dict(config=dict(seed=2**70)), r"seed must be an integer >= 0 and <= 4,294,967,295"),
    (dict(config=dict(seed=-3)), r"seed must be an integer >= 0 and <= 4,294,967,295, got -3"),
    (dict(config=dict(fourier_scale=NAN)), r"fourier_scale must be a finite number > 0, got nan"),
    (dict(config=dict(method="rk99")), r"method must be one of"),
    (dict(config=dict(steps=10**12)), r"steps must be an integer >= 1 and <= "),
    (dict(n_samples=4.5), r"n_samples \(N\) must be an integer >= 1 and <= 65,536, got 4.5"),
    (dict(log_eps="abc"), r"log_eps must be the text of a number or -inf, got 'abc'"),
    (dict(log_eps=[1]), r"log_eps must be the text of a number or -inf, got \[1\]"),
    (dict(final_loss="low"), r"final_loss must be a finite number, got 'low'"),
])
def test_forged_sampler_header_values_are_checkpoint_errors(
    sampler: ScoreSupportSampler, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    good = tmp_path / "good.safetensors"
    sampler.save(good)
    meta = load_checkpoint(good, "score_support_sampler")[1]
    if "config" in change:
        change = {"config": {**meta["config"], **change["config"]}}
    forged = forge(good, tmp_path / "forged.safetensors", "score_support_sampler", **change)
    with pytest.raises(CheckpointError, match=rf"forged\.safetensors.*{message}"):
        ScoreSupportSampler.load(forged)


@pytest.mark.parametrize("kind, load", [
    ("vqvae_quantizer", VQVAEQuantizer.load), ("score_support_sampler", ScoreSupportSampler.load),
])
def test_deeply_nested_checkpoint_json_is_a_checkpoint_error(
    tmp_path: Path, kind: str, load: Callable[[Path], Any]
) -> None:
    """Nesting deep enough to overflow the parser's recursion (RecursionError before)."""
    depth = 100_000
    nested = '{"kind": "%s", "user_metadata": %s%s}' % (kind, "[" * depth, "]" * depth)
    path = _raw_checkpoint(tmp_path / "deep.safetensors", nested)
    with pytest.raises(CheckpointError, match=r"deep\.safetensors.*nested 100,00[0-9] levels deep.*at most 64"):
        load(path)
    # brackets inside strings are text, not nesting
    text = json.dumps({"kind": kind, "note": "[" * depth})
    with pytest.raises(CheckpointError, match="format"):
        load(_raw_checkpoint(tmp_path / "strings.safetensors", text))


def test_metadata_too_deep_to_read_back_is_refused_when_saving(
    quantizer: VQVAEQuantizer, tmp_path: Path
) -> None:
    nested: Any = 0
    for _ in range(70):
        nested = [nested]
    with pytest.raises(DataError, match=r"nested 71 levels deep, expected at most 64"):
        save_checkpoint(tmp_path / "c.safetensors", {"w": torch.zeros(1)}, {"kind": "x", "m": nested})
    quantizer.metadata = {"layout": nested}
    try:
        with pytest.raises(DataError, match="nested"):
            quantizer.save(tmp_path / "q.safetensors")
    finally:
        quantizer.metadata = {}
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- candidate-table manifest
@pytest.fixture(scope="module")
def table_folder(sampler: ScoreSupportSampler, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("table") / "t"
    precompute_candidate_table(sampler, _data(7)[0], folder, chunk_size=3, progress=False)
    return folder


@pytest.mark.parametrize("change, message", [
    (dict(n_chunks="3"), r"n_chunks must be an integer >= 1"),
    (dict(n_chunks=10**12), r"n_chunks is 1,000,000,000,000, expected 3 .*n_rows 7 in chunks of 3"),
    (dict(chunk_size=0), r"chunk_size must be an integer >= 1, got 0"),
    (dict(chunk_size=2.5), r"chunk_size must be an integer >= 1, got 2.5"),
    (dict(n_rows=-7), r"n_rows must be an integer >= 1, got -7"),
    (dict(n_samples=None), r"n_samples must be an integer >= 1"),
    (dict(action_dim=True), r"action_dim must be an integer >= 1, got True"),
    (dict(log_eps="abc"), r"log_eps must be a finite number or -inf, got 'abc'"),
    (dict(log_eps=None), r"log_eps must be a finite number or -inf, got None"),
])
def test_forged_manifest_values_are_checkpoint_errors(
    table_folder: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    for chunk in table_folder.glob("chunk_*"):
        (folder / chunk.name).write_bytes(chunk.read_bytes())
    manifest = json.loads((table_folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, **change}))
    with pytest.raises(CheckpointError, match=rf"manifest\.json.*{message}"):
        CandidateTable.load(folder)


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, r"nested 100,000 levels deep"),
    ("[1, 2]", r"not a candidate-table manifest \(a JSON list, expected an object"),
    (" " * (2**20 + 1), r"is 1,048,577 bytes, more than the 1,048,576"),
])
def test_malformed_manifests_are_checkpoint_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(CheckpointError, match=rf"manifest\.json.*{message}"):
        CandidateTable.load(tmp_path)


# --------------------------------------------------------------------------- long output names
def _name_max(folder: Path) -> int:
    return os.pathconf(folder, "PC_NAME_MAX")


@pytest.mark.parametrize("name", ["a" * 243, "b" * 255, "é" * 127 + "c", "q" * 240 + ".safetensors"])
def test_long_output_names_are_written(quantizer: VQVAEQuantizer, tmp_path: Path, name: str) -> None:
    """A valid name up to the file system's limit: its temporary name used to be longer."""
    assert len(os.fsencode(name)) <= _name_max(tmp_path)
    target = tmp_path / name
    if name.endswith(".safetensors"):
        quantizer.save(target)
        assert VQVAEQuantizer.load(target).n == quantizer.n
    else:
        atomic_write_bytes(target, b"data")
        assert target.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert len(os.fsencode(temp_prefix(target))) + len("abcdefgh.tmp") <= _name_max(tmp_path)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_shortened_temp_names_are_still_recognised_as_ours(tmp_path: Path) -> None:
    target = tmp_path / ("n" * 250)
    dead = tmp_path / (temp_prefix(target, pid=_dead_pid()) + "abc_1234.tmp")
    live = tmp_path / (temp_prefix(target) + "abc_1234.tmp")
    other = tmp_path / ("." + "n" * 200 + ".saqtmp-x.tmp")
    for path in (dead, live, other):
        path.write_bytes(b"")
    assert remove_stale_temp_files(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


@pytest.mark.parametrize("key, change, message", [
    ("observation_space", dict(shape=[2.9]), r"shape entry must be an integer >= 1, got 2.9"),
    ("observation_space", dict(shape=[-2]), r"shape entry must be an integer >= 1, got -2"),
    ("action_space", dict(dtype="object"), r"dtype must be a float or integer dtype, got 'object'"),
    ("action_space", dict(dtype="<U8"), r"dtype must be a float or integer dtype, got '<U8'"),
    ("action_space", dict(low=["nan", "-1.0"]), r"action_space's low bounds hold NaN"),
])
def test_forged_spaces_are_checkpoint_errors(
    quantizer: VQVAEQuantizer, sampler: ScoreSupportSampler, tmp_path: Path,
    key: str, change: dict[str, Any], message: str,
) -> None:
    """A space's shape used to be truncated to integers (2.9 -> 2) and its dtype and bounds
    taken as they were."""
    for model, kind, load in ((quantizer, "vqvae_quantizer", VQVAEQuantizer.load),
                              (sampler, "score_support_sampler", ScoreSupportSampler.load)):
        good = tmp_path / f"{kind}.safetensors"
        model.save(good)
        space = load_checkpoint(good, kind)[1][key]
        forged = forge(good, tmp_path / "forged.safetensors", kind, **{key: {**space, **change}})
        with pytest.raises(CheckpointError, match=rf"forged\.safetensors.*{message}"):
            load(forged)


# --------------------------------------------------------------------------- rollouts
def test_bad_rollout_arguments_are_refused_before_the_env_is_reset() -> None:
    env = gym.make("Pendulum-v1")
    resets: list[Any] = []
    env.reset = lambda **kwargs: resets.append(kwargs)  # type: ignore[method-assign]
    policy = random_policy(env.action_space)
    for call, message in [
        (lambda: random_policy(env.action_space, seed=2.9), "seed must be an integer >= 0, got 2.9"),
        (lambda: noisy_policy(policy, env.action_space, NAN), "noise_std must be a finite number >= 0, got nan"),
        (lambda: noisy_policy(policy, env.action_space, 0.1, seed=-1), "seed must be an integer >= 0"),
        (lambda: rollout(env, policy, n_episodes=2.5, progress=False), "n_episodes must be an integer >= 1, got 2.5"),
        (lambda: rollout(env, policy, n_steps=True, progress=False), "n_steps must be an integer >= 1, got True"),
        (lambda: rollout(env, policy, n_steps=0, progress=False), "n_steps must be an integer >= 1, got 0"),
        (lambda: rollout(env, policy, n_episodes=1, seed=-1, progress=False), "seed must be an integer >= 0, got -1"),
    ]:
        with pytest.raises(DataError, match=message):
            call()
    assert resets == []


@pytest.mark.parametrize("key, forge, message", [
    ("actions", lambda a: a.astype(np.float64), r"'actions' is float64, expected float32"),
    ("actions", lambda a: np.where(a == a.flat[0], np.nan, a).astype(np.float32), r"'actions' holds NaN or inf"),
    ("log_lik", lambda a: np.full_like(a, np.nan), r"'log_lik' holds NaN"),
    ("observations", lambda a: a[:, :1].copy(), r"observations of shape \(3, 1\), expected \(3, 2\)"),
])
def test_forged_table_chunks_are_checkpoint_errors(
    table_folder: Path, tmp_path: Path, key: str, forge: Callable[[np.ndarray], np.ndarray], message: str
) -> None:
    """A NaN candidate would silently poison every eq. 5 target that bootstraps from it."""
    folder = tmp_path / "t"
    folder.mkdir()
    for path in table_folder.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    chunk = load_file(str(folder / "chunk_000001.safetensors"))
    chunk[key] = forge(chunk[key])
    save_file(chunk, str(folder / "chunk_000001.safetensors"))
    with pytest.raises(CheckpointError, match=rf"chunk_000001\.safetensors.*{message}"):
        CandidateTable.load(folder)
