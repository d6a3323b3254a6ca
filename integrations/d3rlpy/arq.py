"""ARQ: action-restricted Q-learning as a d3rlpy algorithm (ARQ section 4.3, eq. 5-6, Algorithm 1).

Q-learning bootstraps only over actions the behavior model deems in support (eq. 5)::

    y = r + gamma * max( Kth_{a' in {a'_data} U C(s')} Q_targ(s', a'),  Q_targ(s', a'_data) )

where ``C(s')`` are the *valid* precomputed candidates of ``s'`` (log-likelihood above ``log_eps``
under a :class:`~saq_wrappers.score.ScoreSupportSampler`), ``Q_targ`` is the min of two target
critics (polyak 0.995), and ``Kth`` is the K-th largest value (K = 9; 3 for AntMaze). The dataset
action ``a'_data`` is never dropped, so a state whose candidates are all rejected by ``eps`` still
bootstraps from ``Q_targ(s', a'_data)`` alone (plain SARSA at that state); if fewer than K actions
are available, the smallest of them is used.

Policies
    * implicit (default, eq. 6): ``N`` fresh candidates from the sampler at the current state,
      logits ``alpha * (Q - mean of valid Q)`` with dropped candidates at ``-inf``;
      ``predict`` takes the argmax, ``sample_action`` samples the softmax. If every candidate of a
      state is dropped (no dataset action exists at test time) all candidates are used.
    * AWR (``use_awr_policy=True``, Algorithm 1 lines 7-8): a Gaussian policy with a
      state-independent std trained by weighted regression with ``w = min(exp(beta * A), 100)``,
      ``A = Q(s, a_data) - mean of Q over the valid candidates of s``; then ``predict`` is its mean.

How the candidate table gets in
    Build it with :func:`~saq_wrappers.score.precompute_candidate_table` over the states the
    updates need -- :func:`arq_table_states` gives the unique rows of ``next_observations`` (the
    target) and ``observations`` (the AWR advantage) -- then either pass the folder as
    ``ARQConfig(candidate_table=...)`` or call :meth:`ARQ.attach_candidates` before ``fit``.
    Rows are looked up by the raw (unscaled) observation bytes. The sampler used by the implicit
    policy is ``ARQConfig(sampler_path=...)`` (a saved ``ScoreSupportSampler``) or
    :meth:`ARQ.attach_sampler`. Candidates are stored in the original action space, so no
    ``action_scaler`` is supported (ARQ's networks act on raw actions).

Tuple observations
    d3rlpy's tuple observations (``observation_shape=((3,), (4,))``) work with an encoder factory
    that accepts them. The table and the sampler see one flat vector per state, the
    concatenation of the flattened parts (:func:`flat_observation_rows`): build the sampler on
    that vector and the table over :func:`arq_table_states` of the d3rlpy dataset.

This module holds the config, the algorithm and the candidate lookup; the torch side (modules,
impl and eq. 5's :func:`kth_largest_target`) is in
:mod:`saq_wrappers.integrations.d3rlpy.torch.arq_impl` and re-exported here.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

import numpy as np
import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoBase
from d3rlpy.base import DeviceArg, LearnableConfig, register_learnable
from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import ReplayBufferBase, TransitionMiniBatch
from d3rlpy.models.builders import create_continuous_q_function, create_normal_policy
from d3rlpy.models.encoders import EncoderFactory, make_encoder_field
from d3rlpy.models.q_functions import MeanQFunctionFactory
from d3rlpy.optimizers.optimizers import OptimizerFactory, make_optimizer_field
from d3rlpy.torch_utility import convert_to_torch_recursively
from d3rlpy.types import Observation, Shape

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy._config_checks import check_common_fields
from saq_wrappers.integrations.d3rlpy.encoders import check_encoders_accept
from saq_wrappers.integrations.d3rlpy.torch.arq_impl import ARQImpl, ARQModules, kth_largest_target
from saq_wrappers.score import CandidateTable, ScoreSupportSampler
from saq_wrappers.limits import MAX_SAMPLES
from saq_wrappers.transitions import Transitions
from saq_wrappers.validation import check_int, check_number

__all__ = [
    "ARQ",
    "ARQConfig",
    "ARQImpl",
    "ARQModules",
    "arq_table_states",
    "flat_observation_rows",
    "kth_largest_target",
]


def flat_observation_rows(x: Observation) -> np.ndarray:
    """``(B, D)`` float32: each state as one vector, the key of its candidate-table row.

    An array batch ``(B, *obs_shape)`` is flattened per row; a tuple observation (a sequence of
    ``(B, *shape_i)`` arrays, d3rlpy's tuple observations) becomes the concatenation of its
    flattened parts.
    """
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
    parts = [np.asarray(part, dtype=np.float32) for part in x]
    return np.ascontiguousarray(np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1))


def arq_table_states(data: Union[Transitions, ReplayBufferBase]) -> np.ndarray:
    """Unique states ARQ's updates query: the rows of ``next_observations`` (eq. 5's target) and
    ``observations`` (the AWR advantage).

    ``data`` is a :class:`~saq_wrappers.transitions.Transitions` or the d3rlpy dataset being
    fitted (every observation of its episodes; tuple observations as
    :func:`flat_observation_rows`).
    """
    if isinstance(data, Transitions):
        both = np.concatenate([data.next_observations, data.observations])
    else:
        episodes = [episode.observations for episode in data.episodes]
        both = np.concatenate(
            [obs if isinstance(obs, np.ndarray) else flat_observation_rows(obs) for obs in episodes]
        )
    flat = both.reshape(len(both), -1)
    _, first = np.unique(flat, axis=0, return_index=True)
    return both[np.sort(first)]


@dataclasses.dataclass()
class ARQConfig(LearnableConfig):
    r"""Action-Restricted Q-learning (ARQ eq. 5-6; defaults from the authors' code).

    Args:
        learning_rate: critic Adam learning rate (3e-4; 1e-4 for Kitchen/Adroit/robomimic).
        actor_learning_rate: AWR policy learning rate (3e-4).
        batch_size: 512.
        gamma: 0.99.
        tau: polyak rate of the target critics (0.005, i.e. coefficient 0.995).
        n_critics: 2 (min of targets).
        kth: K of the K-th largest target (9; 3 for AntMaze).
        alpha: implicit-policy temperature (1; 10 Adroit/AntMaze, 0.1 robomimic).
        n_candidates: fresh candidates per state for the implicit policy (30).
        use_awr_policy: train the AWR policy and act with it.
        awr_beta: inverse temperature of the AWR weights; max_weight: their clip (100).
        candidate_table: folder of a precomputed table (or use :meth:`ARQ.attach_candidates`).
        sampler_path: saved ``ScoreSupportSampler`` for the implicit policy
            (or :meth:`ARQ.attach_sampler`).
        critic_encoder_factory, actor_encoder_factory: d3rlpy's default encoder (for vector
            observations the authors' ReLU MLP 2x256).

    Raises:
        DataError: when the config is made (or deserialized), a size is not an integer >= 1
            (``n_candidates`` at most :data:`~saq_wrappers.limits.MAX_SAMPLES`), a
            learning rate or ``max_weight`` not a finite number > 0, ``gamma`` not in ``[0, 1]``,
            ``tau`` not in ``(0, 1]``, ``alpha`` or ``awr_beta`` not a finite number >= 0. ``batch_size=0``
            would train on empty minibatches: a NaN loss.
    """

    learning_rate: float = 3e-4
    actor_learning_rate: float = 3e-4
    critic_optim_factory: OptimizerFactory = make_optimizer_field()
    actor_optim_factory: OptimizerFactory = make_optimizer_field()
    critic_encoder_factory: EncoderFactory = make_encoder_field()
    actor_encoder_factory: EncoderFactory = make_encoder_field()
    batch_size: int = 512
    gamma: float = 0.99
    tau: float = 0.005
    n_critics: int = 2
    kth: int = 9
    alpha: float = 1.0
    n_candidates: int = 30
    use_awr_policy: bool = False
    awr_beta: float = 1.0
    max_weight: float = 100.0
    candidate_table: Optional[str] = None
    sampler_path: Optional[str] = None

    def __post_init__(self) -> None:
        check_common_fields(self)
        check_int("kth", self.kth, 1)
        check_int("n_candidates", self.n_candidates, 1, MAX_SAMPLES)
        check_number("max_weight", self.max_weight, 0, exclusive_minimum=True)
        for name in ("alpha", "awr_beta"):
            check_number(name, getattr(self, name), 0)

    def create(self, device: DeviceArg = False, enable_ddp: bool = False) -> "ARQ":
        return ARQ(self, device, enable_ddp)

    @staticmethod
    def get_type() -> str:
        return "arq"


class ARQ(QLearningAlgoBase[ARQImpl, ARQConfig]):
    """Action-Restricted Q-learning; see the module docstring for eq. 5-6 and the table input."""

    def __init__(self, config: ARQConfig, device: DeviceArg = False, enable_ddp: bool = False) -> None:
        super().__init__(config, device, enable_ddp)
        self._table: Optional[CandidateTable] = None
        self._rows: dict[bytes, int] = {}
        self._sampler: Optional[ScoreSupportSampler] = None
        self._rng = torch.Generator().manual_seed(0)

    # ------------------------------------------------------------------ inputs
    def attach_candidates(self, table: CandidateTable) -> None:
        """Use ``table`` (see :func:`arq_table_states`) for the eq. 5 targets and AWR advantages."""
        if self._config.action_scaler is not None:
            raise DataError("ARQ does not support an action_scaler: candidates are raw actions")
        self._table = table
        flat = np.ascontiguousarray(table.observations, dtype=np.float32).reshape(len(table), -1)
        self._rows = {row.tobytes(): i for i, row in enumerate(flat)}
        self._valid = torch.as_tensor(table.valid)
        self._actions = torch.from_numpy(np.array(table.actions))

    def attach_sampler(self, sampler: ScoreSupportSampler) -> None:
        """The behavior model the implicit policy draws fresh candidates from (eq. 6)."""
        self._sampler = sampler

    def _ensure_inputs(self) -> None:
        if self._table is None and self._config.candidate_table:
            self.attach_candidates(CandidateTable.load(self._config.candidate_table))
        if self._sampler is None and self._config.sampler_path:
            self._sampler = ScoreSupportSampler.load(self._config.sampler_path)

    def _lookup(
        self, obs: Observation, what: str, skip: Optional[np.ndarray] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Table rows of ``obs``; rows flagged in ``skip`` (terminal ``s'``) get no valid candidate."""
        flat = flat_observation_rows(obs)
        rows = np.zeros(len(flat), dtype=np.int64)
        for i, r in enumerate(flat):
            if skip is not None and skip[i]:
                continue  # d3rlpy zero-fills terminal next observations; the target is masked anyway
            row = self._rows.get(r.tobytes())
            if row is None:
                raise DataError(
                    f"a batch {what} is not in the candidate table: build the table over "
                    "arq_table_states(...) of the dataset being fitted"
                )
            rows[i] = row
        idx = torch.as_tensor(rows)
        valid = self._valid[idx]
        if skip is not None:
            valid = valid & ~torch.as_tensor(skip)[:, None]
        return self._actions[idx], valid

    # ------------------------------------------------------------------ d3rlpy hooks
    def inner_create_impl(self, observation_shape: Shape, action_size: int) -> None:
        cfg = self._config
        check_encoders_accept(
            type(self).__name__,
            observation_shape,
            critic_encoder_factory=cfg.critic_encoder_factory,
            actor_encoder_factory=cfg.actor_encoder_factory,
        )
        q_funcs, q_fwd = create_continuous_q_function(
            observation_shape, action_size, cfg.critic_encoder_factory, MeanQFunctionFactory(),
            n_ensembles=cfg.n_critics, device=self._device, enable_ddp=self._enable_ddp,
        )
        targ_q_funcs, targ_fwd = create_continuous_q_function(
            observation_shape, action_size, cfg.critic_encoder_factory, MeanQFunctionFactory(),
            n_ensembles=cfg.n_critics, device=self._device, enable_ddp=self._enable_ddp,
        )
        policy = create_normal_policy(
            observation_shape, action_size, cfg.actor_encoder_factory, min_logstd=-5.0, max_logstd=2.0,
            use_std_parameter=True, device=self._device, enable_ddp=self._enable_ddp,
        )
        critic_optim = cfg.critic_optim_factory.create(q_funcs.named_modules(), lr=cfg.learning_rate, compiled=False)
        actor_optim = cfg.actor_optim_factory.create(policy.named_modules(), lr=cfg.actor_learning_rate, compiled=False)
        modules = ARQModules(q_funcs=q_funcs, targ_q_funcs=targ_q_funcs, policy=policy,
                             critic_optim=critic_optim, actor_optim=actor_optim)
        self._impl = ARQImpl(
            observation_shape, action_size, modules, q_fwd, targ_fwd, gamma=cfg.gamma, tau=cfg.tau, kth=cfg.kth,
            use_awr_policy=cfg.use_awr_policy, awr_beta=cfg.awr_beta, max_weight=cfg.max_weight, device=self._device,
        )

    def update(self, batch: TransitionMiniBatch) -> dict[str, float]:
        """Look up the candidates of ``s'`` (and of ``s`` for AWR) by raw observation, then update."""
        self._ensure_inputs()
        if self._table is None:
            raise DataError(
                "ARQ needs a candidate table before fit: ARQConfig(candidate_table=folder) or "
                "algo.attach_candidates(precompute_candidate_table(...))"
            )
        assert self._impl is not None
        if not np.isfinite(batch.rewards).all() or not np.isfinite(batch.actions).all():
            raise DataError("the minibatch holds NaN or inf rewards/actions")
        terminal = np.asarray(batch.terminals).reshape(-1) > 0
        next_cand, next_valid = self._lookup(batch.next_observations, "next observation", skip=terminal)
        awr = self._lookup(batch.observations, "observation") if self._config.use_awr_policy else (None, None)
        device = self._device if isinstance(self._device, str) else "cpu"
        self._impl.candidates = (next_cand.to(device), next_valid.to(device),
                                 tuple(t.to(device) for t in awr) if awr[0] is not None else awr)
        try:
            return super().update(batch)
        finally:
            self._impl.candidates = None

    def get_action_type(self) -> ActionSpace:
        return ActionSpace.CONTINUOUS

    # ------------------------------------------------------------------ policies
    def implicit_policy_logits(self, x: Observation) -> tuple[np.ndarray, np.ndarray]:
        """ARQ eq. 6 on fresh candidates: ``(candidates (B, N, d), logits (B, N))``.

        Logits are ``alpha * (Q - mean of valid Q)`` and ``-inf`` for dropped candidates; a state
        with no valid candidate keeps all of them. The sampler sees tuple observations as
        :func:`flat_observation_rows`.
        """
        self._ensure_inputs()
        if self._sampler is None:
            raise DataError("the implicit policy needs a sampler: ARQConfig(sampler_path=...) or attach_sampler()")
        assert self._impl is not None
        if isinstance(x, np.ndarray):
            obs: Observation = np.asarray(x, dtype=np.float32)
            sampler_obs = obs
        else:
            obs = [np.asarray(part, dtype=np.float32) for part in x]
            sampler_obs = flat_observation_rows(obs)
        actions, log_lik = self._sampler.sample(sampler_obs, self._config.n_candidates, generator=self._rng)
        valid = log_lik > self._sampler.log_eps
        valid[~valid.any(1)] = True
        with torch.no_grad():
            torch_x = convert_to_torch_recursively(obs, self._device)
            if self._config.observation_scaler:
                torch_x = self._config.observation_scaler.transform(torch_x)
            candidates = torch.as_tensor(actions, device=self._device)
            q = self._impl.q_of_sets(False, torch_x, candidates).cpu()
        v = torch.as_tensor(valid)
        mean_valid = (q * v).sum(1, keepdim=True) / v.sum(1, keepdim=True)
        logits = (self._config.alpha * (q - mean_valid)).masked_fill(~v, float("-inf"))
        return actions, logits.numpy()

    def predict(self, x: Observation) -> np.ndarray:
        """Greedy action: argmax of eq. 6 (or the AWR policy's mean if ``use_awr_policy``)."""
        if self._config.use_awr_policy:
            return self._clip_to_bounds(super().predict(x))
        actions, logits = self.implicit_policy_logits(x)
        return actions[np.arange(len(actions)), logits.argmax(1)]

    def sample_action(self, x: Observation) -> np.ndarray:
        """A draw from eq. 6's softmax over fresh candidates (or from the AWR policy)."""
        if self._config.use_awr_policy:
            return self._clip_to_bounds(super().sample_action(x))
        actions, logits = self.implicit_policy_logits(x)
        probs = torch.softmax(torch.as_tensor(logits), dim=1)
        pick = torch.multinomial(probs, 1, generator=self._rng)[:, 0].numpy()
        return actions[np.arange(len(actions)), pick]

    def save_policy(self, fname: str) -> None:
        """d3rlpy's TorchScript (``.pt``) / ONNX export of the AWR policy's mean (``use_awr_policy``).

        The implicit policy (eq. 6) draws fresh candidates from the score-based sampler at every
        call, which a traced graph of the networks cannot hold, so it is refused rather than
        exporting the untrained AWR head. The export does not clip to the sampler's action
        bounds, which :meth:`predict` does when a sampler is attached.
        """
        if not self._config.use_awr_policy:
            raise DataError(
                "ARQ.save_policy exports the AWR policy only (ARQConfig(use_awr_policy=True)): the "
                "implicit policy (eq. 6) samples fresh candidates from the score model at every call"
            )
        super().save_policy(fname)

    def _clip_to_bounds(self, actions: np.ndarray) -> np.ndarray:
        """AWR actions clipped to the attached sampler's action space (unchanged without one)."""
        self._ensure_inputs()
        if self._sampler is None:
            return actions
        space = self._sampler.action_space
        return np.clip(actions, space.low, space.high).astype(np.float32)


register_learnable(ARQConfig)
