"""The compute-ceiling benchmark counts an update's whole arithmetic (forward and backward).

Its projection of the standard suite's time rests on ``flops_per_update``: a count that missed the
backward pass or the conservative term would put every ceiling 3x too high.
"""

from __future__ import annotations

from benchmarks.bench_compute_ceiling import CQL_ACTION_SAMPLES, SUITE_HIDDEN, build, flops_per_update
from benchmarks.bench_saq_cql import ACT_DIM, BATCH, OBS_DIM, datasets


def mlp_macs(sizes: list[int]) -> int:
    """Multiply-accumulates of one sample through dense layers of these widths."""
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def test_cql_count_covers_its_conservative_term_forward_and_backward() -> None:
    discrete, continuous = datasets(2_000)
    algo, data = build("CQL", discrete, continuous)
    # two critics on batch x 3 x n (state, action) pairs; backward costs two forwards
    pairs = BATCH * 3 * CQL_ACTION_SAMPLES
    conservative = 2 * pairs * 2 * mlp_macs([OBS_DIM + ACT_DIM, *SUITE_HIDDEN, 1]) * 3
    counted = flops_per_update(algo, data)
    assert conservative <= counted <= 1.25 * conservative


def test_saq_cql_needs_a_small_fraction_of_cql_arithmetic() -> None:
    # SAQ eq. 8: the penalty is an exact sum over the K codes, from one Q forward per state;
    # continuous CQL samples 3 x 10 actions per state and runs both critics on each
    discrete, continuous = datasets(2_000)
    cql = flops_per_update(*build("CQL", discrete, continuous))
    saq_cql = flops_per_update(*build("SAQ-CQL", discrete, continuous))
    assert saq_cql < 0.1 * cql
