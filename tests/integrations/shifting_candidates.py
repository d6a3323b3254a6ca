"""A state-conditioned action set whose code layout moves with the state, and noisy
demonstrations around a noise-free action: the data of the action-density policy's tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from saq_wrappers.transitions import Transitions

K, D = 24, 2


class ShiftingCandidates:
    """A state-conditioned action set: ``K`` fixed offsets around a centre that moves with the state,
    as a state-conditioned quantizer's codes do (code ``k`` is a different action at every state)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-3.0, 3.0, (D,), np.float32)
    n = K

    def __init__(self, seed: int = 0) -> None:
        self.offsets = np.random.default_rng(seed).normal(0.0, 0.6, (K, D)).astype(np.float32)

    @staticmethod
    def centre(obs: np.ndarray) -> np.ndarray:
        s = np.asarray(obs, np.float32).reshape(-1, 1)
        return np.concatenate([s, -s], axis=1) * 0.8

    def candidates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.asarray(obs, np.float32).reshape(-1, 1)
        # the code layout rotates with the state, so an index alone says little about the action
        turn = np.pi * s[:, :, None]
        rotation = np.concatenate([np.concatenate([np.cos(turn), -np.sin(turn)], 2),
                                   np.concatenate([np.sin(turn), np.cos(turn)], 2)], 1)  # (B, 2, 2)
        actions = self.centre(s)[:, None, :] + self.offsets[None] @ rotation.transpose(0, 2, 1)
        return actions.astype(np.float32), np.ones((len(s), K), bool)

    def decode(self, obs: np.ndarray, index: np.ndarray) -> np.ndarray:
        return self.candidates(obs)[0][np.arange(len(index)), index]

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return ((self.candidates(obs)[0] - actions[:, None, :]) ** 2).sum(2).argmin(1)


def noisy_demonstrations(action_set: ShiftingCandidates, n: int = 3000, seed: int = 0) -> Transitions:
    """Episodes of 50 steps; actions = the state's centre + noise of 0.35 per dimension."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    nxt = np.roll(obs, -1, axis=0)
    ends = np.zeros(n, bool)
    ends[49::50] = True
    nxt[ends] = rng.uniform(-1, 1, (int(ends.sum()), 1))
    actions = action_set.centre(obs) + rng.normal(0, 0.35, (n, D)).astype(np.float32)
    return Transitions(observations=obs, actions=actions, rewards=np.zeros(n, np.float32), next_observations=nxt,
                       terminals=np.zeros(n, bool), timeouts=ends)
