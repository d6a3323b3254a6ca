"""The shared torch helpers of DiscreteIQL and DiscreteBRAC compute what the slower d3rlpy and
torch forms they replace compute (to the bit where the arithmetic is the same, to float
rounding where it is not)."""

from __future__ import annotations

import copy

import torch
from d3rlpy.models.torch import CategoricalPolicy, DiscreteMeanQFunction, VectorEncoder
from d3rlpy.torch_utility import soft_sync
from torch import nn

from saq_wrappers.integrations.d3rlpy.torch.utility import (
    categorical_log_probs,
    dataset_code_q_values,
    elementwise_min,
    min_q_values,
    pick_codes,
    soft_update,
)

OBS, K, B = 5, 7, 32


def critic() -> DiscreteMeanQFunction:
    return DiscreteMeanQFunction(VectorEncoder((OBS,), hidden_units=[16], activation=nn.ReLU()), 16, K)


def test_elementwise_min_is_the_stacked_minimum_to_the_bit() -> None:
    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(B, K, generator=generator) for _ in range(3)]
    tensors[1][0, 0] = float("nan")  # a NaN propagates as in the stacked form
    expected = torch.stack(tensors).min(dim=0).values
    assert torch.equal(elementwise_min(tensors).nan_to_num(123.0), expected.nan_to_num(123.0))
    assert elementwise_min(tensors).isnan()[0, 0]


def test_q_value_helpers_pick_and_reduce_over_the_critics() -> None:
    torch.manual_seed(0)
    critics = nn.ModuleList([critic(), critic()])
    x = torch.randn(B, OBS)
    codes = torch.randint(0, K, (B, 1))
    every = torch.stack([q_func(x).q_value for q_func in critics])
    assert torch.equal(min_q_values(critics, x), every.min(dim=0).values)
    assert torch.equal(dataset_code_q_values(critics, x, codes), pick_codes(every, codes))
    assert dataset_code_q_values(critics, x, codes).shape == (2, B)


def test_categorical_log_probs_are_the_distributions_normalized_logits() -> None:
    torch.manual_seed(0)
    policy = CategoricalPolicy(VectorEncoder((OBS,), hidden_units=[16], activation=nn.ReLU()), 16, K)
    x = torch.randn(B, OBS)
    log_probs = categorical_log_probs(policy, x)
    torch.testing.assert_close(log_probs, policy(x).logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(B))
    # gradients flow to the policy's parameters as through the distribution
    log_probs[:, 0].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_soft_update_is_d3rlpys_soft_sync() -> None:
    torch.manual_seed(0)
    source = nn.ModuleList([critic(), critic()])
    ours, theirs = copy.deepcopy(source), copy.deepcopy(source)
    for module in (ours, theirs):
        for param in module.parameters():
            param.data.normal_()  # the targets differ from the source
    theirs.load_state_dict(ours.state_dict())
    for _ in range(5):
        soft_update(ours, source, 0.05)
        soft_sync(theirs, source, 0.05)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    before = [p.clone() for p in ours.parameters()]
    soft_update(ours, source, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, ours.parameters()))
