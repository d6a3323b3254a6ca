"""Small code MDPs shared by the discrete-algorithm tests: a two-step MDP with a known optimal
code, and one-step data in which some codes never occur."""

from __future__ import annotations

import d3rlpy
import numpy as np

K = 4
EYE = np.eye(3, dtype=np.float32)
#: behavior probabilities of the two-step MDP below (code 3 is never in the data)
P_START = [0.3, 0.35, 0.35]
P_GOOD = [0.35, 0.3, 0.35]
R_GOOD = np.array([0.2, 1.0, 0.2])


def two_step_dataset(n_episodes: int = 1500, seed: int = 0) -> d3rlpy.dataset.MDPDataset:
    """Start state s0; code 0 leads to the good state sG, codes 1-2 to the dead state sB.

    In sG code 1 pays 1 and codes 0, 2 pay 0.2; sB pays 0. The behavior policy mostly picks
    the worse codes, and code 3 never occurs. Optimal codes: 0 at s0, 1 at sG.
    """
    rng = np.random.default_rng(seed)
    obs, act, rew, term = [], [], [], []
    for _ in range(n_episodes):
        first = int(rng.choice(3, p=P_START))
        middle = 1 if first == 0 else 2
        if middle == 1:
            second = int(rng.choice(3, p=P_GOOD))
            reward = float(R_GOOD[second])
        else:
            second, reward = int(rng.integers(3)), 0.0
        obs += [EYE[0], EYE[middle]]
        act += [first, second]
        rew += [0.0, reward]
        term += [0.0, 1.0]
    return d3rlpy.dataset.MDPDataset(
        np.asarray(obs),
        np.asarray(act),
        np.asarray(rew, dtype=np.float32),
        np.asarray(term, dtype=np.float32),
        action_space=d3rlpy.constants.ActionSpace.DISCRETE,
        action_size=K,
    )


def unseen_codes_dataset(n_states: int = 64, seed: int = 0) -> d3rlpy.dataset.MDPDataset:
    """One-step episodes that pay -5 at every state; the data takes codes 0 and 1 only.

    SAQ-IQL and SAQ-BRAC train Q only at dataset codes, so Q(s, 2) and Q(s, 3) stay near their
    initial ~0: five units *above* every value the data supports. That is the collapse of both
    in miniature: the critic's values at codes a state never takes are extrapolations.
    """
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(n_states, 3)).astype(np.float32)
    codes = (states[:, 0] > 0).astype(np.int64)
    repeats = 20
    return d3rlpy.dataset.MDPDataset(
        np.repeat(states, repeats, axis=0),
        np.repeat(codes, repeats),
        np.full(n_states * repeats, -5.0, dtype=np.float32),
        np.ones(n_states * repeats, dtype=np.float32),
        action_space=d3rlpy.constants.ActionSpace.DISCRETE,
        action_size=K,
    )
