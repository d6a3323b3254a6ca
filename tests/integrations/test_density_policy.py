"""The action-density parametrization of a policy over codes (issue 37's candidate)."""

from __future__ import annotations

import pytest
import torch

from saq_wrappers.integrations.d3rlpy.torch.density_policy import ActionDensityHead, density_code_logits


def random_mixture(batch: int, m: int, d: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, m, generator=g), torch.randn(batch, m, d, generator=g),
            0.3 * torch.randn(batch, m, d, generator=g))


@pytest.mark.parametrize("m", [1, 3])
def test_logits_are_the_mixtures_log_density_at_the_candidates(m: int) -> None:
    log_w, means, log_stds = random_mixture(5, m, 4)
    candidates = torch.randn(5, 7, 4, generator=torch.Generator().manual_seed(1))
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=log_w),
        torch.distributions.Independent(torch.distributions.Normal(means, log_stds.exp()), 1))
    expected = mixture.log_prob(candidates.transpose(0, 1)).transpose(0, 1)  # (B, K)
    got = density_code_logits(log_w, means, log_stds, candidates)
    # equal up to one constant per state (the Gaussian's normalizer), which a softmax over codes drops
    assert torch.allclose(torch.log_softmax(got, 1), torch.log_softmax(expected, 1), atol=1e-5)
    assert torch.allclose(got - expected, (got - expected)[:, :1].expand_as(got), atol=1e-4)


def test_codes_that_decode_alike_get_the_same_logit_whatever_their_index() -> None:
    """What the classifier over indices lacks: the logit depends on the decoded action only."""
    head = ActionDensityHead(hidden_size=8, action_dim=3, n_components=2)
    features = torch.randn(4, 8)
    candidates = torch.randn(4, 6, 3)
    logits = head(features, candidates)
    permutation = torch.tensor([3, 0, 5, 1, 4, 2])
    assert torch.allclose(head(features, candidates[:, permutation]), logits[:, permutation])
    candidates[:, 5] = candidates[:, 1]
    logits = head(features, candidates)
    assert torch.equal(logits[:, 5], logits[:, 1])


def test_one_component_picks_the_code_nearest_its_mean_in_standard_deviations() -> None:
    means = torch.tensor([[[0.2, -0.1]]])
    log_stds = torch.log(torch.tensor([[[0.1, 1.0]]]))
    # code 0 is nearer in plain distance (0.15 vs 0.5), code 1 nearer in standard deviations
    candidates = torch.tensor([[[0.35, -0.1], [0.2, 0.4], [-0.5, -0.1]]])
    logits = density_code_logits(torch.zeros(1, 1), means, log_stds, candidates)
    assert int(logits.argmax()) == 1


def test_the_head_learns_the_noise_free_centre_from_noisy_labels() -> None:
    """Noisy actions around a state-dependent mean, labelled by their nearest of many candidate
    actions: trained by cross-entropy on those labels, the one-component head's arg-max code
    lies near the mean, much nearer than a noisy action does."""
    g = torch.Generator().manual_seed(0)
    n, k, d = 2048, 48, 2
    states = torch.rand(n, 1, generator=g) * 2 - 1
    centre = torch.cat([states, -states], dim=1) * 0.5
    candidates = centre[:, None, :] + 0.6 * torch.randn(n, k, d, generator=g)  # codes spread around it
    actions = centre + 0.3 * torch.randn(n, d, generator=g)
    labels = ((candidates - actions[:, None, :]) ** 2).sum(2).argmin(1)
    torso = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.ReLU())
    head = ActionDensityHead(64, d, 1)
    optimizer = torch.optim.Adam([*torso.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(head(torso(states), candidates), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        chosen = candidates[torch.arange(n), head(torso(states), candidates).argmax(1)]
    nearest = candidates[torch.arange(n), ((candidates - centre[:, None, :]) ** 2).sum(2).argmin(1)]
    error = ((chosen - centre) ** 2).sum(1).sqrt().mean()
    assert error < 0.5 * ((actions - centre) ** 2).sum(1).sqrt().mean()
    assert error < 2 * ((nearest - centre) ** 2).sum(1).sqrt().mean() + 0.05


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="n_components"):
        ActionDensityHead(8, 3, 0)
