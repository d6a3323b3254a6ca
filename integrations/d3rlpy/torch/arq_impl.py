"""Torch side of ARQ (ARQ section 4.3, eq. 5 and Algorithm 1): the K-th-largest bootstrap, the
critic and AWR updates and Q of candidate sets; the config, the algorithm class and the candidate
lookup are in :mod:`..arq`."""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoImplBase
from d3rlpy.models.torch import ContinuousEnsembleQFunctionForwarder, NormalPolicy, build_gaussian_distribution
from d3rlpy.optimizers.optimizers import OptimizerWrapper
from d3rlpy.torch_utility import Modules, TorchMiniBatch, hard_sync, soft_sync
from d3rlpy.types import Shape, TorchObservation

from saq_wrappers.integrations.d3rlpy.torch.candidate_q import min_q_of_candidates

__all__ = ["ARQImpl", "ARQModules", "CandidateBatch", "kth_largest_target"]

#: What the algorithm attaches before each update: the candidates of ``s'`` ``(B, N, d)``, their
#: validity ``(B, N)``, and (AWR only, else ``(None, None)``) the same two for ``s``.
CandidateBatch = tuple[
    torch.Tensor, torch.Tensor, tuple[Optional[torch.Tensor], Optional[torch.Tensor]]
]


def kth_largest_target(
    q_candidates: torch.Tensor, valid: torch.Tensor, q_data: torch.Tensor, k: int
) -> torch.Tensor:
    """ARQ eq. 5's bootstrap value from ``Q(s', .)`` on candidates and the dataset action.

    Args:
        q_candidates: ``(B, N)`` target Q of the candidates of ``s'``.
        valid: ``(B, N)`` bool, candidates above ``eps``.
        q_data: ``(B,)`` target Q of the dataset's next action ``a'_data`` (never dropped).
        k: K of the K-th largest; with fewer than K actions available the smallest is taken.

    Returns:
        ``(B,)``: ``max(Kth{Q(a'_data)} U {Q(c) : c valid}, Q(a'_data))``.
    """
    values = torch.cat([q_data[:, None], q_candidates.masked_fill(~valid, float("-inf"))], dim=1)
    count = 1 + valid.sum(dim=1)
    ordered = values.sort(dim=1, descending=True).values
    index = (torch.clamp(count, max=k) - 1).long()
    kth = ordered.gather(1, index[:, None])[:, 0]
    return torch.maximum(kth, q_data)


@dataclasses.dataclass(frozen=True)
class ARQModules(Modules):
    """Every module and optimizer saved by ``save_model`` / ``save``."""

    q_funcs: torch.nn.ModuleList
    targ_q_funcs: torch.nn.ModuleList
    policy: NormalPolicy
    critic_optim: OptimizerWrapper
    actor_optim: OptimizerWrapper


class ARQImpl(QLearningAlgoImplBase):
    """Torch side of ARQ: the eq. 5 critic update, the AWR update and Q of candidate sets."""

    _modules: ARQModules

    def __init__(
        self,
        observation_shape: Shape,
        action_size: int,
        modules: ARQModules,
        q_func_forwarder: ContinuousEnsembleQFunctionForwarder,
        targ_q_func_forwarder: ContinuousEnsembleQFunctionForwarder,
        gamma: float,
        tau: float,
        kth: int,
        use_awr_policy: bool,
        awr_beta: float,
        max_weight: float,
        device: str,
    ) -> None:
        super().__init__(observation_shape=observation_shape, action_size=action_size, modules=modules, device=device)
        self._q = q_func_forwarder
        self._targ_q = targ_q_func_forwarder
        self._gamma = gamma
        self._tau = tau
        self._kth = kth
        self._use_awr_policy = use_awr_policy
        self._awr_beta = awr_beta
        self._max_weight = max_weight
        self.candidates: Optional[CandidateBatch] = None
        # The targets start equal to the online critics (polyak averaging then tracks them).
        hard_sync(self._modules.targ_q_funcs, self._modules.q_funcs)

    def q_of_sets(self, target: bool, obs: TorchObservation, actions: torch.Tensor) -> torch.Tensor:
        """Min-over-critics Q (the target critics' with ``target``, else the online ones') of
        ``actions (B, N, d)`` at ``obs (B, ...)`` (or a tuple of parts): ``(B, N)``, without
        gradient (:func:`~saq_wrappers.integrations.d3rlpy.torch.candidate_q.min_q_of_candidates`)."""
        if target:
            return min_q_of_candidates(self._modules.targ_q_funcs, self._targ_q, obs, actions)
        return min_q_of_candidates(self._modules.q_funcs, self._q, obs, actions)

    def inner_update(self, batch: TorchMiniBatch, grad_step: int) -> dict[str, float]:
        assert self.candidates is not None, "ARQ.update must attach the candidates of the batch"
        next_cand, next_valid, awr = self.candidates
        with torch.no_grad():
            q_next = self.q_of_sets(True, batch.next_observations, next_cand)
            q_data = self._targ_q.compute_expected_q(batch.next_observations, batch.next_actions, "min")[:, 0]
            target = kth_largest_target(q_next, next_valid, q_data, self._kth)[:, None]
        self._modules.critic_optim.zero_grad()
        loss = self._q.compute_error(
            observations=batch.observations, actions=batch.actions, rewards=batch.rewards,
            target=target, terminals=batch.terminals, gamma=self._gamma**batch.intervals,
        )
        loss.backward()
        self._modules.critic_optim.step()
        soft_sync(self._modules.targ_q_funcs, self._modules.q_funcs, self._tau)
        metrics = {"critic_loss": float(loss.detach()), "target_mean": float(target.mean()),
                   "valid_fraction": float(next_valid.float().mean())}
        if self._use_awr_policy:
            cand, valid = awr
            assert cand is not None and valid is not None, "the AWR update needs the candidates of s"
            with torch.no_grad():
                q_a = self._q.compute_expected_q(batch.observations, batch.actions, "min")[:, 0]
                q_c = self.q_of_sets(False, batch.observations, cand)
                mean_valid = (q_c * valid).sum(1) / valid.sum(1).clamp_min(1)
                # A state with no valid candidate has baseline Q(s, a_data): advantage 0.
                baseline = torch.where(valid.any(1), mean_valid, q_a)
                weight = torch.exp(self._awr_beta * (q_a - baseline)).clamp(max=self._max_weight)
            self._modules.actor_optim.zero_grad()
            dist = build_gaussian_distribution(self._modules.policy(batch.observations))
            actor_loss = -(weight[:, None] * dist.log_prob(batch.actions)).mean()
            actor_loss.backward()
            self._modules.actor_optim.step()
            metrics["actor_loss"] = float(actor_loss.detach())
        return metrics

    def inner_predict_best_action(self, x: TorchObservation) -> torch.Tensor:
        # The AWR policy is an unsquashed Gaussian fitted to raw dataset actions (any bounds),
        # so it acts with its mean; ARQ.predict clips to the action space when it knows it.
        return self._modules.policy(x).mu

    def inner_sample_action(self, x: TorchObservation) -> torch.Tensor:
        return build_gaussian_distribution(self._modules.policy(x)).sample()

    def inner_predict_value(self, x: TorchObservation, action: torch.Tensor) -> torch.Tensor:
        return self._q.compute_expected_q(x, action, "min").reshape(-1)

    @property
    def policy(self) -> NormalPolicy:
        return self._modules.policy

    @property
    def policy_optim(self) -> torch.optim.Optimizer:
        return self._modules.actor_optim.optim

    @property
    def q_function(self) -> torch.nn.ModuleList:
        return self._modules.q_funcs

    @property
    def q_function_optim(self) -> torch.optim.Optimizer:
        return self._modules.critic_optim.optim
