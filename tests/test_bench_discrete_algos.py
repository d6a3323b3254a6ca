"""Which rows of the issue-39 speed benchmark carry a target: the presets and ARQ, not the
earlier settings nor SAQ-BRAC without its KL budget (shown only for what the budget costs)."""

from __future__ import annotations

from benchmarks.bench_discrete_algos import NO_KL_BUDGET, target_of


def test_targets_belong_to_the_presets_and_arq_only() -> None:
    assert target_of("SAQ-IQL") == 1.0
    assert target_of("SAQ-BRAC") == 1.0
    assert target_of("ARQ, N=16, AWR policy") == 0.5
    assert target_of("IQL (d3rlpy)") is None
    assert target_of("SAQ-BRAC (before)") is None
    assert target_of(NO_KL_BUDGET) is None
