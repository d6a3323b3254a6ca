"""ARQ's candidate Q: the split first layer gives the critics' own values."""

from __future__ import annotations

import d3rlpy
import pytest
import torch
from d3rlpy.models.builders import create_continuous_q_function
from d3rlpy.models.q_functions import MeanQFunctionFactory

from saq_wrappers.integrations.d3rlpy.torch import candidate_q
from saq_wrappers.integrations.d3rlpy.torch.candidate_q import min_q_of_candidates


def critics(**encoder: object) -> tuple[torch.nn.ModuleList, object]:
    torch.manual_seed(0)
    factory = d3rlpy.models.VectorEncoderFactory(hidden_units=[32, 32], **encoder)
    return create_continuous_q_function((7,), 3, factory, MeanQFunctionFactory(), n_ensembles=2,
                                        device="cpu:0", enable_ddp=False)


def reference(forwarder: object, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Each (state, candidate) pair through d3rlpy's own forward pass."""
    batch, n, d = actions.shape
    repeated = obs.repeat_interleave(n, dim=0)
    with torch.no_grad():
        return forwarder.compute_expected_q(repeated, actions.reshape(-1, d), "min").reshape(batch, n)


@pytest.mark.parametrize("encoder", [{}, {"use_layer_norm": True}, {"dropout_rate": 0.1}])
def test_min_q_of_candidates_equals_the_critics_own_forward_pass(encoder: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    q_funcs, forwarder = critics(**encoder)
    q_funcs.eval()  # dropout off, so both paths are deterministic
    obs, actions = torch.randn(5, 7) * 3, torch.rand(5, 11, 3) * 2 - 1
    split_calls = []
    split = candidate_q._split_q
    monkeypatch.setattr(candidate_q, "_split_q", lambda *a: split_calls.append(1) or split(*a))
    values = min_q_of_candidates(q_funcs, forwarder, obs, actions)
    torch.testing.assert_close(values, reference(forwarder, obs, actions), rtol=1e-5, atol=1e-5)
    assert bool(split_calls) is (not encoder)  # plain MLPs take the split path, the others d3rlpy's
    assert not values.requires_grad


def test_candidate_sets_must_match_the_states() -> None:
    q_funcs, forwarder = critics()
    with pytest.raises(ValueError, match="4 observations for 5 candidate sets"):
        min_q_of_candidates(q_funcs, forwarder, torch.zeros(4, 7), torch.zeros(5, 2, 3))
