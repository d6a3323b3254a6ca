"""SAQ's state-conditioned VQ-VAE action quantizer (Luo et al., CoRL 2023, section 4.1).

A continuous action ``a`` taken at state ``s`` is encoded to an embedding ``e(s, a)``, snapped to
the nearest of ``K`` codebook vectors (SAQ eq. 5) and decoded back with the state:
``a_hat = decoder(s, e_k)``. Offline RL then runs on the integer code ``k``.

Two objects live here:

- :class:`StateConditionedVQVAE`, the torch module (encoder, codebook, decoder, SAQ eq. 7 loss)
  working in the normalized (z-scored) observation and action spaces;
- :class:`VQVAEQuantizer`, the user-facing :class:`~saq_wrappers.action_set.ActionSet`: it fits
  the module (with normalization, codebook-health tracking and dead-code restarts), encodes
  datasets in batches, decodes fast enough to sit inside a Gymnasium wrapper, and saves/loads
  safetensors checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from saq_wrappers.action_set import (
    as_observation_batch,
    box_from_dict,
    box_to_dict,
    check_finite,
    check_indices,
    check_spaces_match,
    require_box,
)
from saq_wrappers.errors import CheckpointError, DataError, NotFittedError
from saq_wrappers.io import load_checkpoint, save_checkpoint
from saq_wrappers.metrics import code_usage_stats, reconstruction_stats

__all__ = ["StateConditionedVQVAE", "VQVAEQuantizer", "DEFAULT_N_STEPS"]

#: Checkpoint ``kind`` written by :meth:`VQVAEQuantizer.save`.
CHECKPOINT_KIND = "vqvae_quantizer"
#: Version of the checkpoint layout (tensor names + metadata keys).
CHECKPOINT_FORMAT = 1
#: Default number of gradient updates of :meth:`VQVAEQuantizer.fit`. The authors train 500k
#: updates on a GPU; the default 512-512 model runs roughly 50-100 updates/s on two CPU cores, so
#: 5k updates take about one minute and already bring Hopper-scale action reconstruction close to
#: its plateau (see ``benchmarks/bench_quantizer_fit.py``). Pass ``n_steps`` explicitly (e.g.
#: 50k-500k on a GPU) for paper-scale training.
DEFAULT_N_STEPS = 5_000
#: Floor of the z-score standard deviations: a (near-)constant dimension is divided by this
#: instead of ~0, so it neither blows up nor dominates the loss.
STD_FLOOR = 1e-3
#: Largest batch :meth:`VQVAEQuantizer.decode` serves with the numpy path (batch rows; for
#: :meth:`~VQVAEQuantizer.candidates` it is compared with ``batch * K``).
NUMPY_MAX_ROWS = 512
#: Rows per chunk when encoding or decoding large datasets with torch.
CHUNK_ROWS = 65_536


# ---------------------------------------------------------------------------------------------
# torch module
# ---------------------------------------------------------------------------------------------


def _mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = in_dim
    for size in hidden_sizes:
        layers += [nn.Linear(last, int(size)), nn.ReLU()]
        last = int(size)
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class StateConditionedVQVAE(nn.Module):
    """The SAQ VQ-VAE: ``e(s, a)`` -> nearest code ``e_k`` (SAQ eq. 5) -> ``decoder(s, e_k)``.

    Inputs are expected already normalized (:class:`VQVAEQuantizer` does that). Encoder and
    decoder are ReLU MLPs; the codebook is a ``K x D`` parameter trained by the codebook term of
    SAQ eq. 7 (no EMA, as in the paper).

    ``state_conditioned=False`` is the paper's "no state" ablation (Table 3): the state input of
    both encoder and decoder is replaced by zeros, so the ``K`` codes are the same ``K`` actions
    at every state.

    Args:
        obs_dim: flattened observation size.
        act_dim: action size.
        n_codes: codebook size ``K``.
        embedding_dim: code/embedding size ``D``.
        hidden_sizes: hidden widths of both MLPs.
        state_conditioned: condition encoder and decoder on the state (SAQ) or on zeros.
        generator: seeds the initial weights without touching torch's global RNG.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_codes: int,
        embedding_dim: int = 128,
        hidden_sizes: Sequence[int] = (512, 512),
        state_conditioned: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.n_codes = int(n_codes)
        self.embedding_dim = int(embedding_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.state_conditioned = bool(state_conditioned)
        self.encoder = _mlp(self.obs_dim + self.act_dim, self.hidden_sizes, self.embedding_dim)
        self.decoder = _mlp(self.obs_dim + self.embedding_dim, self.hidden_sizes, self.act_dim)
        self.codebook = nn.Parameter(torch.empty(self.n_codes, self.embedding_dim))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default ``Linear`` init (``U(+-1/sqrt(fan_in))``) drawn from ``generator``;
        codebook ``U(+-1/K)`` as in van den Oord et al. (usually replaced by k-means++ in fit)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
        self.codebook.uniform_(-1.0 / self.n_codes, 1.0 / self.n_codes, generator=generator)

    def _state(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.state_conditioned else torch.zeros_like(obs)

    def embed(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Continuous encoder embedding ``e_phi(s, a)``, ``(B, D)``."""
        return self.encoder(torch.cat([self._state(obs), actions], dim=-1))

    def nearest(self, embedding: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook vector by squared L2 distance (SAQ eq. 5), ``(B,)``."""
        distances = (
            embedding.pow(2).sum(-1, keepdim=True)
            - 2.0 * embedding @ self.codebook.t()
            + self.codebook.pow(2).sum(-1)[None, :]
        )
        return distances.argmin(dim=-1)

    def encode(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Codes ``k = argmin_j ||e(s, a) - e_j||^2`` (SAQ eq. 5), int64 ``(B,)``."""
        return self.nearest(self.embed(obs, actions))

    def decode_embedding(self, obs: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``p_theta(a | s, z)``'s mean: the decoder MLP on ``concat(s, z)``."""
        return self.decoder(torch.cat([self._state(obs), embedding], dim=-1))

    def decode(self, obs: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Normalized action decoded from ``(s, e_k)``."""
        return self.decode_embedding(obs, self.codebook[codes])

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, codes, embedding, code_vectors)`` with the straight-through
        estimator: the decoder sees ``e_k`` but gradients flow to ``e(s, a)``."""
        embedding = self.embed(obs, actions)
        codes = self.nearest(embedding.detach())
        code_vectors = self.codebook[codes]
        straight_through = embedding + (code_vectors - embedding).detach()
        return self.decode_embedding(obs, straight_through), codes, embedding, code_vectors

    def loss(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        codebook_weight: float = 1.0,
        commitment_weight: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """SAQ eq. 7: ``|a - a_hat|^2 + cb * |sg[e(s,a)] - e_k|^2 + cm * |e(s,a) - sg[e_k]|^2``.

        The reconstruction term (a unit-variance Gaussian ``-log p_theta(a | z)`` up to constants)
        is the squared error summed over action dimensions, averaged over the batch, as in the
        authors' code. Returns the total loss and its detached parts (with ``codes``).
        """
        reconstruction, codes, embedding, code_vectors = self(obs, actions)
        recon = (reconstruction - actions).pow(2).sum(-1).mean()
        codebook = (embedding.detach() - code_vectors).pow(2).sum(-1).mean()
        commitment = (embedding - code_vectors.detach()).pow(2).sum(-1).mean()
        total = recon + codebook_weight * codebook + commitment_weight * commitment
        parts = {
            "loss": total.detach(),
            "reconstruction": recon.detach(),
            "codebook": codebook.detach(),
            "commitment": commitment.detach(),
            "codes": codes,
        }
        return total, parts


# ---------------------------------------------------------------------------------------------
# user-facing quantizer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    n_codes: int
    embedding_dim: int
    hidden_sizes: tuple[int, ...]
    state_conditioned: bool
    codebook_weight: float
    commitment_weight: float
    learning_rate: float
    batch_size: int
    seed: int
    n_steps: int
    dead_code_restart: bool
    restart_every: int
    restart_until: float
    codebook_init: str
    log_every: int


@dataclass(frozen=True)
class _Normalizer:
    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray

    @classmethod
    def fit(cls, obs: np.ndarray, actions: np.ndarray) -> "_Normalizer":
        def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x64 = x.astype(np.float64)
            return (
                x64.mean(axis=0).astype(np.float32),
                np.maximum(x64.std(axis=0), STD_FLOOR).astype(np.float32),
            )

        obs_mean, obs_std = stats(obs)
        act_mean, act_std = stats(actions)
        return cls(obs_mean, obs_std, act_mean, act_std)

    def to_json(self) -> dict[str, list[float]]:
        return {k: [float(v) for v in getattr(self, k)] for k in _NORM_KEYS}

    @classmethod
    def from_json(cls, data: Any, obs_dim: int, act_dim: int) -> "_Normalizer":
        if not isinstance(data, dict) or set(data) != set(_NORM_KEYS):
            raise CheckpointError(
                f"checkpoint normalization must hold exactly {list(_NORM_KEYS)}, got {data!r:.200}"
            )
        arrays = {}
        for key in _NORM_KEYS:
            want = obs_dim if key.startswith("obs") else act_dim
            try:
                array = np.asarray(data[key], dtype=np.float32)
            except (TypeError, ValueError) as error:
                raise CheckpointError(f"checkpoint normalization {key!r} is malformed") from error
            if array.shape != (want,) or not np.isfinite(array).all():
                raise CheckpointError(
                    f"checkpoint normalization {key!r} has shape {array.shape}, expected "
                    f"({want},) finite values"
                )
            if key.endswith("std") and (array <= 0).any():
                raise CheckpointError(f"checkpoint normalization {key!r} must be positive")
            arrays[key] = array
        return cls(**arrays)


_NORM_KEYS = ("obs_mean", "obs_std", "act_mean", "act_std")


class VQVAEQuantizer:
    """SAQ's state-conditioned action quantizer, usable as an :class:`ActionSet` with ``n = K``.

    ``fit`` z-scores observations and actions (std floored at :data:`STD_FLOOR`), trains
    :class:`StateConditionedVQVAE` with SAQ eq. 7 (Adam, straight-through estimator) and reports
    codebook health. The reconstruction term is measured in the z-scored action space (the
    paper's D4RL actions are already of unit scale), so every action dimension counts alike.
    Each ``fit`` starts again from the seeded initialisation. Beyond the authors' recipe (which has neither), the codebook is initialised
    by k-means++ on encoder embeddings of the data and, by default, codes unused over the last
    ``restart_every`` updates are restarted at embeddings of random data points (no restarts in
    the last ``1 - restart_until`` of training, so the final codebook settles).

    ``decode`` of a few observations (the per-step call of a Gymnasium wrapper) runs in numpy on
    a copy of the decoder weights, with the code half of the first decoder layer precomputed for
    all ``K`` codes; large batches run in torch. Both give the same actions (to float32
    rounding). Decoded actions are always clipped into ``action_space``.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> obs_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        >>> act_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        >>> rng = np.random.default_rng(0)
        >>> obs = rng.uniform(-1, 1, (512, 2)).astype(np.float32)
        >>> actions = np.sign(rng.standard_normal((512, 1))) * obs[:, :1]
        >>> q = VQVAEQuantizer(obs_space, act_space, n_codes=4, hidden_sizes=(32, 32))
        >>> metrics = q.fit(obs, actions, n_steps=100, progress=False)
        >>> codes = q.encode(obs, actions)
        >>> q.decode(obs, codes).shape
        (512, 1)
        >>> q.candidates(obs[:3])[0].shape
        (3, 4, 1)

    Args:
        observation_space: ``Box`` of observations (flattened internally).
        action_space: ``Box`` of the continuous actions; decoded actions are clipped into it.
        n_codes: codebook size ``K`` (paper default 64; results flat over 16..128, Table 4).
        embedding_dim: code size ``D`` (128).
        hidden_sizes: encoder/decoder hidden widths (512, 512).
        state_conditioned: ``False`` is the "no state" ablation (SAQ Table 3).
        codebook_weight, commitment_weight: weights of the two VQ terms of SAQ eq. 7 (1.0, 1.0).
        learning_rate: Adam step size (3e-4).
        batch_size: minibatch size (256).
        seed: seeds weights, k-means++ init, minibatches and restarts (bit-reproducible).
        device: torch device for training and large-batch encode/decode.
        n_steps: default number of updates of :meth:`fit` (:data:`DEFAULT_N_STEPS`).
        dead_code_restart: restart codes unused over a window of updates (on by default).
        restart_every: window length, in updates, of the dead-code check.
        restart_until: fraction of training after which no more restarts happen.
        codebook_init: ``"kmeans++"`` (from data embeddings) or ``"uniform"`` (``U(+-1/K)``).
        log_every: updates between entries of the loss history.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        n_codes: int = 64,
        *,
        embedding_dim: int = 128,
        hidden_sizes: Sequence[int] = (512, 512),
        state_conditioned: bool = True,
        codebook_weight: float = 1.0,
        commitment_weight: float = 1.0,
        learning_rate: float = 3e-4,
        batch_size: int = 256,
        seed: int = 0,
        device: str | torch.device = "cpu",
        n_steps: int = DEFAULT_N_STEPS,
        dead_code_restart: bool = True,
        restart_every: int = 200,
        restart_until: float = 0.9,
        codebook_init: str = "kmeans++",
        log_every: int = 100,
    ) -> None:
        self.observation_space = require_box(observation_space, "observation_space")
        self.action_space = require_box(action_space, "action_space")
        if len(self.action_space.shape) != 1:
            raise DataError(
                f"action_space must be 1-D (act_dim,), got shape {self.action_space.shape}"
            )
        _check_int("n_codes", n_codes, 2)
        _check_int("embedding_dim", embedding_dim, 1)
        _check_int("batch_size", batch_size, 1)
        _check_int("n_steps", n_steps, 1)
        _check_int("restart_every", restart_every, 1)
        _check_int("log_every", log_every, 1)
        hidden = tuple(hidden_sizes)
        for size in hidden:
            _check_int("each hidden size", size, 1)
        for name, value in (
            ("codebook_weight", codebook_weight),
            ("commitment_weight", commitment_weight),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise DataError(f"{name} must be a finite number >= 0, got {value}")
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise DataError(f"learning_rate must be > 0, got {learning_rate}")
        if not 0.0 <= restart_until <= 1.0:
            raise DataError(f"restart_until must lie in [0, 1], got {restart_until}")
        if codebook_init not in ("kmeans++", "uniform"):
            raise DataError(
                f"codebook_init must be 'kmeans++' or 'uniform', got {codebook_init!r}"
            )
        self.config = _Config(
            n_codes=int(n_codes),
            embedding_dim=int(embedding_dim),
            hidden_sizes=tuple(int(h) for h in hidden),
            state_conditioned=bool(state_conditioned),
            codebook_weight=float(codebook_weight),
            commitment_weight=float(commitment_weight),
            learning_rate=float(learning_rate),
            batch_size=int(batch_size),
            seed=int(seed),
            n_steps=int(n_steps),
            dead_code_restart=bool(dead_code_restart),
            restart_every=int(restart_every),
            restart_until=float(restart_until),
            codebook_init=str(codebook_init),
            log_every=int(log_every),
        )
        self.device = torch.device(device)
        #: JSON-serialisable facts about the training data, saved with the checkpoint: e.g. the
        #: robomimic observation layout (``robomimic_layout(...).to_json()``), so evaluation
        #: builds observations in the order the quantizer was fitted on.
        self.metadata: dict[str, Any] = {}
        self._obs_shape = tuple(self.observation_space.shape)
        self._obs_is_flat = len(self._obs_shape) == 1
        self.obs_dim = int(np.prod(self._obs_shape, dtype=np.int64))
        self.act_dim = int(self.action_space.shape[0])
        self._low = np.asarray(self.action_space.low, dtype=np.float32).copy()
        self._high = np.asarray(self.action_space.high, dtype=np.float32).copy()
        self.model = self._new_model()
        self._normalizer: _Normalizer | None = None
        self.fit_summary: dict[str, Any] | None = None
        self._fast: dict[str, Any] | None = None

    # ------------------------------------------------------------------ properties
    @property
    def n(self) -> int:
        """Size of the discrete action space: the codebook size ``K``."""
        return self.config.n_codes

    @property
    def n_codes(self) -> int:
        return self.config.n_codes

    @property
    def is_fitted(self) -> bool:
        return self._normalizer is not None

    @property
    def normalization(self) -> dict[str, np.ndarray]:
        """The z-score statistics fitted from the data (copies)."""
        norm = self._require_fitted("normalization")
        return {key: getattr(norm, key).copy() for key in _NORM_KEYS}

    def __repr__(self) -> str:
        c = self.config
        return (
            f"VQVAEQuantizer(obs_dim={self.obs_dim}, act_dim={self.act_dim}, n_codes={c.n_codes}, "
            f"embedding_dim={c.embedding_dim}, hidden_sizes={c.hidden_sizes}, "
            f"state_conditioned={c.state_conditioned}, fitted={self.is_fitted})"
        )

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        observations: Any,
        actions: np.ndarray | None = None,
        *,
        n_steps: int | None = None,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Train on ``(observations, actions)`` or on a :class:`~saq_wrappers.Transitions`.

        Every call starts from the seeded initialisation (so the same seed and data give
        bit-identical weights) and minimises SAQ eq. 7 with Adam for ``n_steps`` updates
        (default: the constructor's ``n_steps``, :data:`DEFAULT_N_STEPS`).

        Returns a dict with ``loss_history`` (every ``log_every`` updates: mean ``loss``,
        ``reconstruction``, ``codebook``, ``commitment``, and the window's ``perplexity`` and
        ``dead_codes``), ``restarts`` (``[{"step", "codes"}]``), ``n_restarted_codes``, and the
        final codebook health on the data (``usage``, ``perplexity``, ``dead_codes``,
        ``used_codes`` from :func:`~saq_wrappers.metrics.code_usage_stats`; ``reconstruction``
        from :func:`~saq_wrappers.metrics.reconstruction_stats` in the original action units).
        """
        obs, acts = self._fit_arrays(observations, actions)
        steps = self.config.n_steps if n_steps is None else n_steps
        _check_int("n_steps", steps, 1)
        cfg = self.config
        started = time.perf_counter()

        normalizer = _Normalizer.fit(obs, acts)
        torch_gen = torch.Generator().manual_seed(cfg.seed)
        np_gen = np.random.default_rng(cfg.seed)
        model = self._new_model(torch_gen)
        obs_t = torch.from_numpy((obs - normalizer.obs_mean) / normalizer.obs_std).to(self.device)
        act_t = torch.from_numpy((acts - normalizer.act_mean) / normalizer.act_std).to(self.device)
        n_rows = len(obs_t)

        if cfg.codebook_init == "kmeans++":
            sample = np_gen.choice(n_rows, size=min(n_rows, 4096), replace=False)
            index = torch.from_numpy(np.sort(sample)).to(self.device)
            with torch.no_grad():
                embeddings = model.embed(obs_t[index], act_t[index]).cpu().numpy()
            chosen = _kmeans_plus_plus(embeddings.astype(np.float64), cfg.n_codes, np_gen)
            with torch.no_grad():
                model.codebook.copy_(torch.from_numpy(embeddings[chosen]))

        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
        restart_window = torch.zeros(cfg.n_codes, dtype=torch.int64, device=self.device)
        log_window = torch.zeros(cfg.n_codes, dtype=torch.int64, device=self.device)
        sums = torch.zeros(4, device=self.device)  # on device: no host sync per update
        history: list[dict[str, float]] = []
        restarts: list[dict[str, int]] = []
        last_restart_step = int(cfg.restart_until * steps)
        bar = _progress_bar(steps, progress)
        model.train()
        try:
            for step in range(1, steps + 1):
                batch = torch.randint(n_rows, (cfg.batch_size,), generator=torch_gen).to(
                    self.device
                )
                loss, parts = model.loss(
                    obs_t[batch], act_t[batch], cfg.codebook_weight, cfg.commitment_weight
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                counts = torch.bincount(parts["codes"], minlength=cfg.n_codes)
                restart_window += counts
                log_window += counts
                sums += torch.stack(
                    [parts[k] for k in ("loss", "reconstruction", "codebook", "commitment")]
                )

                if step % cfg.log_every == 0 or step == steps:
                    count = step - (history[-1]["step"] if history else 0)
                    means = (sums.double() / count).tolist()
                    sums.zero_()
                    usage = _usage_from_counts(log_window.cpu().numpy())
                    log_window.zero_()
                    history.append(
                        {
                            "step": step,
                            "loss": means[0],
                            "reconstruction": means[1],
                            "codebook": means[2],
                            "commitment": means[3],
                            "perplexity": usage["perplexity"],
                            "dead_codes": usage["dead_codes"],
                        }
                    )
                    if bar is not None:
                        bar.set_postfix(
                            loss=f"{means[0]:.4f}",
                            recon=f"{means[1]:.4f}",
                            ppl=f"{usage['perplexity']:.1f}",
                            dead=usage["dead_codes"],
                            refresh=False,
                        )

                if step % cfg.restart_every == 0:
                    if cfg.dead_code_restart and step <= last_restart_step:
                        dead = torch.nonzero(restart_window == 0).flatten()
                        if len(dead):
                            self._restart_codes(model, optimizer, dead, obs_t, act_t, torch_gen)
                            restarts.append({"step": step, "codes": int(len(dead))})
                    restart_window.zero_()
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

        model.eval()
        self.model = model
        self._normalizer = normalizer
        self._refresh_fast_path()
        final = self._final_health(obs, acts)
        summary = {
            "n_steps": int(steps),
            "n_rows": int(n_rows),
            "seconds": time.perf_counter() - started,
            "final_loss": history[-1]["loss"],
            "final_reconstruction_loss": history[-1]["reconstruction"],
            "n_restarted_codes": int(sum(r["codes"] for r in restarts)),
            "n_restart_events": len(restarts),
            **final,
        }
        self.fit_summary = summary
        return {**summary, "loss_history": history, "restarts": restarts}

    def _fit_arrays(
        self, observations: Any, actions: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if actions is None:
            if not (hasattr(observations, "observations") and hasattr(observations, "actions")):
                raise DataError(
                    "fit expects (observations, actions) arrays or a Transitions; got "
                    f"{type(observations).__name__} and no actions"
                )
            observations, actions = observations.observations, observations.actions
        obs_in = np.asarray(observations)
        act_in = np.asarray(actions)
        if obs_in.shape[:1] == (0,) or act_in.shape[:1] == (0,) or obs_in.ndim == 0:
            raise DataError("the dataset is empty: expected at least one (observation, action) row")
        obs = as_observation_batch(obs_in, self.observation_space, "observations")
        acts = np.asarray(act_in, dtype=np.float32)
        if acts.ndim == 1 and self.act_dim == 1:
            acts = acts[:, None]
        if acts.ndim != 2 or acts.shape[1] != self.act_dim:
            raise DataError(f"actions has shape {acts.shape}, expected (N, {self.act_dim})")
        if len(obs) != len(acts):
            raise DataError(
                f"observations has {len(obs)} rows but actions has {len(acts)}: "
                "expected equal lengths"
            )
        check_finite(acts, "actions")
        # only read from here on (normalization makes new arrays): the caller's data are untouched
        return obs.reshape(len(obs), -1), acts

    @torch.no_grad()
    def _restart_codes(
        self,
        model: StateConditionedVQVAE,
        optimizer: torch.optim.Optimizer,
        dead: torch.Tensor,
        obs_t: torch.Tensor,
        act_t: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        """Move dead codes onto encoder embeddings of random data points and clear their Adam
        moments, so they start competing for data again (not in the authors' recipe)."""
        rows = torch.randint(len(obs_t), (len(dead),), generator=generator).to(self.device)
        model.codebook[dead] = model.embed(obs_t[rows], act_t[rows])
        state = optimizer.state.get(model.codebook)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][dead] = 0.0

    def _final_health(self, obs: np.ndarray, acts: np.ndarray) -> dict[str, Any]:
        """Codebook health (SAQ has none; we report it) and reconstruction on all fitted rows."""
        codes = self._encode_normalized_flat(obs, acts)
        decoded = self._decode_flat(obs, codes)
        usage = code_usage_stats(codes, self.n)
        return {**usage, "reconstruction": reconstruction_stats(acts, decoded)}

    # ------------------------------------------------------------------ encode / decode
    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Code of each ``(s, a)`` row, ``argmin_k ||e(s, a) - e_k||^2`` (SAQ eq. 5): int64 (B,).

        Runs in torch, in chunks of :data:`CHUNK_ROWS`, so millions of rows can be relabeled.
        """
        self._require_fitted("encode")
        batch = as_observation_batch(obs, self.observation_space, "obs")
        acts = np.asarray(actions, dtype=np.float32)
        if acts.ndim == 1 and self.act_dim == 1 and len(acts) == len(batch):
            acts = acts[:, None]
        if acts.ndim != 2 or acts.shape[1] != self.act_dim:
            raise DataError(f"actions has shape {acts.shape}, expected (B, {self.act_dim})")
        if len(acts) != len(batch):
            raise DataError(
                f"obs has {len(batch)} rows but actions has {len(acts)}: expected equal lengths"
            )
        check_finite(acts, "actions")
        return self._encode_normalized_flat(batch.reshape(len(batch), -1), acts)

    @torch.no_grad()
    def _encode_normalized_flat(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        norm = self._normalizer
        assert norm is not None
        out = np.empty(len(obs), dtype=np.int64)
        for start in range(0, len(obs), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            o = torch.from_numpy((obs[start:stop] - norm.obs_mean) / norm.obs_std).to(self.device)
            a = torch.from_numpy((acts[start:stop] - norm.act_mean) / norm.act_std).to(self.device)
            out[start:stop] = self.model.encode(o, a).cpu().numpy()
        return out

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Action ``decoder(s, e_k)`` for each row, unnormalized and clipped into ``action_space``.

        ``(B, *obs_shape)``, ``(B,)`` int -> float32 ``(B, act_dim)``. Small batches (the per-step
        call of a wrapper) use the numpy path, large ones torch.
        """
        fast = self._fast
        if fast is None:
            raise NotFittedError(
                "decode called before fit: call fit(...) or VQVAEQuantizer.load(...) first"
            )
        o = obs if type(obs) is np.ndarray and obs.dtype == np.float32 else np.asarray(
            obs, dtype=np.float32
        )
        if o.shape[1:] != self._obs_shape:
            raise DataError(
                f"obs has shape {o.shape}, expected (batch, {', '.join(map(str, self._obs_shape))})"
            )
        if not np.isfinite(o).all():
            check_finite(o, "obs")
        batch = len(o)
        if batch == 1 and self._obs_is_flat:
            # the per-step call of a wrapper: validate the index with scalar ops only
            if type(index) is np.ndarray and index.shape == (1,) and index.dtype.kind in "iu":
                code = int(index[0])
            else:
                code = int(check_indices(index, self.config.n_codes, 1)[0])
            if not 0 <= code < self.config.n_codes:
                check_indices(np.asarray([code]), self.config.n_codes, 1)
            return self._decode_one(o[0], code)
        idx = check_indices(index, self.config.n_codes, batch)
        flat = o.reshape(batch, -1)
        if batch <= NUMPY_MAX_ROWS:
            return self._decode_numpy(flat, idx)
        return self._decode_torch(flat, idx)

    def _decode_one(self, obs: np.ndarray, code: int) -> np.ndarray:
        """:meth:`_decode_numpy` for one flat observation and one code, with 1-D products
        (``gemv``) and no fancy indexing: the cheapest path for a wrapper's ``step``."""
        fast = self._fast
        assert fast is not None
        if fast["w_state"] is not None:
            h = np.dot(obs - fast["obs_mean"], fast["w_state"])
            h += fast["table"][code]
        else:
            h = fast["table"][code].copy()
        for weight, bias in fast["hidden"]:
            np.maximum(h, 0.0, out=h)
            h = np.dot(h, weight)
            h += bias
        np.maximum(h, 0.0, out=h)
        out = np.dot(h, fast["w_out"])
        out += fast["b_out"]
        np.maximum(out, self._low, out=out)
        np.minimum(out, self._high, out=out)
        return out.reshape(1, -1)

    def _decode_flat(self, obs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        if len(obs) <= NUMPY_MAX_ROWS:
            return self._decode_numpy(obs, codes)
        return self._decode_torch(obs, codes)

    def _decode_numpy(self, obs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Decoder forward in numpy: layer 1 of ``concat(s, e_k)`` is ``W_s s + (W_e e_k + b)``
        with the bracket precomputed for all codes, ``1 / obs_std`` folded into ``W_s`` and the
        action unnormalization folded into the last layer."""
        fast = self._fast
        assert fast is not None
        h = fast["table"][codes]
        if fast["w_state"] is not None:
            h += (obs - fast["obs_mean"]) @ fast["w_state"]
        for weight, bias in fast["hidden"]:
            np.maximum(h, 0.0, out=h)
            h = h @ weight
            h += bias
        np.maximum(h, 0.0, out=h)
        out = h @ fast["w_out"]
        out += fast["b_out"]
        np.maximum(out, self._low, out=out)
        np.minimum(out, self._high, out=out)
        return out

    @torch.no_grad()
    def _decode_torch(self, obs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        norm = self._normalizer
        assert norm is not None
        out = np.empty((len(obs), self.act_dim), dtype=np.float32)
        for start in range(0, len(obs), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            o = torch.from_numpy((obs[start:stop] - norm.obs_mean) / norm.obs_std).to(self.device)
            k = torch.from_numpy(np.asarray(codes[start:stop], dtype=np.int64)).to(self.device)
            out[start:stop] = self.model.decode(o, k).cpu().numpy()
        out *= norm.act_std
        out += norm.act_mean
        return np.clip(out, self._low, self._high, out=out)

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All ``K`` decoded actions at each state, ``(B, K, act_dim)``, and an all-True mask."""
        self._require_fitted("candidates")
        batch = as_observation_batch(obs, self.observation_space, "obs")
        flat = batch.reshape(len(batch), -1)
        k = self.config.n_codes
        rows = np.repeat(flat, k, axis=0)
        codes = np.tile(np.arange(k, dtype=np.int64), len(flat))
        actions = self._decode_flat(rows, codes).reshape(len(flat), k, self.act_dim)
        return actions, np.ones((len(flat), k), dtype=bool)

    def decode_torch(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        """:meth:`decode` forced through the torch path (for checking and benchmarking)."""
        self._require_fitted("decode_torch")
        batch = as_observation_batch(obs, self.observation_space, "obs")
        idx = check_indices(index, self.n, len(batch))
        return self._decode_torch(batch.reshape(len(batch), -1), idx)

    def decode_numpy(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        """:meth:`decode` forced through the numpy path (for checking and benchmarking)."""
        self._require_fitted("decode_numpy")
        batch = as_observation_batch(obs, self.observation_space, "obs")
        idx = check_indices(index, self.n, len(batch))
        return self._decode_numpy(batch.reshape(len(batch), -1), idx)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights + metadata (spaces, config, normalization, version, fit summary) to one
        safetensors file, atomically (:func:`saq_wrappers.io.save_checkpoint`)."""
        norm = self._require_fitted("save")
        from saq_wrappers import __version__

        config = asdict(self.config)
        config["hidden_sizes"] = list(self.config.hidden_sizes)
        metadata = {
            "kind": CHECKPOINT_KIND,
            "format": CHECKPOINT_FORMAT,
            "library_version": __version__,
            "observation_space": box_to_dict(self.observation_space),
            "action_space": box_to_dict(self.action_space),
            "config": config,
            "normalization": norm.to_json(),
            "fit_summary": self.fit_summary,
            "user_metadata": self.metadata,
        }
        try:
            json.dumps(self.metadata)
        except (TypeError, ValueError) as error:
            raise DataError(
                f"quantizer.metadata must be JSON-serialisable (str keys; str, number, bool, "
                f"None, list or dict values): {error}"
            ) from error
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        save_checkpoint(path, tensors, metadata)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        env: gym.Env[Any, Any] | None = None,
        *,
        observation_space: gym.Space[Any] | None = None,
        action_space: gym.Space[Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> "VQVAEQuantizer":
        """Read a checkpoint written by :meth:`save`.

        With ``env`` (or ``observation_space``/``action_space``) the spaces are checked against
        the checkpoint's and :class:`~saq_wrappers.errors.SpaceMismatchError` is raised if they
        differ. A missing, corrupted or foreign file raises
        :class:`~saq_wrappers.errors.CheckpointError`.
        """
        tensors, metadata = load_checkpoint(path, CHECKPOINT_KIND)
        where = str(path)
        try:
            obs_space = box_from_dict(metadata["observation_space"])
            act_space = box_from_dict(metadata["action_space"])
            config = dict(metadata["config"])
            fields = set(_Config.__dataclass_fields__)
            if set(config) != fields:
                raise CheckpointError(
                    f"{where!r} config keys {sorted(config)} differ from the expected "
                    f"{sorted(fields)}"
                )
            device_kw = {"device": device}
            quantizer = cls(obs_space, act_space, **config, **device_kw)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(
                f"{where!r} has malformed vqvae_quantizer metadata ({error})"
            ) from error
        quantizer._normalizer = _Normalizer.from_json(
            metadata.get("normalization"), quantizer.obs_dim, quantizer.act_dim
        )
        expected = {f"model.{k}": v for k, v in quantizer.model.state_dict().items()}
        if set(tensors) != set(expected):
            missing = sorted(set(expected) - set(tensors))[:5]
            extra = sorted(set(tensors) - set(expected))[:5]
            raise CheckpointError(
                f"{where!r} tensors do not match a vqvae_quantizer: missing {missing}, "
                f"unexpected {extra}"
            )
        state = {}
        for name, reference in expected.items():
            tensor = tensors[name]
            if tensor.shape != reference.shape or tensor.dtype != reference.dtype:
                raise CheckpointError(
                    f"{where!r} tensor {name!r} has shape {tuple(tensor.shape)} "
                    f"{tensor.dtype}, expected {tuple(reference.shape)} {reference.dtype}"
                )
            if not torch.isfinite(tensor).all():
                raise CheckpointError(f"{where!r} tensor {name!r} holds NaN or inf")
            state[name[len("model.") :]] = tensor
        quantizer.model.load_state_dict(state)
        quantizer.model.eval()
        summary = metadata.get("fit_summary")
        quantizer.fit_summary = summary if isinstance(summary, dict) else None
        user_metadata = metadata.get("user_metadata", {})
        if not isinstance(user_metadata, dict):
            raise CheckpointError(f"{where!r} user_metadata must be a JSON object, got {type(user_metadata).__name__}")
        quantizer.metadata = user_metadata
        quantizer._refresh_fast_path()
        if env is not None:
            observation_space = env.observation_space
            action_space = env.action_space
        if observation_space is not None or action_space is not None:
            check_spaces_match(
                quantizer,
                observation_space if observation_space is not None else obs_space,
                action_space if action_space is not None else act_space,
                where="env" if env is not None else "given",
            )
        return quantizer

    # ------------------------------------------------------------------ internals
    def _new_model(self, generator: torch.Generator | None = None) -> StateConditionedVQVAE:
        if generator is None:
            generator = torch.Generator().manual_seed(self.config.seed)
        cfg = self.config
        return StateConditionedVQVAE(
            self.obs_dim,
            self.act_dim,
            cfg.n_codes,
            embedding_dim=cfg.embedding_dim,
            hidden_sizes=cfg.hidden_sizes,
            state_conditioned=cfg.state_conditioned,
            generator=generator,
        ).to(self.device)

    def _require_fitted(self, what: str) -> _Normalizer:
        if self._normalizer is None:
            raise NotFittedError(
                f"{what} called before fit: call fit(...) or VQVAEQuantizer.load(...) first"
            )
        return self._normalizer

    @torch.no_grad()
    def _refresh_fast_path(self) -> None:
        """Copy the decoder to numpy for :meth:`_decode_numpy` (after every fit/load)."""
        norm = self._normalizer
        assert norm is not None
        linears = [m for m in self.model.decoder if isinstance(m, nn.Linear)]
        first = linears[0]
        weight = first.weight.detach().cpu().double()
        codebook = self.model.codebook.detach().cpu().double()
        table = codebook @ weight[:, self.obs_dim :].t() + first.bias.detach().cpu().double()
        obs_std = torch.from_numpy(norm.obs_std).double()
        w_state = weight[:, : self.obs_dim].t() / obs_std[:, None]
        last = linears[-1]
        act_std = torch.from_numpy(norm.act_std).double()
        act_mean = torch.from_numpy(norm.act_mean).double()
        w_out = last.weight.detach().cpu().double().t() * act_std[None, :]
        b_out = last.bias.detach().cpu().double() * act_std + act_mean

        def f32(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.numpy().astype(np.float32))

        self._fast = {
            "table": f32(table),
            "w_state": f32(w_state) if self.config.state_conditioned else None,
            "obs_mean": norm.obs_mean.copy(),
            "hidden": [
                (f32(m.weight.detach().cpu().t()), f32(m.bias.detach().cpu()))
                for m in linears[1:-1]
            ],
            "w_out": f32(w_out),
            "b_out": f32(b_out),
        }


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer, expected >= {minimum}, got {value!r}")


def _usage_from_counts(counts: np.ndarray) -> dict[str, Any]:
    """Perplexity and dead codes of a window of code counts (cheap, for logging)."""
    total = max(int(counts.sum()), 1)
    usage = counts / total
    nonzero = usage[usage > 0]
    return {
        "perplexity": float(np.exp(-(nonzero * np.log(nonzero)).sum())),
        "dead_codes": int((counts == 0).sum()),
    }


def _kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` seeds chosen by k-means++ (D^2 sampling); repeats only if the points
    have fewer than ``k`` distinct values."""
    n = len(points)
    chosen = [int(rng.integers(n))]
    d2 = ((points - points[chosen[0]]) ** 2).sum(-1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            nxt = int(rng.integers(n))
        else:
            nxt = int(rng.choice(n, p=d2 / total))
        chosen.append(nxt)
        d2 = np.minimum(d2, ((points - points[nxt]) ** 2).sum(-1))
    return np.asarray(chosen, dtype=np.int64)


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fit VQ-VAE", unit="step", mininterval=0.5)
