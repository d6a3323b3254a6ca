"""CQL conservatism-penalty diagnostic: exact (SAQ-CQL) vs sampled (continuous CQL), SAQ sec. 4.3.

CQL's regularizer (SAQ eq. 1, maximum-entropy form) is

    R(theta) = E_{(s,a) ~ D} [ log ∫ exp Q(s, a') da' - Q(s, a) ].

- On K codes (SAQ-CQL, d3rlpy ``DiscreteCQL``) the integral is a sum and ``R`` is computed
  **exactly**: ``E[logsumexp_k Q(s, k) - Q(s, code)]`` (SAQ eq. 8's penalty).
- Continuous CQL (d3rlpy ``CQL``) estimates the log-integral with ``3N`` importance samples
  (``N = n_action_samples``): N from ``pi(.|s)``, N from ``pi(.|s')`` and N uniform on
  ``[-1, 1]^d``, each weighted by ``exp Q / proposal density``. The log of an average of few
  noisy weights is biased low (Jensen) and noisy, the more so the narrower ``Q`` is.

This module reports, for continuous CQL, the **sampled** estimate (same 3N-sample estimator as
d3rlpy's training loss, normalized by ``log 3N``: d3rlpy's logged ``conservative_loss`` omits
that constant and is scaled by its weights) next to an accurate **reference** estimate of the
same quantity with many more importance samples from the defensive mixture proposal
``1/2 Uniform([-1,1]^d) + 1/2 pi(.|s)`` (bounded weights, consistent as samples grow). Their gap
over training is the right panel of SAQ Figure 2. For discrete algorithms it reports the exact
penalty.

Logging during training, either per epoch as d3rlpy evaluators::

    cql.fit(dataset, n_steps=..., evaluators=cql_penalty_evaluators(discrete=False))

or every ``interval`` steps with a callback::

    monitor = CQLPenaltyMonitor(dataset, interval=500)
    cql.fit(dataset, n_steps=..., callback=monitor)
    monitor.save_json("penalty.json"); monitor.history  # [{"step", "sampled_penalty", ...}]

All sampling uses private ``torch.Generator`` objects, so logging never changes the training
run's random stream.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import EpisodeBase, ReplayBufferBase, TransitionMiniBatch
from d3rlpy.torch_utility import convert_to_torch

from saq_wrappers.errors import DataError
from saq_wrappers.io import atomic_output

__all__ = [
    "CQLPenaltyEvaluator",
    "CQLPenaltyMonitor",
    "PenaltyStates",
    "SquashedGaussianProposal",
    "cql_penalty",
    "cql_penalty_evaluators",
    "exact_discrete_cql_penalty",
    "mixture_log_integral_exp",
    "sampled_cql_log_integral_exp",
]

QFn = Callable[[torch.Tensor], torch.Tensor]
"""Maps actions (B, M, d) to Q-values (B, M), row b evaluated at state b."""


# --------------------------------------------------------------------------------------------
# Exact discrete penalty
# --------------------------------------------------------------------------------------------


def exact_discrete_cql_penalty(q_values: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``mean(logsumexp_k Q(s,k) - Q(s, code))`` over the batch (and over critics if (E, B, K)).

    The SAQ-CQL penalty of SAQ eq. 8, exact: a sum over all K codes, nothing sampled.
    """
    index = codes.long().reshape(-1)
    index = index.view(*([1] * (q_values.dim() - 2)), -1, 1).expand(*q_values.shape[:-1], 1)
    data_values = q_values.gather(-1, index).squeeze(-1)
    return (torch.logsumexp(q_values, dim=-1) - data_values).mean()


# --------------------------------------------------------------------------------------------
# Continuous log-integral-exp estimators
# --------------------------------------------------------------------------------------------


class SquashedGaussianProposal:
    """``tanh(z)``, ``z ~ N(loc, std)`` per state: d3rlpy's CQL policy class, with an explicit
    generator and a density for arbitrary actions in ``(-1, 1)^d``.

    ``loc`` and ``std`` are (B, d).
    """

    def __init__(self, loc: torch.Tensor, std: torch.Tensor):
        self.loc = loc
        self.std = std

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` actions per state (B, n, d) and their log-densities (B, n)."""
        noise = torch.randn(
            (self.loc.shape[0], n, self.loc.shape[1]), generator=generator, device=self.loc.device, dtype=self.loc.dtype
        )
        raw = self.loc.unsqueeze(1) + self.std.unsqueeze(1) * noise
        return torch.tanh(raw), self._log_prob_raw(raw)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """Log-density (B, M) of actions (B, M, d) under the squashed Gaussian."""
        bound = 1.0 - 1e-6
        raw = torch.atanh(actions.clamp(-bound, bound))
        return self._log_prob_raw(raw)

    def _log_prob_raw(self, raw: torch.Tensor) -> torch.Tensor:
        loc, std = self.loc.unsqueeze(1), self.std.unsqueeze(1)
        gaussian = -0.5 * ((raw - loc) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
        # change of variables a = tanh(z): log|da/dz| = log(1 - tanh(z)^2), in a stable form
        log_jacobian = 2.0 * (math.log(2.0) - raw - F.softplus(-2.0 * raw))
        return (gaussian - log_jacobian).sum(dim=-1)


def _uniform(batch: int, n: int, dim: int, generator: Optional[torch.Generator], like: torch.Tensor) -> torch.Tensor:
    return torch.rand((batch, n, dim), generator=generator, device=like.device, dtype=like.dtype) * 2.0 - 1.0


def sampled_cql_log_integral_exp(
    q_fn: QFn,
    batch_size: int,
    action_size: int,
    n_action_samples: int,
    policy: SquashedGaussianProposal,
    next_policy: Optional[SquashedGaussianProposal] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Continuous CQL's estimate of ``log ∫ exp Q(s,a) da`` on ``[-1,1]^d`` -> (B,).

    The estimator of d3rlpy's ``CQL`` training loss: ``N`` samples from ``pi(.|s)``, ``N`` from
    ``pi(.|s')`` (``next_policy``; skipped when None) and ``N`` uniform, each term
    ``Q - log proposal``, logsumexp'ed and normalized by the number of terms.
    """
    terms = []
    for proposal in (policy, next_policy):
        if proposal is None:
            continue
        actions, log_q = proposal.sample(n_action_samples, generator)
        terms.append(q_fn(actions) - log_q)
    uniform = _uniform(batch_size, n_action_samples, action_size, generator, policy.loc)
    terms.append(q_fn(uniform) - action_size * math.log(0.5))
    stacked = torch.cat(terms, dim=1)
    return torch.logsumexp(stacked, dim=1) - math.log(stacked.shape[1])


def mixture_log_integral_exp(
    q_fn: QFn,
    batch_size: int,
    action_size: int,
    n_samples: int,
    policy: Optional[SquashedGaussianProposal] = None,
    generator: Optional[torch.Generator] = None,
    chunk_size: int = 1024,
    like: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Accurate reference estimate of ``log ∫_{[-1,1]^d} exp Q(s,a) da`` -> (B,).

    Importance sampling from the defensive mixture ``q = 1/2 Uniform + 1/2 policy`` (uniform
    alone without ``policy``): half the samples from each component, every sample weighted by
    ``exp Q / q`` with the full mixture density, which is never below half the uniform density,
    so weights stay bounded. Consistent as ``n_samples`` grows; chunked to bound memory.
    """
    ref = like if like is not None else (policy.loc if policy is not None else torch.zeros(1))
    log_uniform = action_size * math.log(0.5)
    total = torch.full((batch_size,), -math.inf, device=ref.device, dtype=ref.dtype)
    done = 0
    while done < n_samples:
        n = min(chunk_size, n_samples - done)
        if policy is None:
            actions = _uniform(batch_size, n, action_size, generator, ref)
            log_q = torch.full(actions.shape[:2], log_uniform, device=ref.device, dtype=ref.dtype)
        else:
            n_uniform = n // 2
            uniform = _uniform(batch_size, n_uniform, action_size, generator, ref)
            from_policy, _ = policy.sample(n - n_uniform, generator)
            actions = torch.cat([uniform, from_policy], dim=1)
            log_q = torch.logaddexp(
                torch.full(actions.shape[:2], log_uniform, device=ref.device, dtype=ref.dtype),
                policy.log_prob(actions),
            ) - math.log(2.0)
        total = torch.logaddexp(total, torch.logsumexp(q_fn(actions) - log_q, dim=1))
        done += n
    return total - math.log(n_samples)


# --------------------------------------------------------------------------------------------
# Fixed evaluation states drawn from a d3rlpy dataset
# --------------------------------------------------------------------------------------------


class PenaltyStates:
    """A fixed, seeded subset of a dataset's transitions on which the penalty is measured.

    Using the same states at every logging step makes the curves over training comparable.
    """

    def __init__(
        self,
        dataset: Optional[ReplayBufferBase] = None,
        n_states: int = 256,
        seed: int = 0,
        episodes: Optional[Sequence[EpisodeBase]] = None,
        transition_picker: Any = None,
    ):
        if episodes is None:
            if dataset is None:
                raise DataError("PenaltyStates needs a dataset or episodes")
            episodes = dataset.episodes
            transition_picker = dataset.transition_picker
        if transition_picker is None:
            from d3rlpy.dataset import BasicTransitionPicker

            transition_picker = BasicTransitionPicker()
        counts = np.array([episode.transition_count for episode in episodes])
        if counts.sum() == 0:
            raise DataError("PenaltyStates: the dataset holds no transitions")
        rng = np.random.default_rng(seed)
        flat = np.sort(rng.choice(counts.sum(), size=min(n_states, int(counts.sum())), replace=False))
        bounds = np.cumsum(counts)
        episode_index = np.searchsorted(bounds, flat, side="right")
        starts = bounds - counts
        transitions = [
            transition_picker(episodes[e], int(i - starts[e])) for e, i in zip(episode_index, flat)
        ]
        batch = TransitionMiniBatch.from_transitions(transitions)
        self.observations: np.ndarray = np.asarray(batch.observations)
        self.actions: np.ndarray = np.asarray(batch.actions)
        self.next_observations: np.ndarray = np.asarray(batch.next_observations)

    def __len__(self) -> int:
        return len(self.observations)


# --------------------------------------------------------------------------------------------
# d3rlpy adapters
# --------------------------------------------------------------------------------------------


def _to_torch(algo: Any, states: PenaltyStates) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    device = algo.impl.device
    obs = convert_to_torch(states.observations, device)
    next_obs = convert_to_torch(states.next_observations, device)
    actions = convert_to_torch(states.actions, device)
    scaler = algo.config.observation_scaler
    if scaler is not None:
        obs, next_obs = scaler.transform(obs), scaler.transform(next_obs)
    if algo.get_action_type() == ActionSpace.CONTINUOUS and algo.config.action_scaler is not None:
        actions = algo.config.action_scaler.transform(actions)
    return obs, actions, next_obs


def _continuous_q_fn(q_func: torch.nn.Module, obs: torch.Tensor, max_rows: int = 65536) -> QFn:
    def q_fn(actions: torch.Tensor) -> torch.Tensor:
        batch, n, dim = actions.shape
        flat_actions = actions.reshape(batch * n, dim)
        flat_obs = obs.unsqueeze(1).expand(batch, n, *obs.shape[1:]).reshape(batch * n, *obs.shape[1:])
        out = [
            q_func(flat_obs[i : i + max_rows], flat_actions[i : i + max_rows]).q_value.reshape(-1)
            for i in range(0, batch * n, max_rows)
        ]
        return torch.cat(out).view(batch, n)

    return q_fn


def _proposal(algo: Any, obs: torch.Tensor) -> SquashedGaussianProposal:
    output = algo.impl.policy(obs)
    if output.logstd is None:
        raise DataError(f"{type(algo).__name__} has no stochastic policy to sample from")
    return SquashedGaussianProposal(output.mu, output.logstd.exp())


def cql_penalty(
    algo: Any,
    states: PenaltyStates,
    n_reference_samples: int = 4096,
    n_action_samples: Optional[int] = None,
    seed: int = 0,
) -> dict[str, float]:
    """Penalty of a d3rlpy algorithm on fixed states, averaged over its critics.

    Discrete algorithms (``DiscreteCQL``, ``DiscreteIQL``, ...): ``{"exact_penalty"}``.
    Continuous ones with a squashed-Gaussian policy (``CQL``, ``SAC``, ...):
    ``{"sampled_penalty", "reference_penalty", "penalty_gap"}`` with ``gap = sampled -
    reference``; the sampled estimate uses the algorithm's ``n_action_samples`` (10 in d3rlpy's
    CQL) unless given.
    """
    if algo.impl is None:
        raise DataError("cql_penalty: the algorithm is not built yet (fit or build_with_dataset first)")
    algo.impl.modules.set_eval()
    obs, actions, next_obs = _to_torch(algo, states)
    with torch.no_grad():
        if algo.get_action_type() == ActionSpace.DISCRETE:
            q_values = torch.stack([q_func(obs).q_value for q_func in algo.impl.q_function], dim=0)
            return {"exact_penalty": float(exact_discrete_cql_penalty(q_values, actions))}
        generator = torch.Generator(device=obs.device)
        generator.manual_seed(seed)
        n_samples = n_action_samples or int(getattr(algo.config, "n_action_samples", 10))
        policy, next_policy = _proposal(algo, obs), _proposal(algo, next_obs)
        batch, action_size = obs.shape[0], actions.shape[-1]
        sampled, reference = [], []
        for q_func in algo.impl.q_function:
            q_fn = _continuous_q_fn(q_func, obs)
            data_q = q_fn(actions.unsqueeze(1)).squeeze(1)
            sampled.append(
                (sampled_cql_log_integral_exp(q_fn, batch, action_size, n_samples, policy, next_policy, generator) - data_q).mean()
            )
            reference.append(
                (mixture_log_integral_exp(q_fn, batch, action_size, n_reference_samples, policy, generator) - data_q).mean()
            )
        s, r = float(torch.stack(sampled).mean()), float(torch.stack(reference).mean())
        return {"sampled_penalty": s, "reference_penalty": r, "penalty_gap": s - r}


class CQLPenaltyEvaluator:
    """A d3rlpy evaluator (``fit(evaluators={...})``) returning one entry of :func:`cql_penalty`.

    ``metric`` is ``"exact_penalty"`` (discrete algorithms) or ``"sampled_penalty"``,
    ``"reference_penalty"``, ``"penalty_gap"`` (continuous). The states are drawn once, from
    ``episodes`` or else from the dataset passed by ``fit``. Evaluators made together by
    :func:`cql_penalty_evaluators` share one computation per training step.
    """

    def __init__(
        self,
        metric: str = "exact_penalty",
        n_states: int = 256,
        n_reference_samples: int = 4096,
        seed: int = 0,
        episodes: Optional[Sequence[EpisodeBase]] = None,
        _shared: Optional[dict[str, Any]] = None,
    ):
        valid = {"exact_penalty", "sampled_penalty", "reference_penalty", "penalty_gap"}
        if metric not in valid:
            raise ValueError(f"metric must be one of {sorted(valid)}, got {metric!r}")
        self.metric = metric
        self.n_states = n_states
        self.n_reference_samples = n_reference_samples
        self.seed = seed
        self.episodes = episodes
        self._shared = _shared if _shared is not None else {}

    def __call__(self, algo: Any, dataset: ReplayBufferBase) -> float:
        shared = self._shared
        if "states" not in shared:
            shared["states"] = PenaltyStates(
                dataset if self.episodes is None else None, self.n_states, self.seed, episodes=self.episodes
            )
        key = (id(algo), algo.grad_step)
        if shared.get("key") != key:
            shared["record"] = cql_penalty(algo, shared["states"], self.n_reference_samples, seed=self.seed + algo.grad_step)
            shared["key"] = key
        record = shared["record"]
        if self.metric not in record:
            raise ValueError(
                f"{self.metric!r} is not defined for {type(algo).__name__}; it reports {sorted(record)}"
            )
        return record[self.metric]


def cql_penalty_evaluators(
    discrete: bool,
    n_states: int = 256,
    n_reference_samples: int = 4096,
    seed: int = 0,
    episodes: Optional[Sequence[EpisodeBase]] = None,
) -> dict[str, CQLPenaltyEvaluator]:
    """Evaluators for ``fit(evaluators=...)``: the exact penalty, or sampled/reference/gap."""
    shared: dict[str, Any] = {}
    metrics = ["exact_penalty"] if discrete else ["sampled_penalty", "reference_penalty", "penalty_gap"]
    return {
        f"cql_{metric}": CQLPenaltyEvaluator(metric, n_states, n_reference_samples, seed, episodes, shared)
        for metric in metrics
    }


class CQLPenaltyMonitor:
    """A ``fit(callback=...)`` callback recording :func:`cql_penalty` every ``interval`` steps.

    ``history`` holds ``{"step": ..., **cql_penalty(...)}`` records; :meth:`save_json` writes
    them atomically.
    """

    def __init__(
        self,
        dataset: Optional[ReplayBufferBase] = None,
        interval: int = 1000,
        n_states: int = 256,
        n_reference_samples: int = 4096,
        seed: int = 0,
        states: Optional[PenaltyStates] = None,
    ):
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        self.states = states if states is not None else PenaltyStates(dataset, n_states, seed)
        self.interval = interval
        self.n_reference_samples = n_reference_samples
        self.seed = seed
        self.history: list[dict[str, float]] = []

    def record(self, algo: Any, step: int) -> dict[str, float]:
        """Measure now and append to ``history`` (also usable outside ``fit``)."""
        entry: dict[str, float] = {"step": float(step)}
        entry.update(cql_penalty(algo, self.states, self.n_reference_samples, seed=self.seed + step))
        self.history.append(entry)
        return entry

    def __call__(self, algo: Any, epoch: int, total_step: int) -> None:
        if total_step % self.interval == 0:
            self.record(algo, total_step)

    def save_json(self, path: str | os.PathLike[str]) -> None:
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(self.history, indent=1))
