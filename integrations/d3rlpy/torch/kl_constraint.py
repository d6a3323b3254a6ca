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

__all__ = ["DEFAULT_KL_BUDGET", "check_kl_budget", "kl_constrained_temperature"]

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
    ``KL(lambda) = kl_budget``.

    The root is found by a safeguarded Newton iteration on ``log KL`` against ``s = -log lambda``.
    With ``t = 1 / lambda``, ``KL(t) = t E_pi[A] - log Z(t)``, so ``dKL/dt = t Var_pi(A)`` and
    ``d log KL / ds = t^2 Var_pi(A) / KL``: both come from the same softmax as ``KL`` itself. For
    small ``t``, ``KL ~ t^2 Var_beta(A) / 2``, which is linear in ``s`` on the log scale: the start
    ``t = sqrt(2 eps / Var_beta(A))`` is already close and Newton converges in a few steps, where
    bisection needed about 25. A bracket guards it: its feasible end starts at
    ``range(A) / sqrt(8 eps)``, feasible by Hoeffding's lemma (``KL <= range^2 / (8 lambda^2)``),
    its other at ``min_temperature``, and a Newton step that would leave it is replaced by the
    bracket's midpoint. It stops once a step is below the square root of the dtype's resolution
    (the next error is then at rounding level): ``KL(lambda(s))`` equals ``eps`` to the precision
    a float sum of K terms has (about 1e-5 relative in float32 at ``eps = 0.01``, where the old
    bisection in ``log lambda`` spent about 25 steps on the same answer).

    Cost: on a CPU the solve is bound by the number of tensor operations, not their size (256 x 64
    is small), so each evaluation of ``KL`` and its slope is one ``log_softmax`` and a few
    products and sums (``linalg.vecdot``, ``logsumexp`` and ``aminmax`` each cost several times
    as much there); it is about 5% of a SAQ-BRAC update on the D4RL kitchen data
    (``benchmarks.bench_discrete_algos``, with and without ``kl_budget``).

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
        iterations: the most Newton (or bisection) steps; a few are used.
    """
    floor = torch.full_like(advantages[:, :1], float(min_temperature))
    if advantages.shape[0] == 0:
        return floor
    # the softmax is shift-invariant: A centred on its pi_beta mean gives the same policies and
    # KLs, and its square under pi_beta is the start's variance
    behavior = log_behavior.exp()
    centred = advantages - _expectation(behavior, advantages)
    spread = centred.amax(dim=1, keepdim=True) - centred.amin(dim=1, keepdim=True)
    # s = log t = -log lambda, bracketed by [low, high]: KL(low) <= eps (Hoeffding), KL(high) > eps
    low = (spread * (8.0 * kl_budget) ** -0.5).clamp_(min=min_temperature).log_().neg_()
    active = _tilted(centred, log_behavior, 1.0 / min_temperature)[2] > kl_budget
    if not bool(active.any()):
        return floor
    high = floor.log().neg_()
    # the start: KL ~ t^2 Var_beta(A) / 2 for small t (+inf where A is constant: such rows are
    # inactive, and the bracket holds it)
    variance = _expectation(behavior, centred.square())
    s = torch.clamp(variance.log().mul_(-0.5).add_(0.5 * math.log(2.0 * kl_budget)), min=low, max=high)
    tolerance = torch.finfo(advantages.dtype).eps ** 0.5
    log_budget = math.log(kl_budget)
    settled = ~active
    for _ in range(iterations):
        t = s.exp()
        policy, mean, kl = _tilted(centred, log_behavior, t)
        variance = _expectation(policy, (centred - mean).square_())
        excess = kl.log().sub_(log_budget)
        over = excess > 0
        low = torch.where(over, low, s)
        high = torch.where(over, s, high)
        # Newton on log KL against s: slope t^2 Var_pi(A) / KL
        newton = torch.addcdiv(s, excess * kl, t.square_() * variance, value=-1.0)
        # NaN is never inside the bracket
        inside = newton.clamp(min=low, max=high) == newton
        previous, s = s, torch.where(inside, newton, torch.lerp(low, high, 0.5))
        # quadratic convergence: after a step below sqrt(resolution) the error is at rounding level
        converged = (s - previous).abs_() <= s.abs().clamp_(min=1.0).mul_(tolerance)
        if bool((converged | settled).all()):
            break
    return torch.where(active, (-s).exp(), floor)


def _tilted(centred: torch.Tensor, log_behavior: torch.Tensor, t: torch.Tensor | float
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``pi_t ∝ pi_beta exp(t A)`` per row (B, K), ``E_pi[A]`` and ``KL(pi_t || pi_beta)`` (B, 1)."""
    logits = torch.addcmul(log_behavior, centred, t) if isinstance(t, torch.Tensor) else torch.add(
        log_behavior, centred, alpha=t)
    log_policy = torch.log_softmax(logits, dim=1)
    policy = log_policy.exp()
    return policy, _expectation(policy, centred), _expectation(policy, log_policy.sub_(log_behavior))


def _expectation(probabilities: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``sum_k p_k v_k`` per row (B, 1); a product and a sum cost less than ``linalg.vecdot`` on the CPU."""
    return (probabilities * values).sum(dim=1, keepdim=True)
