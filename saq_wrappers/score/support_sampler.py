"""``ScoreSupportSampler``: ARQ's behavior model as an :class:`~saq_wrappers.action_set.ActionSet`.

A state-conditioned score model of the behavior policy (ARQ section 4.3, appendix A.1-A.2)
draws ``N`` candidate actions per state; a candidate is *valid* when its log-likelihood under the
model is above ``log_eps`` (the paper's ``eps = e^-5``, i.e. ``log_eps = -5``).

Likelihood space
    Every log-likelihood here is ``log p(a_norm | s)`` in the **normalized action space**
    ``a_norm = (a - mean) / std`` (per-dimension z-scoring with the std floored at 0.05, fitted on
    the dataset), as in the authors' code. ``eps = e^-5`` is therefore a density threshold in
    normalized units; :meth:`ScoreSupportSampler.log_likelihood` with ``space="original"`` adds the
    normalization Jacobian ``-sum(log std)`` for densities over raw actions.

Determinism and ``decode``
    Candidates are a deterministic function of ``(seed, observation)``: each observation's prior
    noise comes from a generator seeded with a hash of the sampler seed and the observation's
    float32 bytes, and the default fast path (PF-ODE, exact divergence) has no other randomness.
    ``decode(obs, i)`` is ``candidates(obs)[0][:, i]``; a small LRU cache (keyed by the same
    bytes) makes it return exactly the cached candidate when ``candidates`` saw that observation,
    and otherwise recomputes it (equal up to float rounding, since a batch's composition may
    change matmul blocking). With Hutchinson's estimator (``d > 16``) the actions are still
    deterministic but the log-likelihoods carry estimator noise seeded per batch.

Fast and slow paths
    ``path="fast"`` (default): :func:`~saq_wrappers.score.probability_flow.ode_sample`, samples
    and their log-likelihoods from one PF-ODE solve. ``path="paper"``: the 500-step
    predictor-corrector sampler (:func:`~saq_wrappers.score.pc_sampler.pc_sample`), then a
    separate RK45 PF-ODE likelihood solve (rtol = atol = 1e-5, 10 Hutchinson probes), as in the
    paper.

Decoded actions are mapped back to the original space and clipped to the action space's bounds
(log-likelihoods are those of the unclipped sample).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from saq_wrappers.action_set import (
    as_observation_batch,
    box_from_dict,
    box_to_dict,
    check_finite,
    check_indices,
    require_box,
)
from saq_wrappers.errors import CheckpointError, DataError, NotFittedError
from saq_wrappers.io import (
    CheckpointHeader,
    check_checkpoint_format,
    check_model_size,
    check_stored_shapes,
    load_checkpoint_tensors,
    planned_state,
    read_checkpoint_header,
    save_checkpoint,
)
from saq_wrappers.limits import MAX_BLOCKS, MAX_ENSEMBLE, MAX_PROBES, MAX_SAMPLES, MAX_SOLVER_STEPS, MAX_WIDTH
from saq_wrappers.score.likelihood import ode_log_likelihood
from saq_wrappers.score.network import EnsembleScore, ScoreNet
from saq_wrappers.score.ode_solvers import FIXED_STEP_METHODS
from saq_wrappers.score.pc_sampler import pc_sample
from saq_wrappers.score.probability_flow import Divergence, ode_sample
from saq_wrappers.score.sde import VPSDE
from saq_wrappers.score.training import train_score_nets
from saq_wrappers.validation import check_choice, check_int, check_number, check_seed
from saq_wrappers.vqvae.normalization import NORMALIZATION_KEYS, Normalizer

CHECKPOINT_KIND = "score_support_sampler"
#: Version of the checkpoint layout (tensor names + metadata keys); files written before it was
#: named ``format`` carry it as ``version``. Only this format is read, whatever library version
#: wrote it (:func:`saq_wrappers.io.check_checkpoint_format`).
CHECKPOINT_FORMAT = 1

#: ARQ's threshold: drop candidates with log-likelihood <= -5 (eps = e^-5).
DEFAULT_LOG_EPS = -5.0
#: Smallest ``std_floor``: dividing by less turns float32 rounding noise into O(1) inputs.
MIN_STD_FLOOR = 1e-6
#: The fast path's ODE solvers (:func:`~saq_wrappers.score.probability_flow.ode_sample`).
METHODS = ("multistep", "rk45", *FIXED_STEP_METHODS)
#: The divergence estimators (:func:`~saq_wrappers.score.probability_flow.resolve_divergence`).
DIVERGENCES = ("auto", "exact", "hutchinson")


#: The forward-mode tangent dtypes; ``"auto"`` resolves with :func:`resolve_tangent_dtype`.
TANGENT_DTYPES = ("auto", "bfloat16", "float32")


def native_bfloat16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX). Without either, torch
    emulates bfloat16 GEMMs, many times slower than float32, enough to make ARQ's candidate table
    an order of magnitude slower (design note ``docs/notes/arq.md``)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def check_log_eps(value: Any) -> float:
    """Return the threshold ``log_eps`` as a ``float`` if it is a finite number or ``-inf`` (every
    candidate valid).

    Raises:
        DataError: naming the value given (``nan``, ``+inf``, a string, a bool...).
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value == -math.inf:
        return -math.inf
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise DataError(f"log_eps must be a finite number or -inf, got {value!r}")
    return float(value)


def resolve_tangent_dtype(name: str) -> torch.dtype:
    """``"auto"``: bfloat16 where the CPU has it natively (~1.5-2x faster per evaluation), else
    float32; the other names as they are."""
    if name == "auto":
        return torch.bfloat16 if native_bfloat16_cpu() else torch.float32
    return getattr(torch, name)


def observation_seeds(obs: np.ndarray, seed: int) -> np.ndarray:
    """One 63-bit seed per observation row: a hash of ``seed`` and the row's float32 bytes."""
    rows = np.ascontiguousarray(obs, dtype=np.float32).reshape(len(obs), -1)
    salt = int(seed).to_bytes(8, "little", signed=True)
    out = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        digest = hashlib.blake2b(row.tobytes(), digest_size=8, key=salt).digest()
        out[i] = int.from_bytes(digest, "little") >> 1
    return out


class ScoreSupportSampler:
    """ARQ's support sampler: ``N`` score-model samples per state, valid above ``log_eps``.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> from saq_wrappers import ScoreSupportSampler
        >>> env = gym.make("Pendulum-v1")
        >>> sampler = ScoreSupportSampler(env.observation_space, env.action_space, n_samples=8)
        >>> obs = np.random.default_rng(0).standard_normal((256, 3)).astype(np.float32)
        >>> acts = np.clip(obs[:, :1], -2, 2)
        >>> _ = sampler.fit(obs, acts, n_steps=50, progress=False)
        >>> actions, valid = sampler.candidates(obs[:2])
        >>> actions.shape, valid.shape, valid.dtype
        ((2, 8, 1), (2, 8), dtype('bool'))
        >>> bool(np.all(np.abs(actions) <= 2.0))  # clipped into Pendulum's torque bounds
        True
        >>> bool(np.array_equal(sampler.decode(obs[:2], [0, 7]), actions[[0, 1], [0, 7]]))
        True

    Args:
        observation_space, action_space: ``Box`` spaces (observations are flattened).
        n_samples: ``N``, candidates per state (30 in the paper); ``n`` of the action set; at
            most :data:`~saq_wrappers.limits.MAX_SAMPLES`.
        log_eps: validity threshold on the normalized-space log-likelihood (``-5``).
        hidden, n_blocks, fourier_scale: score network (256, 3, 30); ``hidden`` at most
            :data:`~saq_wrappers.limits.MAX_WIDTH`, ``n_blocks`` at most
            :data:`~saq_wrappers.limits.MAX_BLOCKS`, the whole ensemble at most
            :data:`~saq_wrappers.io.MAX_MODEL_VALUES` parameters.
        n_ensemble: ensemble members (mean score); 1 or 3 in the paper; at most
            :data:`~saq_wrappers.limits.MAX_ENSEMBLE`.
        beta_min, beta_max: VP-SDE (0.1, 20).
        steps, method, divergence: fast-path solver (see
            :func:`~.probability_flow.ode_sample`). The default, ``method="multistep"`` with
            ``steps=28``, is an exponential Adams
            predictor (order 2, the linear part ``-1/2 beta(t) x`` of the VP-SDE PF-ODE integrated
            exactly in log-SNR) with a free order-3 corrector on the ``rho = 2`` time grid: one
            exact-divergence evaluation per node (29 in all), the log-likelihood by the trapezoid
            rule over the same nodes (instantaneous change of variables, ARQ appendix A.2). It
            replaced RK4 x 10 (40 autograd-divergence evaluations): about 2.5x more accepted
            samples per CPU second in the benchmark (median of interleaved runs on a loaded
            2-core CPU: ~830/s vs ~330/s) with log-likelihood errors no larger (vs the exact
            densities of the test mixtures: p99 ~0.07 nats; vs RK45 on the benchmark's trained net:
            median 0.06, p99 0.27 nats, against 0.10 / 0.37 for RK4 x 10). Fewer steps fail the
            tests' tail tolerances (``steps=24``: max error ~1.7 nats on the 2-D mixture).
            ``method="rk4"``, ``steps=10`` restores the previous path.
        tangent_dtype: ``"auto"`` (default), ``"bfloat16"`` or ``"float32"``: dtype of the
            forward-mode Jacobian GEMMs of the exact divergence
            (:meth:`~saq_wrappers.score.network.ScoreNet.score_and_divergence`); the samples
            themselves are computed in float32 either way. bfloat16 is ~1.5-2x faster per
            evaluation on AVX512-BF16 CPUs and moved the benchmark's log-likelihood errors vs RK45
            by < 0.01 nats (median) / 0.04 nats (max), but CPUs without it emulate it about 36x
            slower than float32; ``"auto"`` picks per machine (:func:`resolve_tangent_dtype`), so
            one checkpoint samples fast everywhere.
        seed: seeds the network init, training and the per-observation candidate noise.
        std_floor: floor of the z-scoring stds (0.05), at least :data:`MIN_STD_FLOOR`.
        cache_size: observations whose candidates are cached for :meth:`decode`.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        n_samples: int = 30,
        log_eps: float = DEFAULT_LOG_EPS,
        *,
        hidden: int = 256,
        n_blocks: int = 3,
        fourier_scale: float = 30.0,
        n_ensemble: int = 1,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        steps: int = 28,
        method: str = "multistep",
        divergence: Divergence = "auto",
        tangent_dtype: Literal["auto", "bfloat16", "float32"] = "auto",
        seed: int = 0,
        std_floor: float = 0.05,
        cache_size: int = 4096,
    ) -> None:
        self.observation_space = require_box(observation_space, "observation_space")
        self.action_space = require_box(action_space, "action_space")
        if len(self.action_space.shape) != 1:
            raise DataError(f"action_space must be 1-D (act_dim,), got shape {self.action_space.shape}")
        self.n_samples = check_int("n_samples (N)", n_samples, 1, MAX_SAMPLES)
        self.log_eps = check_log_eps(log_eps)
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.action_dim = int(self.action_space.shape[0])
        self.config: dict[str, Any] = dict(
            hidden=check_int("hidden", hidden, 1, MAX_WIDTH),
            n_blocks=check_int("n_blocks", n_blocks, 0, MAX_BLOCKS),
            fourier_scale=check_number("fourier_scale", fourier_scale, 0, exclusive_minimum=True),
            n_ensemble=check_int("n_ensemble", n_ensemble, 1, MAX_ENSEMBLE),
            beta_min=check_number("beta_min", beta_min, 0),
            beta_max=check_number("beta_max", beta_max, 0, exclusive_minimum=True),
            steps=check_int("steps", steps, 1, MAX_SOLVER_STEPS),
            method=check_choice("method", method, METHODS),
            divergence=check_choice("divergence", divergence, DIVERGENCES),
            tangent_dtype=check_choice("tangent_dtype", tangent_dtype, TANGENT_DTYPES),
            seed=check_seed("seed", seed),
            std_floor=check_number("std_floor", std_floor, MIN_STD_FLOOR),
            cache_size=check_int("cache_size", cache_size, 0),
        )
        if self.config["beta_min"] >= self.config["beta_max"]:
            raise DataError(f"expected beta_min < beta_max, got {beta_min!r} and {beta_max!r}")
        self.sde = VPSDE(beta_min, beta_max)
        self.seed = self.config["seed"]
        self._model: EnsembleScore | None = None
        #: The z-scoring of observations and actions (identity until :meth:`fit` or :meth:`load`).
        self.normalizer = Normalizer(
            np.zeros(self.obs_dim, dtype=np.float32), np.ones(self.obs_dim, dtype=np.float32),
            np.zeros(self.action_dim, dtype=np.float32), np.ones(self.action_dim, dtype=np.float32),
        )
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.training_metrics: dict[str, Any] = {}
        check_model_size(planned_state(self._new_model), "the score model")

    # ------------------------------------------------------------------ ActionSet
    @property
    def n(self) -> int:
        return self.n_samples

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, *obs_shape)`` -> actions ``(B, N, act_dim)`` float32, valid ``(B, N)`` bool."""
        actions, log_lik = self.candidates_with_log_likelihood(obs)
        return actions, log_lik > self.log_eps

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The ``index``-th candidate of each observation, ``(B, act_dim)`` float32."""
        batch = as_observation_batch(obs, self.observation_space)
        idx = check_indices(index, self.n, len(batch))
        actions, _ = self.candidates_with_log_likelihood(batch)
        return actions[np.arange(len(batch)), idx].copy()

    def candidates_with_log_likelihood(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cached, per-observation-seeded candidates: actions ``(B, N, d)``, log-lik ``(B, N)``.

        Log-likelihoods are in the normalized action space (module docstring). Zero observations
        give empty arrays of these shapes.
        """
        batch = as_observation_batch(obs, self.observation_space)
        if len(batch) == 0:
            self._require_model()
            return (
                np.empty((0, self.n, self.action_dim), dtype=np.float32),
                np.empty((0, self.n), dtype=np.float32),
            )
        keys = [row.tobytes() for row in batch.reshape(len(batch), -1)]
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        if missing:
            unique: dict[bytes, int] = {}
            for i in missing:
                unique.setdefault(keys[i], i)
            rows = np.array(list(unique.values()))
            acts, logp = self._sample_seeded(batch[rows])
            for j, key in enumerate(unique):
                self._remember(key, acts[j], logp[j])
        actions = np.stack([self._cache[k][0] for k in keys])
        log_lik = np.stack([self._cache[k][1] for k in keys])
        for key in keys:
            self._cache.move_to_end(key)
        return actions.copy(), log_lik.copy()

    def _remember(self, key: bytes, actions: np.ndarray, log_lik: np.ndarray) -> None:
        self._cache[key] = (actions, log_lik)
        while len(self._cache) > max(self.config["cache_size"], 0):
            self._cache.popitem(last=False)

    def _sample_seeded(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seeds = observation_seeds(batch, self.seed)
        noise = torch.stack(
            [torch.randn(self.n, self.action_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        )
        probe_gen = torch.Generator().manual_seed(int(seeds[0]))
        return self._fast(batch, noise, probe_gen)

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        obs: np.ndarray,
        n: int | None = None,
        *,
        path: Literal["fast", "paper"] = "fast",
        generator: torch.Generator | None = None,
        pc_steps: int = 500,
        n_probes: int = 10,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fresh (uncached) ``n`` samples per state and their normalized-space log-likelihoods.

        ``path="fast"``: one PF-ODE solve with the divergence alongside. ``path="paper"``: the
        PC sampler (``pc_steps`` steps, SNR 0.16) then an RK45 PF-ODE likelihood with
        ``n_probes`` Hutchinson probes (ARQ appendix A.2). Returns actions ``(B, n, d)`` in the
        original space (clipped to the bounds) and log-likelihoods ``(B, n)``.
        ``n`` (at most :data:`~saq_wrappers.limits.MAX_SAMPLES`), ``pc_steps``
        (:data:`~saq_wrappers.limits.MAX_SOLVER_STEPS`), ``n_probes``
        (:data:`~saq_wrappers.limits.MAX_PROBES`) and ``path`` are checked before any sampling.
        """
        n = self.n if n is None else check_int("n", n, 1, MAX_SAMPLES)
        check_choice("path", path, ("fast", "paper"))
        check_int("pc_steps", pc_steps, 1, MAX_SOLVER_STEPS)
        check_int("n_probes", n_probes, 1, MAX_PROBES)
        batch = as_observation_batch(obs, self.observation_space)
        if path == "fast":
            noise = torch.randn(len(batch), n, self.action_dim, generator=generator)
            return self._fast(batch, noise, generator)
        model = self._require_model()
        cond = model.condition(self._norm_obs(batch))
        x = pc_sample(model, self.sde, cond, n, steps=pc_steps, generator=generator)
        rows = cond.repeat_interleave(n, dim=0)
        log_lik, _ = ode_log_likelihood(
            model, self.sde, x.reshape(-1, self.action_dim), rows,
            divergence="hutchinson", n_probes=n_probes, generator=generator,
        )
        return self._denorm_actions(x), log_lik.reshape(len(batch), n).numpy()

    def _fast(self, batch: np.ndarray, noise: torch.Tensor, generator: torch.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        model = self._require_model()
        cond = model.condition(self._norm_obs(batch))
        x, log_lik = ode_sample(
            model, self.sde, cond, noise.shape[1], steps=self.config["steps"],
            method=self.config["method"], divergence=self.config["divergence"],
            tangent_dtype=resolve_tangent_dtype(self.config["tangent_dtype"]),
            noise=noise, generator=generator,
        )
        return self._denorm_actions(x), log_lik.numpy().astype(np.float32)

    def log_likelihood(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        *,
        space: Literal["normalized", "original"] = "normalized",
        divergence: Divergence = "auto",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """``log beta(a | s)`` of given actions by the RK45 PF-ODE solve (ARQ appendix A.2), ``(B,)``.

        ``space="normalized"`` is the space ``log_eps`` refers to; ``"original"`` adds the
        normalization Jacobian ``-sum(log std)``. ``rtol`` and ``atol`` must be finite and ``> 0``
        (checked, with ``space`` and ``divergence``, before the solve).
        """
        check_choice("space", space, ("normalized", "original"))
        check_choice("divergence", divergence, DIVERGENCES)
        check_number("rtol", rtol, 0, exclusive_minimum=True)
        check_number("atol", atol, 0, exclusive_minimum=True)
        batch = as_observation_batch(obs, self.observation_space)
        acts = np.asarray(actions, dtype=np.float32)
        if acts.shape != (len(batch), self.action_dim):
            raise DataError(f"actions has shape {acts.shape}, expected ({len(batch)}, {self.action_dim})")
        check_finite(acts, "actions")
        model = self._require_model()
        cond = model.condition(self._norm_obs(batch))
        x = torch.as_tensor(self.normalizer.normalize_actions(acts))
        log_lik, _ = ode_log_likelihood(
            model, self.sde, x, cond, rtol=rtol, atol=atol, divergence=divergence, generator=generator
        )
        out = log_lik.numpy().astype(np.float64)
        if space == "original":
            out = out - float(np.log(self.normalizer.act_std.astype(np.float64)).sum())
        return out

    # ------------------------------------------------------------------ training
    def fit(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        *,
        n_steps: int = 100_000,
        batch_size: int = 512,
        learning_rate: float = 1e-4,
        ema_decay: float = 0.999,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Fit the z-scoring (:meth:`Normalizer.fit <saq_wrappers.vqvae.normalization.Normalizer.fit>`
        with this sampler's ``std_floor``) and train the score model(s) by DSM (ARQ appendix A.2).

        The paper trains 150k-1M steps; the default here is 100k. Returns the loss history.
        Inputs are not modified.

        Raises:
            DataError: before any work, ``n_steps`` or ``batch_size`` is not an integer ``>= 1``
                (``batch_size=0`` would train on empty minibatches: a NaN loss),
                ``learning_rate`` not a finite number ``> 0``, ``ema_decay`` not in ``[0, 1]``; or
                the data are malformed.
        """
        check_int("n_steps", n_steps, 1)
        check_int("batch_size", batch_size, 1)
        check_number("learning_rate", learning_rate, 0, exclusive_minimum=True)
        check_number("ema_decay", ema_decay, 0, 1)
        obs = as_observation_batch(observations, self.observation_space, "observations")
        acts = np.asarray(actions, dtype=np.float32)
        if acts.ndim == 1 and self.action_dim == 1:
            acts = acts[:, None]
        if acts.shape != (len(obs), self.action_dim):
            raise DataError(
                f"actions has shape {acts.shape}, expected ({len(obs)}, {self.action_dim}) "
                "(one action per observation)"
            )
        check_finite(acts, "actions")
        if len(obs) < 2:
            raise DataError(f"need at least 2 transitions to fit, got {len(obs)}")
        flat = obs.reshape(len(obs), -1)
        normalizer = Normalizer.fit(flat, acts, self.config["std_floor"])
        torch.manual_seed(self.seed)
        nets = [self._new_net() for _ in range(self.config["n_ensemble"])]
        emas, metrics = train_score_nets(
            nets, self.sde, normalizer.normalize_observations(flat), normalizer.normalize_actions(acts),
            n_steps=n_steps, batch_size=batch_size, learning_rate=learning_rate,
            ema_decay=ema_decay, seed=self.seed, progress=progress,
        )
        self.normalizer = normalizer
        self._set_model(emas)
        self.training_metrics = metrics
        return metrics

    def _new_net(self) -> ScoreNet:
        c = self.config
        return ScoreNet(self.obs_dim, self.action_dim, c["hidden"], c["n_blocks"], c["fourier_scale"], self.sde)

    def _new_model(self) -> EnsembleScore:
        """A freshly initialised ensemble of ``n_ensemble`` networks (torch's global RNG)."""
        return EnsembleScore([self._new_net() for _ in range(self.config["n_ensemble"])])

    def _set_model(self, nets: list[ScoreNet]) -> None:
        model = EnsembleScore(nets)
        model.requires_grad_(False)
        model.eval()
        self._model = model
        self._cache.clear()

    def _require_model(self) -> EnsembleScore:
        if self._model is None:
            raise NotFittedError("the ScoreSupportSampler is not fitted: call fit() or load() first")
        return self._model

    @property
    def model(self) -> EnsembleScore:
        """The (EMA) score model, a :class:`~.network.ScoreFunction` on normalized inputs."""
        return self._require_model()

    def _norm_obs(self, batch: np.ndarray) -> torch.Tensor:
        flat = batch.reshape(len(batch), -1)
        return torch.as_tensor(self.normalizer.normalize_observations(flat), dtype=torch.float32)

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        return self.normalizer.normalize_actions(np.asarray(actions, dtype=np.float32)).astype(np.float32)

    def _denorm_actions(self, x: torch.Tensor) -> np.ndarray:
        acts = x.numpy() * self.normalizer.act_std + self.normalizer.act_mean
        low = np.asarray(self.action_space.low, dtype=np.float32)
        high = np.asarray(self.action_space.high, dtype=np.float32)
        return np.clip(acts, low, high).astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write weights, normalization and settings to one safetensors file (atomically)."""
        model = self._require_model()
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        for name, values in self.normalizer.as_dict().items():
            tensors[name] = torch.as_tensor(values)
        metadata = {
            "kind": CHECKPOINT_KIND,
            "format": CHECKPOINT_FORMAT,
            "observation_space": box_to_dict(self.observation_space),
            "action_space": box_to_dict(self.action_space),
            "n_samples": self.n_samples,
            "log_eps": repr(self.log_eps),
            "config": self.config,
            "final_loss": self.training_metrics.get("final_loss"),
        }
        return save_checkpoint(path, tensors, metadata)

    @classmethod
    def load(cls, path: str | Path) -> "ScoreSupportSampler":
        """Inverse of :meth:`save`; raises :class:`~saq_wrappers.errors.CheckpointError`.

        Everything the header claims is checked before any tensor is loaded or any network is
        built: kind and format, settings (within the constructor's bounds), then the tensor
        names and shapes they imply against those the file stores, so a small file cannot make
        the loader allocate a large model; then the weights (float32, finite) and the z-scoring
        statistics (:meth:`~saq_wrappers.vqvae.normalization.Normalizer.from_json`).
        """
        header = read_checkpoint_header(path, CHECKPOINT_KIND)
        meta = header.metadata
        check_checkpoint_format(header, meta.get("format", meta.get("version")), CHECKPOINT_FORMAT)
        try:
            sampler = cls(
                box_from_dict(meta["observation_space"], "observation_space"),
                box_from_dict(meta["action_space"], "action_space"),
                n_samples=meta["n_samples"], log_eps=_stored_log_eps(meta.get("log_eps")), **meta["config"],
            )
            final_loss = meta.get("final_loss")
            if final_loss is not None:
                check_number("final_loss", final_loss)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{str(path)!r} is a malformed {CHECKPOINT_KIND} checkpoint ({error})") from error
        check_stored_shapes(header, sampler._planned_tensors(), sampler._describe_sizes())
        tensors = sampler._checked_tensors(header)
        sampler.normalizer = Normalizer.from_json({name: tensors[name].numpy() for name in NORMALIZATION_KEYS},
                                                  sampler.obs_dim, sampler.action_dim, sampler.config["std_floor"])
        model = sampler._new_model()
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        sampler._set_model(list(model.members))
        sampler.training_metrics = {"final_loss": final_loss}
        return sampler

    def _planned_tensors(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of every tensor :meth:`save` writes for these settings, computed
        without allocating the networks."""
        planned = {f"model.{k}": shape for k, shape in planned_state(self._new_model).items()}
        for name in NORMALIZATION_KEYS:
            planned[name] = (self.obs_dim if name.startswith("obs") else self.action_dim,)
        return planned

    def _describe_sizes(self) -> str:
        """The settings the tensor shapes follow from, for error messages."""
        c = self.config
        return (
            f"hidden={c['hidden']}, n_blocks={c['n_blocks']}, n_ensemble={c['n_ensemble']}, "
            f"observation dim {self.obs_dim}, action dim {self.action_dim}"
        )

    @staticmethod
    def _checked_tensors(header: CheckpointHeader) -> dict[str, torch.Tensor]:
        """The checkpoint's tensors after checking that each is float32 and finite."""
        tensors = load_checkpoint_tensors(header)
        where = str(header.path)
        for name, tensor in tensors.items():
            if tensor.dtype != torch.float32:
                raise CheckpointError(f"{where!r} tensor {name!r} is {tensor.dtype}, expected torch.float32")
            if not torch.isfinite(tensor).all():
                raise CheckpointError(f"{where!r} tensor {name!r} holds NaN or inf")
        return tensors

    def __repr__(self) -> str:
        fitted = "fitted" if self._model is not None else "not fitted"
        return (
            f"ScoreSupportSampler(N={self.n_samples}, log_eps={self.log_eps}, obs_dim={self.obs_dim}, "
            f"action_dim={self.action_dim}, {fitted})"
        )


def _stored_log_eps(text: Any) -> float:
    """``log_eps`` as :meth:`ScoreSupportSampler.save` stores it (its ``repr``), as a float."""
    try:
        return float(text if isinstance(text, str) else "not text")
    except ValueError:
        raise DataError(f"log_eps must be the text of a number or -inf, got {text!r}") from None
