"""SAQDQN: SB3's DQN with a decaying SAQ-CQL term, warm-started from an offline model.

The SAQ paper leaves online fine-tuning open (SAQ section 6: it is "not clear the best way to
adopt our method in the online finetuning setting"). This module holds the online learner of
one answer: a DQN that starts as the offline SAQ-CQL Q-network (:func:`warm_started_dqn`),
keeps the offline objective's pessimism for its first steps (:class:`SAQDQN`'s conservative
term), and can replay the offline data next to the online data
(:func:`add_offline_transitions`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import DQN
from stable_baselines3.common.vec_env import VecEnv

from saq_wrappers.errors import DataError, SpaceMismatchError

from .d3rlpy_bridge import dqn_policy_kwargs, warm_start_dqn

__all__ = ["SAQDQN", "add_offline_transitions", "warm_started_dqn"]


class SAQDQN(DQN):
    """SB3 ``DQN`` with an optional decaying conservative term and double-DQN target.

    The loss on each replayed batch is SB3's Huber TD loss plus
    ``alpha_t * mean(logsumexp_k Q(s, k) - Q(s, a))`` — the SAQ-CQL penalty (SAQ section 4.2),
    exact over the ``n`` discrete actions — with ``alpha_t`` decaying linearly from
    ``conservative_alpha`` at env step 0 to 0 at ``conservative_steps``. Keeping the offline
    objective's pessimism for the first online steps is one answer to the fine-tuning question
    SAQ section 6 leaves open: the Q-values of actions the offline data never covered are not
    suddenly trusted when the first online batches arrive. ``double_q=True`` picks next actions
    with the online net and values them with the target net, as d3rlpy's ``DiscreteCQL`` does.
    With the defaults (``conservative_alpha=0``, ``double_q=False``) it is SB3's DQN.

    Args:
        conservative_alpha: initial weight of the conservative term (SAQ-CQL presets use 10
            offline; smaller values suit online data).
        conservative_steps: env steps over which the weight decays to 0.
        double_q: use the double-DQN target.
        **kwargs: everything SB3's ``DQN`` takes.
    """

    def __init__(
        self,
        *args: Any,
        conservative_alpha: float = 0.0,
        conservative_steps: int = 0,
        double_q: bool = False,
        **kwargs: Any,
    ) -> None:
        if conservative_alpha < 0:
            raise DataError(f"conservative_alpha must be >= 0, got {conservative_alpha}")
        if conservative_steps < 0:
            raise DataError(f"conservative_steps must be >= 0, got {conservative_steps}")
        self.conservative_alpha = float(conservative_alpha)
        self.conservative_steps = int(conservative_steps)
        self.double_q = bool(double_q)
        super().__init__(*args, **kwargs)

    def current_conservative_alpha(self) -> float:
        """The conservative weight at the current env step (linear decay to 0)."""
        if self.conservative_alpha == 0.0 or self.conservative_steps == 0:
            return 0.0
        remaining = 1.0 - self.num_timesteps / self.conservative_steps
        return self.conservative_alpha * max(0.0, remaining)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's DQN update plus the conservative term and the optional double-DQN target."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        alpha = self.current_conservative_alpha()
        losses, penalties = [], []
        for _ in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            with torch.no_grad():
                next_q_values = self.q_net_target(replay_data.next_observations)
                if self.double_q:
                    next_actions = self.q_net(replay_data.next_observations).argmax(dim=1, keepdim=True)
                    next_q_values = torch.gather(next_q_values, dim=1, index=next_actions)
                else:
                    next_q_values = next_q_values.max(dim=1, keepdim=True).values
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values
            all_q_values = self.q_net(replay_data.observations)
            current_q_values = torch.gather(all_q_values, dim=1, index=replay_data.actions.long())
            loss = F.smooth_l1_loss(current_q_values, target_q_values)
            losses.append(loss.item())
            if alpha > 0.0:
                # SAQ-CQL's penalty, exact over the discrete actions (logsumexp over all n).
                penalty = (torch.logsumexp(all_q_values, dim=1, keepdim=True) - current_q_values).mean()
                penalties.append(penalty.item())
                loss = loss + alpha * penalty
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))
        self.logger.record("train/conservative_alpha", alpha)
        if penalties:
            self.logger.record("train/conservative_penalty", np.mean(penalties))


def warm_started_dqn(
    env: VecEnv | gym.Env[Any, Any],
    algo: Any,
    critic: int | None = None,
    conservative_alpha: float = 0.0,
    conservative_steps: int = 0,
    double_q: bool = True,
    **dqn_kwargs: Any,
) -> SAQDQN:
    """A :class:`SAQDQN` on ``env`` whose Q-network starts as ``algo``'s (see :func:`warm_start_dqn`).

    Hyperparameters default to the SAQ-CQL offline presets where DQN has the same knob (lr 3e-4,
    batch 256, gamma 0.99, hard target copy every 200 steps, Adam weight decay 1e-3), one update
    per env step, and a small constant exploration rate (0.05): a warm-started agent needs no
    uniform-random phase. Every keyword overrides; ``policy_kwargs`` entries are merged over
    :func:`dqn_policy_kwargs`.
    """
    policy_kwargs = dqn_policy_kwargs(algo, critic)
    policy_kwargs["optimizer_kwargs"] = {"weight_decay": 1e-3}
    policy_kwargs.update(dqn_kwargs.pop("policy_kwargs", None) or {})
    settings: dict[str, Any] = dict(
        learning_rate=3e-4,
        batch_size=256,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        target_update_interval=200,
        learning_starts=1000,
        buffer_size=100_000,
        exploration_initial_eps=0.05,
        exploration_final_eps=0.05,
        device="cpu",
    )
    settings.update(dqn_kwargs)
    dqn = SAQDQN(
        "MlpPolicy",
        env,
        conservative_alpha=conservative_alpha,
        conservative_steps=conservative_steps,
        double_q=double_q,
        policy_kwargs=policy_kwargs,
        **settings,
    )
    return warm_start_dqn(dqn, algo, critic)  # type: ignore[return-value]


def add_offline_transitions(model: Any, transitions: Any, codes: np.ndarray) -> int:
    """Put relabeled offline transitions into an off-policy SB3 model's replay buffer.

    Keeping the offline data next to the online data ("mixed" replay) is a common remedy for
    the collapse at the start of offline-to-online fine-tuning: the first online batches are
    then not made only of the few, highly correlated transitions collected so far. Terminals
    and timeouts stay apart (SB3 bootstraps through ``TimeLimit.truncated``). The buffer is
    FIFO: make ``buffer_size`` at least ``len(transitions)`` plus the online steps to keep them
    all. With ``n_envs > 1`` the rows are spread over the env columns and the last
    ``len(transitions) % n_envs`` are left out. Returns the number of transitions added.

    Args:
        model: an SB3 off-policy model (``DQN``, :class:`SAQDQN`, ``QRDQN``) built on the env.
        transitions: a :class:`~saq_wrappers.transitions.Transitions`.
        codes: ``(N,)`` int codes of its actions (``relabel(transitions, quantizer).codes``).
    """
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        raise DataError(f"{type(model).__name__} has no replay buffer: expected an off-policy model (DQN, QRDQN)")
    codes = np.asarray(codes)
    if codes.shape != (len(transitions),) or not np.issubdtype(codes.dtype, np.integer):
        raise DataError(f"codes must be ({len(transitions)},) integers, got {codes.shape} {codes.dtype}")
    n_actions = int(model.action_space.n)
    if codes.size and (codes.min() < 0 or codes.max() >= n_actions):
        raise SpaceMismatchError(f"codes lie in [{codes.min()}, {codes.max()}], the model has {n_actions} actions")
    if tuple(transitions.observation_shape) != tuple(model.observation_space.shape):
        raise SpaceMismatchError(
            f"dataset observations have shape {transitions.observation_shape}, the model's "
            f"{model.observation_space.shape}"
        )
    n_envs = buffer.n_envs
    usable = len(transitions) - len(transitions) % n_envs
    dones = np.logical_or(transitions.terminals, transitions.timeouts)
    for start in range(0, usable, n_envs):
        rows = slice(start, start + n_envs)
        buffer.add(
            transitions.observations[rows],
            transitions.next_observations[rows],
            codes[rows].reshape(n_envs, 1),
            transitions.rewards[rows],
            dones[rows],
            [{"TimeLimit.truncated": bool(t) and not bool(d)}
             for t, d in zip(transitions.timeouts[rows], transitions.terminals[rows])],
        )
    return usable
