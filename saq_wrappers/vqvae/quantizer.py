"""``VQVAEQuantizer``: SAQ's state-conditioned action quantizer as an ``ActionSet``.

It ties the parts of this package together: z-scoring (:mod:`.normalization`), the torch
module (:mod:`.model`, SAQ eqs. 5-7), the training loop (:mod:`~saq_wrappers.vqvae.training`),
the two decode paths (:mod:`.decoding`) and the checkpoint file (:mod:`.checkpoint`).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, replace
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch

from saq_wrappers.action_set import (
    as_observation_batch,
    check_finite,
    check_indices,
    check_spaces_match,
    require_box,
)
from saq_wrappers.errors import DataError, NotFittedError
from saq_wrappers.io import check_model_size
from saq_wrappers.metrics import code_usage_stats, reconstruction_stats
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.vqvae.checkpoint import (
    checked_model_state,
    read_quantizer_checkpoint,
    write_quantizer_checkpoint,
)
from saq_wrappers.validation import check_int
from saq_wrappers.vqvae.config import DEFAULT_N_STEPS, QuantizerConfig
from saq_wrappers.vqvae.decoding import CHUNK_ROWS, NUMPY_MAX_ROWS, NumpyDecoder, decode_torch
from saq_wrappers.vqvae.model import StateConditionedVQVAE
from saq_wrappers.vqvae.normalization import NORMALIZATION_KEYS, Normalizer
from saq_wrappers.vqvae.training import train_vqvae

#: Tolerance, as a fraction of each dimension's range, within which fitted actions may exceed
#: the action space's bounds (float rounding of stored data) without counting as outside.
BOUNDS_TOLERANCE = 1e-4

__all__ = ["VQVAEQuantizer"]


class VQVAEQuantizer:
    """SAQ's state-conditioned action quantizer, usable as an :class:`ActionSet` with ``n = K``.

    ``fit`` z-scores observations and actions (std floored at
    :data:`~saq_wrappers.vqvae.normalization.STD_FLOOR`), trains
    :class:`~saq_wrappers.vqvae.model.StateConditionedVQVAE` with SAQ eq. 7 (Adam,
    straight-through estimator) and reports codebook health. The reconstruction term is measured
    in the z-scored action space (the paper's D4RL actions are already of unit scale), so every
    action dimension counts alike. Each ``fit`` starts again from the seeded initialisation.
    Beyond the authors' recipe (which has neither), the codebook is initialised by k-means++ on
    encoder embeddings of the data and, by default, codes unused over the last
    ``restart_every`` updates are restarted at embeddings of random data points (no restarts in
    the last ``1 - restart_until`` of training, so the final codebook settles).

    ``decode`` of a few observations (the per-step call of a Gymnasium wrapper) runs in numpy on
    a copy of the decoder weights, with the code half of the first decoder layer precomputed for
    all ``K`` codes; large batches run in torch. Both give the same actions (to float32
    rounding). Decoded actions are always clipped into ``action_space``, so ``fit`` refuses
    actions outside it (or clips them, with ``clip_actions=True``).

    Reproducibility: a fit is bit-identical for the same seed, data, settings, device, torch
    build and number of torch threads (``torch.get_num_threads()``, recorded in
    ``fit_summary["torch_threads"]``). With another thread count, float sums are reduced in
    another order and the weights differ by float rounding (~1e-7); a checkpoint restores a
    fitted quantizer exactly on any setup.

    Example:
        Fit 8 codes to a damping controller's actions on Pendulum states, relabel the data with
        codes (SAQ eq. 5), then let a discrete agent act through the codes:

        >>> import gymnasium as gym, numpy as np
        >>> from saq_wrappers import SAQActionWrapper, VQVAEQuantizer
        >>> env = gym.make("Pendulum-v1")
        >>> rng = np.random.default_rng(0)
        >>> theta = rng.uniform(-np.pi, np.pi, 512)
        >>> speed = rng.uniform(-8.0, 8.0, 512)
        >>> obs = np.stack([np.cos(theta), np.sin(theta), speed], 1).astype(np.float32)
        >>> actions = np.clip(-2.0 * obs[:, 1:2] - 0.3 * obs[:, 2:3], -2.0, 2.0)
        >>> q = VQVAEQuantizer(env.observation_space, env.action_space, n_codes=8,
        ...                    hidden_sizes=(32, 32), embedding_dim=8, learning_rate=1e-3)
        >>> metrics = q.fit(obs, actions, n_steps=50, progress=False)
        >>> metrics["n_steps"], len(metrics["usage"])
        (50, 8)
        >>> codes = q.encode(obs, actions)
        >>> codes.dtype, codes.shape, bool(codes.min() >= 0 and codes.max() < 8)
        (dtype('int64'), (512,), True)
        >>> decoded = q.decode(obs, codes)
        >>> decoded.dtype, decoded.shape, bool(np.abs(decoded).max() <= 2.0)
        (dtype('float32'), (512, 1), True)
        >>> candidates, valid = q.candidates(obs[:3])
        >>> candidates.shape, bool(valid.all())
        ((3, 8, 1), True)

        The same codes, decoded at the state the agent sees, drive the env:

        >>> wrapped = SAQActionWrapper(env, q)
        >>> wrapped.action_space
        Discrete(8)
        >>> first, _ = wrapped.reset(seed=0)
        >>> _, _, _, _, info = wrapped.step(3)
        >>> bool(np.array_equal(info["continuous_action"], q.decode(first[None], [3])[0]))
        True

        A checkpoint restores the same quantizer bit for bit:

        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     q.save(os.path.join(folder, "q.safetensors"))
        ...     loaded = VQVAEQuantizer.load(os.path.join(folder, "q.safetensors"), env)
        >>> bool(np.array_equal(loaded.decode(obs, codes), decoded))
        True

    Args:
        observation_space: ``Box`` of observations (flattened internally).
        action_space: ``Box`` of the continuous actions; decoded actions are clipped into it.
        n_codes: codebook size ``K`` (paper default 64; results flat over 16..128, Table 4), at
            most :data:`~saq_wrappers.limits.MAX_CODES` (65,536) and at most the number
            of rows ``fit`` gets.
        embedding_dim: code size ``D`` (128), at most
            :data:`~saq_wrappers.limits.MAX_WIDTH` (16,384).
        hidden_sizes: encoder/decoder hidden widths (512, 512), each at most ``MAX_WIDTH``, at
            most :data:`~saq_wrappers.limits.MAX_HIDDEN_LAYERS` (16) of them; the whole
            model at most :data:`~saq_wrappers.io.MAX_MODEL_VALUES` parameters.
        state_conditioned: ``False`` is the "no state" ablation (SAQ Table 3).
        codebook_weight, commitment_weight: weights of the two VQ terms of SAQ eq. 7 (1.0, 1.0).
        learning_rate: Adam step size (3e-4).
        batch_size: minibatch size (256); a dataset of fewer rows uses all its rows per
            minibatch (with a warning).
        seed: seeds weights, k-means++ init, minibatches and restarts (bit-reproducible on
            the same setup and thread count, see above).
        device: torch device for training and large-batch encode/decode.
        n_steps: default number of updates of :meth:`fit`
            (:data:`~saq_wrappers.vqvae.config.DEFAULT_N_STEPS`).
        dead_code_restart: restart codes unused over a window of updates (on by default).
        restart_every: window length, in updates, of the dead-code check.
        restart_until: fraction of training after which no more restarts happen.
        codebook_init: ``"kmeans++"`` (from data embeddings; above
            :data:`~saq_wrappers.vqvae.training.KMEANS_MAX_CODES` codes, the embeddings of
            random data rows, with a warning) or ``"uniform"`` (``U(+-1/K)``).
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
        self.config = QuantizerConfig.checked(
            n_codes=n_codes,
            embedding_dim=embedding_dim,
            hidden_sizes=hidden_sizes,
            state_conditioned=state_conditioned,
            codebook_weight=codebook_weight,
            commitment_weight=commitment_weight,
            learning_rate=learning_rate,
            batch_size=batch_size,
            seed=seed,
            n_steps=n_steps,
            dead_code_restart=dead_code_restart,
            restart_every=restart_every,
            restart_until=restart_until,
            codebook_init=codebook_init,
            log_every=log_every,
        )
        self.device = torch.device(device)
        #: JSON-serialisable facts about the training data, saved with the checkpoint: e.g. the
        #: robomimic observation layout (``robomimic_layout(...).to_json()``), so evaluation
        #: builds observations in the order the quantizer was fitted on.
        self.metadata: dict[str, Any] = {}
        #: How agents acting through this quantizer turn a chosen code into an action, saved with
        #: the checkpoint: ``None`` decodes the code itself; a
        #: :class:`~saq_wrappers.mode_acting.ModeAveraging` sends the mean of the mode the code
        #: picks (pass it to the wrappers as ``acting=quantizer.acting``).
        self.acting: ModeAveraging | None = None
        self._obs_shape = tuple(self.observation_space.shape)
        self._obs_is_flat = len(self._obs_shape) == 1
        self.obs_dim = int(np.prod(self._obs_shape, dtype=np.int64))
        self.act_dim = int(self.action_space.shape[0])
        self._low = np.asarray(self.action_space.low, dtype=np.float32).copy()
        self._high = np.asarray(self.action_space.high, dtype=np.float32).copy()
        check_model_size(self.config.model_state(self.obs_dim, self.act_dim), "the VQ-VAE")
        self.model = self._new_model()
        self._normalizer: Normalizer | None = None
        self.fit_summary: dict[str, Any] | None = None
        self._numpy_decoder: NumpyDecoder | None = None

    @property
    def n(self) -> int:
        """Size of the discrete action space: the codebook size ``K``."""
        return self.config.n_codes

    @property
    def n_codes(self) -> int:
        """The codebook size ``K`` (same as :attr:`n`)."""
        return self.config.n_codes

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` or :meth:`load` has set the weights and normalization."""
        return self._normalizer is not None

    @property
    def normalization(self) -> dict[str, np.ndarray]:
        """The z-score statistics fitted from the data (copies)."""
        norm = self._require_fitted("normalization")
        return {key: getattr(norm, key).copy() for key in NORMALIZATION_KEYS}

    def __repr__(self) -> str:
        c = self.config
        return (
            f"VQVAEQuantizer(obs_dim={self.obs_dim}, act_dim={self.act_dim}, n_codes={c.n_codes}, "
            f"embedding_dim={c.embedding_dim}, hidden_sizes={c.hidden_sizes}, "
            f"state_conditioned={c.state_conditioned}, fitted={self.is_fitted})"
        )

    def fit(
        self,
        observations: Any,
        actions: np.ndarray | None = None,
        *,
        n_steps: int | None = None,
        progress: bool = True,
        clip_actions: bool = False,
    ) -> dict[str, Any]:
        """Train on ``(observations, actions)`` or on a :class:`~saq_wrappers.Transitions`.

        Every call starts from the seeded initialisation (so the same seed, data and setup give
        bit-identical weights, see the class docstring) and minimises SAQ eq. 7 with Adam for
        ``n_steps`` updates (default: the constructor's ``n_steps``,
        :data:`~saq_wrappers.vqvae.config.DEFAULT_N_STEPS`).

        Decoded actions are clipped into ``action_space``, so actions outside it (beyond
        :data:`BOUNDS_TOLERANCE` of each dimension's range) could never be reproduced: they
        raise :class:`~saq_wrappers.errors.DataError`, or with ``clip_actions=True`` are clipped
        into the bounds first (a warning counts the rows; the caller's array is untouched).
        ``n_codes`` must not exceed the number of rows (the extra codes could never be used);
        a ``batch_size`` above it is lowered to it (with a warning).

        Returns a dict with ``loss_history`` (every ``log_every`` updates: mean ``loss``,
        ``reconstruction``, ``codebook``, ``commitment``, and the window's ``perplexity`` and
        ``dead_codes``), ``restarts`` (``[{"step", "codes"}]``), ``n_restarted_codes``, and the
        final codebook health on the data (``usage``, ``perplexity``, ``dead_codes``,
        ``used_codes`` from :func:`~saq_wrappers.metrics.code_usage_stats`; ``reconstruction``
        from :func:`~saq_wrappers.metrics.reconstruction_stats` in the original action units).
        """
        obs, acts = self._fit_arrays(observations, actions)
        acts = self._actions_in_bounds(acts, clip_actions)
        steps = self.config.n_steps if n_steps is None else n_steps
        check_int("n_steps", steps, 1)
        cfg = self._config_for_rows(len(obs))
        started = time.perf_counter()

        normalizer = Normalizer.fit(obs, acts)
        torch_gen = torch.Generator().manual_seed(cfg.seed)
        np_gen = np.random.default_rng(cfg.seed)
        model = self._new_model(torch_gen)
        obs_t = torch.from_numpy(normalizer.normalize_observations(obs)).to(self.device)
        act_t = torch.from_numpy(normalizer.normalize_actions(acts)).to(self.device)
        history, restarts = train_vqvae(
            model,
            obs_t,
            act_t,
            cfg,
            steps,
            torch_generator=torch_gen,
            numpy_generator=np_gen,
            progress=progress,
        )
        self.model = model
        self._set_normalizer(normalizer)
        final = self._final_health(obs, acts)
        summary = {
            "n_steps": int(steps),
            "n_rows": int(len(obs_t)),
            "seconds": time.perf_counter() - started,
            "final_loss": history[-1]["loss"],
            "final_reconstruction_loss": history[-1]["reconstruction"],
            "n_restarted_codes": int(sum(r["codes"] for r in restarts)),
            "n_restart_events": len(restarts),
            "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
            **final,
        }
        self.fit_summary = summary
        return {**summary, "loss_history": history, "restarts": restarts}

    def _fit_arrays(
        self, observations: Any, actions: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validated flat float32 ``(N, obs_dim)`` observations and ``(N, act_dim)`` actions."""
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
        return obs.reshape(len(obs), self.obs_dim), acts

    def _actions_in_bounds(self, acts: np.ndarray, clip: bool) -> np.ndarray:
        """``acts`` if every row lies within ``action_space`` (up to :data:`BOUNDS_TOLERANCE` of
        each finite range); otherwise a clipped copy when ``clip``, else
        :class:`~saq_wrappers.errors.DataError` naming how many rows are outside."""
        finite_range = np.isfinite(self._low) & np.isfinite(self._high)
        slack = np.where(finite_range, BOUNDS_TOLERANCE * (self._high - self._low), 0.0)
        outside = ((acts < self._low - slack) | (acts > self._high + slack)).any(axis=1)
        n_outside = int(outside.sum())
        if n_outside == 0:
            return acts
        bounds = f"low={self._low.tolist()}, high={self._high.tolist()}"
        if not clip:
            raise DataError(
                f"{n_outside} of {len(acts)} action rows lie outside the action space bounds "
                f"({bounds}; actions range over [{acts.min():.6g}, {acts.max():.6g}]): decoded "
                "actions are clipped into these bounds, so the quantizer could never reproduce "
                "them. Check the action scaling or the action space, or pass clip_actions=True "
                "to clip them into the bounds"
            )
        warnings.warn(
            f"clip_actions=True: clipped {n_outside} of {len(acts)} action rows into the "
            f"action space bounds ({bounds}) before fitting",
            UserWarning,
            stacklevel=3,
        )
        return np.clip(acts, self._low, self._high)

    def _config_for_rows(self, n_rows: int) -> QuantizerConfig:
        """The config to fit ``n_rows`` rows with: ``n_codes <= n_rows`` is required, and a
        ``batch_size`` above ``n_rows`` is lowered to it (minibatches are drawn with replacement,
        so a larger one only costs memory: ``10**9`` would not fit in it)."""
        cfg = self.config
        if cfg.n_codes > n_rows:
            raise DataError(
                f"n_codes={cfg.n_codes} is more than the {n_rows} data rows: at most {n_rows} "
                f"codes could ever be used; expected n_codes <= {n_rows} (or more data)"
            )
        if cfg.batch_size > n_rows:
            warnings.warn(
                f"batch_size={cfg.batch_size} is more than the {n_rows} data rows: using "
                f"minibatches of {n_rows} rows",
                UserWarning,
                stacklevel=3,
            )
            cfg = replace(cfg, batch_size=n_rows)
        return cfg

    def _final_health(self, obs: np.ndarray, acts: np.ndarray) -> dict[str, Any]:
        """Codebook health (SAQ has none; we report it) and reconstruction on all fitted rows."""
        codes = self._encode_flat(obs, acts)
        decoded = self._decode_flat(obs, codes)
        usage = code_usage_stats(codes, self.n)
        return {**usage, "reconstruction": reconstruction_stats(acts, decoded)}

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Code of each ``(s, a)`` row, ``argmin_k ||e(s, a) - e_k||^2`` (SAQ eq. 5): int64 (B,).

        Runs in torch, in chunks of :data:`~saq_wrappers.vqvae.decoding.CHUNK_ROWS`, so millions
        of rows can be relabeled.
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
        return self._encode_flat(batch.reshape(len(batch), self.obs_dim), acts)

    @torch.no_grad()
    def _encode_flat(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        """SAQ eq. 5 on flat float32 rows, :data:`CHUNK_ROWS` at a time."""
        norm = self._normalizer
        assert norm is not None
        out = np.empty(len(obs), dtype=np.int64)
        for start in range(0, len(obs), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            o = torch.from_numpy(norm.normalize_observations(obs[start:stop])).to(self.device)
            a = torch.from_numpy(norm.normalize_actions(acts[start:stop])).to(self.device)
            out[start:stop] = self.model.encode(o, a).cpu().numpy()
        return out

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Action ``decoder(s, e_k)`` for each row, unnormalized and clipped into ``action_space``.

        ``(B, *obs_shape)``, ``(B,)`` int -> float32 ``(B, act_dim)``. Small batches (the per-step
        call of a wrapper) use the numpy path, large ones torch.
        """
        decoder = self._numpy_decoder
        if decoder is None:
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
            return decoder.decode_one(o[0], code)
        idx = check_indices(index, self.config.n_codes, batch)
        flat = o.reshape(batch, self.obs_dim)
        if batch <= NUMPY_MAX_ROWS:
            return decoder.decode(flat, idx)
        return self._decode_torch(flat, idx)

    def _decode_flat(self, obs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Decode flat rows with valid codes by the path that is faster for their number."""
        if len(obs) <= NUMPY_MAX_ROWS:
            assert self._numpy_decoder is not None
            return self._numpy_decoder.decode(obs, codes)
        return self._decode_torch(obs, codes)

    def _decode_torch(self, obs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Decode flat rows with valid codes through the torch module, in chunks."""
        norm = self._normalizer
        assert norm is not None
        return decode_torch(self.model, norm, obs, codes, self._low, self._high, self.device)

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All ``K`` decoded actions at each state, ``(B, K, act_dim)``, and an all-True mask."""
        self._require_fitted("candidates")
        batch = as_observation_batch(obs, self.observation_space, "obs")
        flat = batch.reshape(len(batch), self.obs_dim)
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
        return self._decode_torch(batch.reshape(len(batch), self.obs_dim), idx)

    def decode_numpy(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        """:meth:`decode` forced through the numpy path (for checking and benchmarking)."""
        self._require_fitted("decode_numpy")
        batch = as_observation_batch(obs, self.observation_space, "obs")
        idx = check_indices(index, self.n, len(batch))
        assert self._numpy_decoder is not None
        return self._numpy_decoder.decode(batch.reshape(len(batch), self.obs_dim), idx)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights + metadata (spaces, config, normalization, version, fit summary) to one
        safetensors file, atomically (:mod:`saq_wrappers.vqvae.checkpoint`)."""
        norm = self._require_fitted("save")
        write_quantizer_checkpoint(
            path,
            model=self.model,
            config=self.config,
            observation_space=self.observation_space,
            action_space=self.action_space,
            normalizer=norm,
            fit_summary=self.fit_summary,
            user_metadata=self.metadata,
            acting=self.acting,
        )

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
        differ. A missing, corrupted, forged or foreign file raises
        :class:`~saq_wrappers.errors.CheckpointError`; every size in its header is checked
        against the tensors it stores before the model is built
        (:func:`~saq_wrappers.vqvae.checkpoint.read_quantizer_checkpoint`).
        """
        checkpoint = read_quantizer_checkpoint(path)
        where = str(path)
        quantizer = cls(
            checkpoint.observation_space,
            checkpoint.action_space,
            **asdict(checkpoint.config),
            device=device,
        )
        quantizer.model.load_state_dict(
            checked_model_state(checkpoint.tensors, quantizer.model, where)
        )
        quantizer.model.eval()
        quantizer.fit_summary = checkpoint.fit_summary
        quantizer.metadata = checkpoint.user_metadata
        quantizer.acting = checkpoint.acting
        quantizer._set_normalizer(checkpoint.normalizer)
        if env is not None:
            observation_space = env.observation_space
            action_space = env.action_space
        if observation_space is not None or action_space is not None:
            check_spaces_match(
                quantizer,
                checkpoint.observation_space if observation_space is None else observation_space,
                checkpoint.action_space if action_space is None else action_space,
                where="env" if env is not None else "given",
            )
        return quantizer

    def _new_model(self, generator: torch.Generator | None = None) -> StateConditionedVQVAE:
        """A freshly initialised module, seeded by ``generator`` (default: the config's seed)."""
        if generator is None:
            generator = torch.Generator().manual_seed(self.config.seed)
        return self.config.new_model(self.obs_dim, self.act_dim, generator).to(self.device)

    def _set_normalizer(self, normalizer: Normalizer) -> None:
        """Mark the quantizer fitted with ``normalizer`` and rebuild the numpy decoder from the
        current weights (after every fit or load)."""
        self._normalizer = normalizer
        self._numpy_decoder = NumpyDecoder(self.model, normalizer, self._low, self._high)

    def _require_fitted(self, what: str) -> Normalizer:
        """The fitted normalizer, or :class:`NotFittedError` naming the call ``what``."""
        if self._normalizer is None:
            raise NotFittedError(
                f"{what} called before fit: call fit(...) or VQVAEQuantizer.load(...) first"
            )
        return self._normalizer
