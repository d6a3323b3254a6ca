"""Properties of SAQ's state-conditioned VQ-VAE quantizer (saq_wrappers.vqvae).

Models are small (64-64 MLPs, D=16) and trained for a few hundred to ~1k updates so the whole
file runs in well under a minute on one thread; every test asserts a property that breaks when
the implementation is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from saq_wrappers import __version__
from saq_wrappers.errors import (
    CheckpointError,
    DataError,
    NotFittedError,
    OutputPathError,
    SpaceMismatchError,
)
from saq_wrappers.io import load_checkpoint, save_checkpoint
from saq_wrappers.metrics import code_usage_from_counts, code_usage_stats
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.transitions import Transitions
from saq_wrappers.vqvae import StateConditionedVQVAE, VQVAEQuantizer
from tiny_checkpoints import forge

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = dict(hidden_sizes=(64, 64), embedding_dim=16, learning_rate=1e-3)


def bimodal_data(n: int = 4096, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """s ~ U([-1, 1]^2); a = +-0.8 (sin 2 s0, cos 2 s1) + small noise: two state-dependent
    modes, so K = 4 state-conditioned codes suffice but 4 fixed actions cannot cover them."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    sign = rng.choice([-1.0, 1.0], size=(n, 1))
    modes = 0.8 * np.stack([np.sin(2 * obs[:, 0]), np.cos(2 * obs[:, 1])], axis=1)
    actions = (sign * modes + 0.02 * rng.standard_normal((n, 2))).astype(np.float32)
    return obs, actions


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return bimodal_data()


@pytest.fixture(scope="module")
def fitted(data: tuple[np.ndarray, np.ndarray]) -> tuple[VQVAEQuantizer, dict]:
    obs, actions = data
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, seed=0, **SMALL)
    metrics = q.fit(obs, actions, n_steps=1000, progress=False)
    return q, metrics


def weights(q: VQVAEQuantizer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in q.model.state_dict().items()}


# --------------------------------------------------------------------------- public names
def test_public_names_stay_importable_from_documented_paths() -> None:
    import saq_wrappers
    import saq_wrappers.vqvae as vqvae
    from saq_wrappers.vqvae.model import StateConditionedVQVAE as model_class
    from saq_wrappers.vqvae.quantizer import VQVAEQuantizer as quantizer_class

    assert saq_wrappers.VQVAEQuantizer is VQVAEQuantizer is quantizer_class
    assert saq_wrappers.StateConditionedVQVAE is StateConditionedVQVAE is model_class
    assert vqvae.DEFAULT_N_STEPS == VQVAEQuantizer(OBS_SPACE, ACT_SPACE).config.n_steps
    assert vqvae.CHECKPOINT_KIND == "vqvae_quantizer" and vqvae.CHECKPOINT_FORMAT == 1


# --------------------------------------------------------------------------- state conditioning
def test_state_conditioning_beats_no_state_ablation(data, fitted) -> None:
    """SAQ's claim (Table 3): with few codes, only state conditioning reconstructs multi-modal,
    state-dependent actions."""
    obs, actions = data
    q, metrics = fitted
    ablation = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, state_conditioned=False, **SMALL)
    ablation_metrics = ablation.fit(obs, actions, n_steps=1000, progress=False)
    conditioned = metrics["reconstruction"]["mse"]
    unconditioned = ablation_metrics["reconstruction"]["mse"]
    assert conditioned < 0.02, conditioned
    assert conditioned < 0.2 * unconditioned, (conditioned, unconditioned)
    # the ablation's decoder ignores the state: the same code gives the same action everywhere
    acts, _ = ablation.candidates(obs[:5])
    np.testing.assert_allclose(acts, np.broadcast_to(acts[:1], acts.shape), atol=1e-6)


def test_state_zeroed_in_module_ablation() -> None:
    model = StateConditionedVQVAE(3, 2, 4, embedding_dim=8, hidden_sizes=(16,),
                                  state_conditioned=False,
                                  generator=torch.Generator().manual_seed(0))
    a = torch.randn(5, 2)
    s1, s2 = torch.randn(5, 3), torch.randn(5, 3) * 100
    assert torch.equal(model.embed(s1, a), model.embed(s2, a))
    codes = torch.arange(5) % 4
    assert torch.equal(model.decode(s1, codes), model.decode(s2, codes))


def test_loss_matches_saq_eq7_and_straight_through() -> None:
    gen = torch.Generator().manual_seed(1)
    model = StateConditionedVQVAE(3, 2, 5, embedding_dim=4, hidden_sizes=(8,), generator=gen)
    s, a = torch.randn(7, 3, generator=gen), torch.randn(7, 2, generator=gen)
    total, parts = model.loss(s, a, codebook_weight=0.5, commitment_weight=0.25)
    z = model.embed(s, a)
    dist = ((z[:, None, :] - model.codebook[None]) ** 2).sum(-1)
    codes = dist.argmin(-1)
    assert torch.equal(parts["codes"], codes)
    e = model.codebook[codes]
    recon = ((model.decode_embedding(s, e) - a) ** 2).sum(-1).mean()
    vq = ((z - e) ** 2).sum(-1).mean()
    torch.testing.assert_close(total, recon + 0.5 * vq + 0.25 * vq)
    total.backward()
    # straight-through: the encoder gets reconstruction gradients, the codebook only the VQ term
    assert model.encoder[0].weight.grad is not None and model.encoder[0].weight.grad.abs().sum() > 0
    used = torch.zeros(5, dtype=torch.bool)
    used[codes] = True
    assert torch.all(model.codebook.grad[~used] == 0)


# --------------------------------------------------------------------------- decode / encode
def test_decode_within_bounds_even_for_extreme_obs() -> None:
    obs, actions = bimodal_data(1024, seed=3)
    space = gym.spaces.Box(np.array([-0.3, -2.0], np.float32), np.array([0.2, 0.5], np.float32))
    q = VQVAEQuantizer(OBS_SPACE, space, n_codes=8, **SMALL)
    with pytest.warns(UserWarning, match="clipped"):
        q.fit(obs, actions * 3.0, n_steps=100, progress=False, clip_actions=True)
    extreme = np.array([[1e6, -1e6], [-1e4, 1e4], [0.0, 0.0], [3e3, 3e3]], np.float32)
    big = np.repeat(extreme, 200, axis=0)  # above the numpy-path batch size: torch path too
    for o in (extreme, big):
        acts, valid = q.candidates(o)
        assert valid.all() and acts.dtype == np.float32
        assert np.all(acts >= space.low) and np.all(acts <= space.high)
        for k in range(q.n):
            dec = q.decode(o, np.full(len(o), k))
            assert dec.dtype == np.float32 and dec.shape == (len(o), 2)
            assert np.all(dec >= space.low) and np.all(dec <= space.high)


def test_encode_decode_fixed_point(data, fitted) -> None:
    obs, actions = data
    q, _ = fitted
    codes = q.encode(obs, actions)
    assert codes.dtype == np.int64 and codes.shape == (len(obs),)
    decoded = q.decode(obs, codes)
    recoded = q.encode(obs, decoded)
    assert np.mean(recoded == codes) > 0.95


def test_candidates_equal_decode_of_each_code(data, fitted) -> None:
    obs, _ = data
    q, _ = fitted
    acts, valid = q.candidates(obs[:50])
    assert acts.shape == (50, 4, 2) and valid.shape == (50, 4) and valid.all()
    for k in range(4):
        np.testing.assert_allclose(acts[:, k], q.decode(obs[:50], np.full(50, k)), atol=1e-6)


@pytest.mark.parametrize(
    "state_conditioned, hidden", [(True, (64, 64)), (False, (64, 64)), (True, (32,)),
                                  (True, (32, 16, 32))]
)
def test_numpy_path_equals_torch_path(data, state_conditioned: bool, hidden: tuple) -> None:
    obs, actions = data
    space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)  # wide bounds: compare before clipping
    q = VQVAEQuantizer(OBS_SPACE, space, n_codes=8, state_conditioned=state_conditioned,
                       hidden_sizes=hidden, embedding_dim=16, learning_rate=1e-3)
    q.fit(obs * 5.0 + 2.0, actions * 3.0, n_steps=50, progress=False)
    rng = np.random.default_rng(0)
    o = (rng.standard_normal((300, 2)) * 5 + 2).astype(np.float32)
    k = rng.integers(0, 8, 300)
    fast, slow = q.decode_numpy(o, k), q.decode_torch(o, k)
    np.testing.assert_allclose(fast, slow, atol=1e-5, rtol=1e-5)
    for i in range(3):  # the single-observation call a wrapper makes
        np.testing.assert_allclose(q.decode(o[i : i + 1], k[i : i + 1]), slow[i : i + 1],
                                   atol=1e-5, rtol=1e-5)


def test_decode_accepts_index_forms(fitted, data) -> None:
    q, _ = fitted
    obs, _ = data
    ref = q.decode(obs[:1], np.array([2]))
    np.testing.assert_array_equal(q.decode(obs[:1].astype(np.float64), [2]), ref)
    np.testing.assert_array_equal(q.decode(obs[:1], np.array([2], np.int32)), ref)
    np.testing.assert_array_equal(q.decode(obs[:1], 2), ref)


# --------------------------------------------------------------------------- reproducibility
def test_seeded_fit_is_bit_identical_and_seeds_differ(data, fitted) -> None:
    obs, actions = data
    q, metrics = fitted
    again = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, seed=0, **SMALL)
    torch.manual_seed(12345)  # global RNG state must not matter
    np.random.seed(999)
    metrics2 = again.fit(obs, actions, n_steps=1000, progress=False)
    w1, w2 = weights(q), weights(again)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert metrics["loss_history"] == metrics2["loss_history"]
    other = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, seed=1, **SMALL)
    other.fit(obs, actions, n_steps=20, progress=False)
    w3 = weights(other)
    assert not torch.equal(w1["codebook"], w3["codebook"])


def test_fit_on_transitions_equals_fit_on_arrays(data) -> None:
    obs, actions = data
    n = 512
    flags = np.zeros(n, bool)
    t = Transitions(obs[:n], actions[:n], np.zeros(n), obs[:n], flags, flags)
    a = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, **SMALL)
    b = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, **SMALL)
    a.fit(t, n_steps=30, progress=False)
    b.fit(obs[:n], actions[:n], n_steps=30, progress=False)
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# --------------------------------------------------------------------------- codebook health
def test_metrics_consistent_with_encode(data, fitted) -> None:
    obs, actions = data
    q, metrics = fitted
    stats = code_usage_stats(q.encode(obs, actions), q.n)
    assert metrics["usage"] == pytest.approx(stats["usage"])
    assert metrics["perplexity"] == pytest.approx(stats["perplexity"])
    assert metrics["dead_codes"] == stats["dead_codes"]
    hist = metrics["loss_history"]
    assert [h["step"] for h in hist][-1] == 1000 and len(hist) == 10
    assert hist[-1]["reconstruction"] < hist[0]["reconstruction"]
    for h in hist:
        assert h["loss"] == pytest.approx(h["reconstruction"] + h["codebook"] + h["commitment"])


def test_code_usage_statistics_of_extreme_codebooks() -> None:
    """Perplexity is K for uniform use and 1 when one code takes everything (the statistics the
    training loop logs per window and fit reports on the data)."""
    uniform = code_usage_from_counts(np.full(8, 5))
    assert uniform["perplexity"] == pytest.approx(8.0)
    assert uniform["dead_codes"] == 0 and uniform["used_codes"] == 8
    assert uniform["usage"] == pytest.approx([1 / 8] * 8)
    collapsed = code_usage_stats(np.full(100, 3), 8)
    assert collapsed["perplexity"] == pytest.approx(1.0)
    assert collapsed["dead_codes"] == 7 and collapsed["used_codes"] == 1
    assert collapsed["usage"][3] == 1.0
    half = code_usage_stats(np.array([0, 1, 0, 1]), 4)
    assert half["perplexity"] == pytest.approx(2.0) and half["dead_codes"] == 2
    empty = code_usage_from_counts(np.zeros(4, np.int64))
    assert empty["dead_codes"] == 4 and empty["perplexity"] == pytest.approx(1.0)


def test_dead_code_restart_revives_codes() -> None:
    """A bad (uniform, near-zero) codebook init lets a few codes take all the data; restarts at
    data embeddings bring the others back and lower the reconstruction error."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (2048, 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, (2048, 2)).astype(np.float32)  # spread: every code is useful
    common = dict(n_codes=32, state_conditioned=False, codebook_init="uniform", restart_every=50,
                  **SMALL)
    off = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, dead_code_restart=False, **common)
    on = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, dead_code_restart=True, **common)
    m_off = off.fit(obs, actions, n_steps=600, progress=False)
    m_on = on.fit(obs, actions, n_steps=600, progress=False)
    assert m_off["n_restarted_codes"] == 0 and m_off["restarts"] == []
    assert m_on["n_restarted_codes"] > 0
    assert m_on["n_restarted_codes"] == sum(r["codes"] for r in m_on["restarts"])
    assert all(r["step"] <= 0.9 * 600 for r in m_on["restarts"])
    assert m_on["dead_codes"] < m_off["dead_codes"], (m_on["dead_codes"], m_off["dead_codes"])
    assert m_on["reconstruction"]["mse"] < m_off["reconstruction"]["mse"]


# --------------------------------------------------------------------------- checkpoints
def test_save_load_bit_exact(tmp_path: Path, data, fitted) -> None:
    obs, actions = data
    q, _ = fitted
    path = tmp_path / "q.safetensors"
    q.save(path)
    loaded = VQVAEQuantizer.load(path)
    w1, w2 = weights(q), weights(loaded)
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert loaded.config == q.config
    for key, value in q.normalization.items():
        np.testing.assert_array_equal(loaded.normalization[key], value)
    np.testing.assert_array_equal(loaded.encode(obs, actions), q.encode(obs, actions))
    codes = np.arange(len(obs)) % 4
    np.testing.assert_array_equal(loaded.decode(obs[:7], codes[:7]), q.decode(obs[:7], codes[:7]))
    np.testing.assert_array_equal(loaded.decode(obs, codes), q.decode(obs, codes))
    assert loaded.fit_summary == q.fit_summary
    _, meta = load_checkpoint(path, "vqvae_quantizer")
    assert meta["library_version"] == __version__
    assert meta["observation_space"]["shape"] == [2]


def test_metadata_round_trips_and_must_be_json(tmp_path: Path, fitted) -> None:
    q, _ = fitted
    layout = {"obs_keys": ["robot0_eef_pos", "object"], "obs_slices": [[0, 3], [3, 13]]}
    q.metadata["observation_layout"] = layout
    try:
        q.save(tmp_path / "q.safetensors")
        loaded = VQVAEQuantizer.load(tmp_path / "q.safetensors")
        assert loaded.metadata == {"observation_layout": layout}
        q.metadata["bad"] = object()
        with pytest.raises(DataError, match="JSON-serialisable"):
            q.save(tmp_path / "bad.safetensors")
        assert not (tmp_path / "bad.safetensors").exists()
    finally:
        q.metadata.clear()


def test_load_checks_spaces(tmp_path: Path, fitted) -> None:
    q, _ = fitted
    path = tmp_path / "q.safetensors"
    q.save(path)
    with pytest.raises(SpaceMismatchError, match="observation shape"):
        VQVAEQuantizer.load(path, env=gym.make("Pendulum-v1"))
    with pytest.raises(SpaceMismatchError, match="action shape"):
        VQVAEQuantizer.load(path, observation_space=OBS_SPACE,
                            action_space=gym.spaces.Box(-1, 1, (3,), np.float32))
    with pytest.raises(SpaceMismatchError, match="Box"):
        VQVAEQuantizer.load(path, observation_space=OBS_SPACE, action_space=gym.spaces.Discrete(4))
    ok = VQVAEQuantizer.load(path, observation_space=OBS_SPACE, action_space=ACT_SPACE)
    assert ok.n == 4


def test_bad_checkpoints_raise_checkpoint_error(tmp_path: Path, fitted) -> None:
    q, _ = fitted
    good = tmp_path / "good.safetensors"
    q.save(good)
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(raw[: len(raw) // 2])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(300))
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(3)}, str(plain))
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, {"x": torch.zeros(3)}, {"kind": "score_model"})
    tensors, meta = load_checkpoint(good, "vqvae_quantizer")
    renamed = tmp_path / "renamed.safetensors"
    save_checkpoint(renamed, {k + "_x": v for k, v in tensors.items()}, meta)
    reshaped = tmp_path / "reshaped.safetensors"
    save_checkpoint(reshaped, {**tensors, "model.codebook": torch.zeros(5, 16)}, meta)
    bad_norm = tmp_path / "bad_norm.safetensors"
    save_checkpoint(bad_norm, tensors, {**meta, "normalization": {"obs_mean": [0.0]}})
    newer = tmp_path / "newer.safetensors"
    save_checkpoint(newer, tensors, {**meta, "format": meta["format"] + 1})
    bad_metadata = tmp_path / "bad_metadata.safetensors"
    save_checkpoint(bad_metadata, tensors, {**meta, "user_metadata": [1, 2]})
    bad_config = tmp_path / "bad_config.safetensors"
    save_checkpoint(bad_config, tensors, {**meta, "config": {**meta["config"], "n_codes": 1}})
    for path, message in [
        (tmp_path / "missing.safetensors", "does not exist"),
        (truncated, "not a readable"),
        (garbage, "not a readable"),
        (plain, "not a saq-wrappers checkpoint"),
        (other, "score_model"),
        (renamed, "tensors do not match"),
        (reshaped, "model.codebook"),
        (bad_norm, "normalization"),
        (newer, "format 2"),
        (bad_metadata, "user_metadata must be a JSON object"),
        (bad_config, "malformed vqvae_quantizer metadata"),
    ]:
        with pytest.raises(CheckpointError, match=message):
            VQVAEQuantizer.load(path)


def test_save_to_bad_folder_raises_and_leaves_nothing(tmp_path: Path, fitted, monkeypatch) -> None:
    q, _ = fitted
    with pytest.raises(OutputPathError, match="does not exist"):
        q.save(tmp_path / "missing" / "q.safetensors")
    assert not (tmp_path / "missing").exists()
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permission bits: emulate the read-only check
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p) == readonly else real_access(p, mode)
        )
    try:
        with pytest.raises(OutputPathError, match="read-only"):
            q.save(readonly / "q.safetensors")
        assert list(readonly.iterdir()) == []
    finally:
        readonly.chmod(0o755)


# --------------------------------------------------------------------------- bad input
def test_bad_constructor_arguments() -> None:
    with pytest.raises(DataError, match="n_codes must be an integer >= 2"):
        VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=1)
    with pytest.raises(SpaceMismatchError, match="Box"):
        VQVAEQuantizer(OBS_SPACE, gym.spaces.Discrete(3))
    with pytest.raises(SpaceMismatchError, match="Box"):
        VQVAEQuantizer(gym.spaces.Discrete(3), ACT_SPACE)
    with pytest.raises(DataError, match="codebook_init"):
        VQVAEQuantizer(OBS_SPACE, ACT_SPACE, codebook_init="random")


def test_use_before_fit_raises(tmp_path: Path) -> None:
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, **SMALL)
    obs = np.zeros((3, 2), np.float32)
    for call in (
        lambda: q.encode(obs, obs),
        lambda: q.decode(obs, np.zeros(3, np.int64)),
        lambda: q.candidates(obs),
        lambda: q.save(tmp_path / "q.safetensors"),
    ):
        with pytest.raises(NotFittedError, match="before fit"):
            call()
    assert not (tmp_path / "q.safetensors").exists()


def test_bad_data_raises_data_error(data, fitted) -> None:
    obs, actions = data
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, **SMALL)
    nan_obs = obs[:10].copy()
    nan_obs[3, 1] = np.nan
    inf_act = actions[:10].copy()
    inf_act[2, 0] = np.inf
    cases = [
        ((nan_obs, actions[:10]), "observations contains NaN"),
        ((obs[:10], inf_act), "actions contains NaN or inf"),
        ((obs[:0], actions[:0]), "empty"),
        ((obs[:10, :1], actions[:10]), "observations has shape"),
        ((obs[:10], actions[:10, :1]), "actions has shape"),
        ((obs[:10], actions[:9]), "equal lengths"),
    ]
    for args, message in cases:
        with pytest.raises(DataError, match=message):
            q.fit(*args, n_steps=5, progress=False)
    with pytest.raises(DataError, match="Transitions"):
        q.fit(obs, n_steps=5, progress=False)
    with pytest.raises(DataError, match="n_steps"):
        q.fit(obs, actions, n_steps=0, progress=False)
    fq, _ = fitted
    with pytest.raises(DataError, match="NaN"):
        fq.encode(nan_obs, actions[:10])
    with pytest.raises(DataError, match="NaN"):
        fq.decode(nan_obs, np.zeros(10, np.int64))
    with pytest.raises(DataError, match="obs has shape"):
        fq.decode(obs[:1, :1], np.zeros(1, np.int64))
    with pytest.raises(DataError, match=r"\[0, 4\)"):
        fq.decode(obs[:1], np.array([4]))
    with pytest.raises(DataError, match=r"\[0, 4\)"):
        fq.decode(obs[:3], np.array([0, -1, 2]))
    with pytest.raises(DataError, match="expected 3 indices"):
        fq.decode(obs[:3], np.array([0, 1]))
    with pytest.raises(DataError, match="actions has shape"):
        fq.encode(obs[:3], actions[:3, :1])


def test_inputs_not_modified(data) -> None:
    obs, actions = data
    obs_in, act_in = obs[:600].copy(), actions[:600].copy()
    obs_ref, act_ref = obs_in.copy(), act_in.copy()
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, **SMALL)
    q.fit(obs_in, act_in, n_steps=20, progress=False)
    codes = q.encode(obs_in, act_in)
    codes_ref = codes.copy()
    q.decode(obs_in, codes)
    q.decode(obs_in[:1], codes[:1])
    q.candidates(obs_in[:5])
    np.testing.assert_array_equal(obs_in, obs_ref)
    np.testing.assert_array_equal(act_in, act_ref)
    np.testing.assert_array_equal(codes, codes_ref)


def test_progress_bar_reports_losses_and_perplexity(data, capsys) -> None:
    obs, actions = data
    q = VQVAEQuantizer(OBS_SPACE, ACT_SPACE, n_codes=4, log_every=5, **SMALL)
    q.fit(obs[:300], actions[:300], n_steps=10, progress=True)
    err = capsys.readouterr().err
    assert "fit VQ-VAE" in err and "ppl=" in err and "recon=" in err


def test_acting_rule_is_saved_with_the_quantizer_and_malformed_ones_are_refused(tmp_path: Path, fitted) -> None:
    q, _ = fitted
    q.save(tmp_path / "plain.safetensors")
    assert VQVAEQuantizer.load(tmp_path / "plain.safetensors").acting is None
    _, meta = load_checkpoint(tmp_path / "plain.safetensors", "vqvae_quantizer")
    assert "acting" not in meta  # files without a rule are written as before
    q.acting = ModeAveraging(bandwidth_scale=3.0)
    try:
        q.save(tmp_path / "mode.safetensors")
    finally:
        q.acting = None
    assert VQVAEQuantizer.load(tmp_path / "mode.safetensors").acting == ModeAveraging(bandwidth_scale=3.0)
    for bad in ({"mode_averaging": {"bandwidth_scale": -1}}, {"mode_averaging": {"kernel": "box"}}, {"other": {}}, [1]):
        forged = forge(tmp_path / "mode.safetensors", tmp_path / "bad.safetensors", "vqvae_quantizer", acting=bad)
        with pytest.raises(CheckpointError, match="malformed acting settings"):
            VQVAEQuantizer.load(forged)
