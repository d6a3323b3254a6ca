"""Exact per-state KL constraints over K codes (SAQ eq. 9, and eq. 2's KL in SAQ-BRAC).

With a categorical policy the policy ``pi ∝ pi_beta exp(A / lambda)`` that maximizes ``E_pi[A]`` under
``KL(pi || pi_beta) <= eps`` can be found exactly at every state, by a one-dimensional search
for its multiplier. SAQ-IQL and SAQ-BRAC both use it to stop following critic values at codes
the data never takes.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

__all__ = ["DEFAULT_KL_BUDGET", "check_kl_budget", "kl_constrained_temperature", "policy_kl"]

#: ``eps`` in nats: SAQ-IQL's eq. 9 budget (per batch for its weighted likelihood, per state for
#: the closed form) and SAQ-BRAC's per-state bound on its actor. Why this small: on narrow data
#: each state has about one dataset code, so the critics' preferences among codes are mostly
#: their error, and a 0.1-nat tilt by them cost both methods against their own pi_beta (the
#: evidence is in :class:`~saq_wrappers.integrations.d3rlpy.iql.DiscreteIQLConfig` and
#: :class:`~saq_wrappers.integrations.d3rlpy.brac.DiscreteBRACConfig`).
DEFAULT_KL_BUDGET = 0.01


def check_kl_budget(kl_budget: Optional[float]) -> None:
    """A config's ``kl_budget`` is ``None`` (no constraint) or a finite number > 0."""
    if kl_budget is not None and not (math.isfinite(kl_budget) and kl_budget > 0):
        raise ValueError(f"kl_budget must be a finite number > 0 or None, got {kl_budget!r}")


def policy_kl(advantages: torch.Tensor, log_behavior: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """``KL(pi_lambda || pi_beta)`` per row, ``pi_lambda ∝ pi_beta exp(A / lambda)`` (SAQ eq. 10)."""
    log_policy = torch.log_softmax(advantages / temperature + log_behavior, dim=1)
    return (log_policy.exp() * (log_policy - log_behavior)).sum(dim=1, keepdim=True)


def kl_constrained_temperature(
    advantages: torch.Tensor,
    log_behavior: torch.Tensor,
    min_temperature: float,
    kl_budget: float,
    iterations: int = 40,
) -> torch.Tensor:
    """Per-state ``lambda(s)`` (B, 1) at which eq. 10's policy meets eq. 9's constraint.

    SAQ-IQL: eq. 10 is the Lagrangian solution of eq. 9, ``max_pi E_pi[A] s.t. KL(pi || pi_beta) <=
    eps``; its multiplier ``lambda`` is a property of each state, not a constant. With K codes the
    constraint can be solved exactly: ``KL(lambda)`` falls monotonically from the KL of the
    advantage's argmax (``lambda -> 0``) to 0 (``lambda -> inf``), so ``lambda(s)`` is
    ``min_temperature`` where that already satisfies the budget and otherwise the root of
    ``KL(lambda) = kl_budget``, found by bisection in ``log lambda``. The upper end of the
    bracket, ``range(A) / sqrt(8 eps)``, is feasible by Hoeffding's lemma (``KL <= range^2 /
    (8 lambda^2)``), and the returned value is always the feasible end of the final bracket.

    SAQ-BRAC uses the same solution: with ``alpha = beta`` the optimum of eq. 4,
    ``max_pi E_pi[Q] - beta KL(pi || pi_beta)``, is ``pi ∝ pi_beta exp(Q / beta)``, this policy with
    ``A = Q`` (the softmax is shift-invariant) and ``lambda = beta``.

    Why it matters: a fixed small ``lambda`` lets an advantage of a few units outweigh any
    ``log pi_beta``, so eq. 10 follows critic values at codes the data never took at ``s``
    (extrapolations: both train ``Q`` only at dataset codes); the budget caps how far the
    policy may move from ``pi_beta`` at every state, whatever the critic's scale.

    Args:
        advantages: ``A(s, k)`` (B, K).
        log_behavior: normalized ``log pi_beta(k|s)`` (B, K).
        min_temperature: the smallest ``lambda`` used (the config's ``temperature``).
        kl_budget: ``eps`` of eq. 9, > 0.
        iterations: bisection steps (the bracket shrinks by 2^-iterations in log space).
    """
    floor = torch.full_like(advantages[:, :1], float(min_temperature))
    if advantages.shape[0] == 0:
        return floor
    spread = (advantages.max(dim=1, keepdim=True).values - advantages.min(dim=1, keepdim=True).values)
    ceiling = torch.maximum(floor, spread / (8.0 * kl_budget) ** 0.5)
    low, high = floor.log(), ceiling.log()
    feasible_at_floor = policy_kl(advantages, log_behavior, floor) <= kl_budget
    # a row feasible at the floor returns the floor: its bracket is closed, so it stops no search
    high = torch.where(feasible_at_floor, low, high)
    for step in range(iterations):
        middle = 0.5 * (low + high)
        if step % _CONVERGENCE_CHECK_EVERY == _CONVERGENCE_CHECK_EVERY - 1 and _unsplittable(low, middle, high):
            break
        over = policy_kl(advantages, log_behavior, middle.exp()) > kl_budget
        low = torch.where(over, middle, low)
        high = torch.where(over, high, middle)
    return torch.where(feasible_at_floor, floor, high.exp())


#: Bisection steps between two checks of :func:`_unsplittable` (each check waits for the device).
_CONVERGENCE_CHECK_EVERY = 4


def _unsplittable(low: torch.Tensor, middle: torch.Tensor, high: torch.Tensor) -> bool:
    """Whether no bracket can be split any more in its dtype: every midpoint rounds onto an
    end, so further bisection steps would leave every bracket as it is. Stopping there returns
    exactly what the remaining steps would (in float32 after about 25 steps, not 40)."""
    return bool(((middle == low) | (middle == high)).all())
