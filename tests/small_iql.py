"""Shared by the SAQ-IQL tests: a discrete IQL config small and fast enough for toy MDPs."""

from __future__ import annotations

import d3rlpy

from saq_wrappers.integrations.d3rlpy import DiscreteIQLConfig


def small_iql_config(**overrides: object) -> DiscreteIQLConfig:
    """64-64 networks, lr 1e-3, batch 128, expectile 0.8, tau 0.02; ``overrides`` set any field."""
    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=[64, 64])
    settings: dict[str, object] = dict(
        batch_size=128,
        critic_learning_rate=1e-3,
        behavior_learning_rate=1e-3,
        expectile=0.8,
        tau=0.02,
        critic_encoder_factory=encoder,
        value_encoder_factory=encoder,
        behavior_encoder_factory=encoder,
        actor_encoder_factory=encoder,
        actor_learning_rate=1e-3,
    )
    settings.update(overrides)
    return DiscreteIQLConfig(**settings)  # type: ignore[arg-type]
