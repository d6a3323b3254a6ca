"""The per-state KL budget's multiplier (SAQ eq. 9, and eq. 2's KL in SAQ-BRAC): a safeguarded
Newton iteration that reaches the root in a few steps, also where the budget is nearly the most
KL the advantages can give and where the bracket's guard has to take over."""

from __future__ import annotations

import math

import pytest
import torch

from saq_wrappers.integrations.d3rlpy.torch.kl_constraint import kl_constrained_temperature


def kl_at(advantages: torch.Tensor, log_behavior: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    log_policy = torch.log_softmax(advantages / lam + log_behavior, dim=1)
    return (log_policy.exp() * (log_policy - log_behavior)).sum(dim=1)


def problem(rows: int, codes: int, scale: float, seed: int = 0,
            dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    advantages = scale * torch.randn(rows, codes, generator=generator, dtype=dtype)
    log_behavior = torch.log_softmax(2 * torch.randn(rows, codes, generator=generator, dtype=dtype), dim=1)
    return advantages, log_behavior


@pytest.mark.parametrize("scale", [0.05, 5.0, 500.0])
def test_a_few_newton_steps_reach_the_root(scale: float) -> None:
    """Four steps meet the budget to 1e-9 in float64 at every scale of the advantages (bisection
    in log lambda would still be about 1e-1 away after four)."""
    advantages, log_behavior = problem(256, 64, scale)
    lam = kl_constrained_temperature(advantages, log_behavior, min_temperature=1e-3, kl_budget=0.01, iterations=4)
    assert (lam > 1e-3).all()
    torch.testing.assert_close(kl_at(advantages, log_behavior, lam), torch.full((256,), 0.01, dtype=torch.float64),
                               rtol=1e-9, atol=0)


def test_a_budget_near_the_most_the_advantages_can_give() -> None:
    """Where KL(lambda) flattens towards the KL of the arg-max code (lambda -> 0), Newton's
    steps overshoot and the bracket's midpoint takes over; the root is still found."""
    advantages, log_behavior = problem(64, 8, 3.0, seed=1)
    argmax_kl = -log_behavior.gather(1, advantages.argmax(dim=1, keepdim=True)).view(-1)
    budgets = 0.999 * argmax_kl
    for row in range(8):
        lam = kl_constrained_temperature(advantages[row:row + 1], log_behavior[row:row + 1], 1e-6,
                                         float(budgets[row]))
        kl = kl_at(advantages[row:row + 1], log_behavior[row:row + 1], lam)
        assert float(kl) == pytest.approx(float(budgets[row]), rel=1e-7)


def test_float32_agrees_with_float64_to_rounding() -> None:
    """In float32 the KL of K terms at eps = 0.01 carries about 1e-5 of relative rounding; the
    float32 answer is the float64 one to that precision."""
    advantages, log_behavior = problem(256, 64, 5.0, seed=2)
    exact = kl_constrained_temperature(advantages, log_behavior, 0.1, 0.01)
    single = kl_constrained_temperature(advantages.float(), log_behavior.float(), 0.1, 0.01)
    torch.testing.assert_close(single.double(), exact, rtol=1e-4, atol=0)


def test_rows_the_floor_already_satisfies_keep_it_and_degenerate_rows_stay_finite() -> None:
    advantages, log_behavior = problem(4, 16, 5.0, seed=3)
    advantages[1] = 0.001 * advantages[1]  # mild: the floor already meets the budget
    advantages[2] = 7.0  # constant: KL is 0 at every lambda
    log_behavior[3] = torch.full((16,), -math.log(16))  # uniform behavior
    lam = kl_constrained_temperature(advantages, log_behavior, 0.1, 0.01)
    assert lam.shape == (4, 1) and torch.isfinite(lam).all()
    assert float(lam[1]) == 0.1 and float(lam[2]) == 0.1
    kl = kl_at(advantages, log_behavior, lam)
    for row in (0, 3):
        assert float(kl[row]) == pytest.approx(0.01, rel=1e-9)
