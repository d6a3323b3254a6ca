"""An SB3 features extractor that standardizes observations like d3rlpy's scaler.

d3rlpy's SAQ presets train on standardized observations (``RobustStandardObservationScaler``, a
``StandardObservationScaler`` with the same transform and the library's rule for near-constant
dimensions folded into its fitted ``std``); an SB3 network copied from such a model must see the
same inputs, so the normalization becomes an explicit, saved layer of the SB3 policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from saq_wrappers.errors import SpaceMismatchError

__all__ = ["StandardizeObservations"]


class StandardizeObservations(BaseFeaturesExtractor):
    """SB3 features extractor computing d3rlpy's ``StandardObservationScaler`` (and its subclass,
    the presets' ``RobustStandardObservationScaler``) exactly.

    ``forward(x) = (flatten(x) - mean) / (std + eps)`` with float32 ``mean``/``std`` buffers,
    the same operations in the same order as d3rlpy's ``transform``, so a copied Q-network sees
    bit-identical inputs. With no statistics it is the identity (``mean=0, std=1, eps=0``). The
    statistics are buffers: they are saved and loaded with the policy's ``state_dict``.

    Args:
        observation_space: a ``Box`` observation space.
        mean: per-feature mean (``None``: zeros).
        std: per-feature standard deviation (``None``: ones).
        eps: added to ``std`` before dividing (d3rlpy's default is ``1e-3``).
    """

    def __init__(
        self,
        observation_space: gym.Space[Any],
        mean: Sequence[float] | np.ndarray | None = None,
        std: Sequence[float] | np.ndarray | None = None,
        eps: float = 0.0,
    ) -> None:
        if not isinstance(observation_space, spaces.Box):
            raise SpaceMismatchError(f"StandardizeObservations needs a Box observation space, got {observation_space}")
        dim = int(np.prod(observation_space.shape))
        super().__init__(observation_space, features_dim=dim)
        self.flatten = nn.Flatten()
        self.eps = float(eps)
        self.register_buffer("mean", self._stat(mean, dim, 0.0, "mean"))
        self.register_buffer("std", self._stat(std, dim, 1.0, "std"))

    @staticmethod
    def _stat(values: Sequence[float] | np.ndarray | None, dim: int, fill: float, name: str) -> torch.Tensor:
        if values is None:
            return torch.full((dim,), fill, dtype=torch.float32)
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if array.shape != (dim,):
            raise SpaceMismatchError(f"{name} has {array.size} entries, the observation space has {dim} features")
        # torch.tensor(float64 array, dtype=float32): the same rounding as d3rlpy's scaler.
        return torch.tensor(array, dtype=torch.float32)

    def set_statistics(self, mean: np.ndarray, std: np.ndarray, eps: float) -> None:
        """Replace the statistics in place.

        :func:`~saq_wrappers.integrations.sb3.warm_start_dqn` copies d3rlpy's into a built DQN.
        """
        dim = self.mean.shape[0]
        self.mean.copy_(self._stat(mean, dim, 0.0, "mean"))
        self.std.copy_(self._stat(std, dim, 1.0, "std"))
        self.eps = float(eps)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = self.flatten(observations)
        return (x - self.mean) / (self.std + self.eps)
