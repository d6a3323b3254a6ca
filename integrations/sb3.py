"""Stable-Baselines3: online (fine-)tuning of discrete agents through :class:`SAQActionWrapper`.

``SAQActionWrapper(env, action_set)`` turns a continuous-control env into ``Discrete(n)``, so
SB3's discrete algorithms apply unchanged: ``DQN``, sb3-contrib's ``QRDQN``, and sb3-contrib's
``MaskablePPO``, which reads the wrapper's ``action_masks()`` so ARQ's dropped candidates
(likelihood below ``eps``) are never chosen.

The SAQ paper leaves online fine-tuning open (SAQ section 6: it is "not clear the best way to
adopt our method in the online finetuning setting"). This module makes one answer a supported,
measured path:

1. **Warm start.** :func:`warm_started_dqn` builds an SB3 DQN whose Q-network *is* the Q-network
   of a trained d3rlpy SAQ-CQL (``DiscreteCQL``) or SAQ-IQL (:class:`DiscreteIQL`, one of its
   critics) model: same ``K`` outputs, same MLP (``net_arch`` and activation read from the d3rlpy
   encoder), and the same observation normalization — d3rlpy's ``StandardObservationScaler``
   becomes an explicit :class:`StandardizeObservations` features extractor computing
   ``(x - mean) / (std + eps)`` with d3rlpy's own float32 statistics, so before any online
   update the DQN's Q-values are d3rlpy's bit for bit and its greedy actions are the offline
   policy's. Weights are copied, not shared; the optimizer state starts fresh.
2. **Conservative start (optional).** :class:`SAQDQN` is SB3's DQN with a CQL-style term
   ``alpha_t * E[logsumexp_k Q(s, k) - Q(s, a)]`` on replayed batches (the SAQ-CQL penalty,
   exact over the ``K`` codes) whose weight decays linearly from ``conservative_alpha`` to 0
   over the first ``conservative_steps`` env steps, and an optional double-DQN target (what
   d3rlpy's ``DiscreteCQL`` trains with).
3. **Frozen quantizer.** The action set is never updated online: the discretization the
   offline Q-values are indexed by must mean the same actions after fine-tuning. Codes the
   offline data never used stay decodable actions (the decoder maps ``(s, k)`` to *some*
   action for every ``k``); their Q-values come from the offline net, where SAQ-CQL pushed them
   down (pessimistic) without any data to pull them back, so the agent tries them only through
   exploration, and they are learned online from then on like any other index.

Example:
    >>> import gymnasium as gym                                          # doctest: +SKIP
    >>> from saq_wrappers.integrations.sb3 import make_saq_vec_env, warm_started_dqn
    >>> venv = make_saq_vec_env("Pendulum-v1", quantizer, n_envs=1, seed=0)
    >>> dqn = warm_started_dqn(venv, cql, conservative_alpha=1.0, conservative_steps=5_000)
    >>> dqn.learn(20_000)

The offline-to-online recipe (offline SAQ-CQL, then online DQN from it, next to DQN from
scratch and the offline policy alone, return vs env steps) is :func:`run_finetune`, also
``saq finetune`` and ``benchmarks/finetune.py``.

SB3 model files (``.zip``) are SB3's own format and hold pickled objects: load only files you
trust. Nothing here reads pickles itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from sb3_contrib import QRDQN, MaskablePPO
from sb3_contrib.common.maskable.utils import is_masking_supported
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch import nn

from saq_wrappers.action_set import ActionSet
from saq_wrappers.errors import DataError, NotFittedError, SpaceMismatchError
from saq_wrappers.evaluation import EvaluationResult, evaluate
from saq_wrappers.wrappers import SAQActionWrapper

__all__ = [
    "AGENTS",
    "SAQDQN",
    "EvaluationCurveCallback",
    "FinetuneConfig",
    "StandardizeObservations",
    "add_offline_transitions",
    "build_parser",
    "d3rlpy_q_network",
    "dqn_policy_kwargs",
    "make_agent",
    "make_saq_env",
    "make_saq_vec_env",
    "run",
    "run_finetune",
    "sb3_policy",
    "warm_start_dqn",
    "warm_started_dqn",
]

EnvSource = str | Callable[[], gym.Env[Any, Any]]


# ------------------------------------------------------------------------------------- envs
def _make_base_env(env: EnvSource) -> gym.Env[Any, Any]:
    if isinstance(env, str):
        return gym.make(env)
    if callable(env):
        made = env()
        if not isinstance(made, gym.Env):
            raise TypeError(f"the env factory returned {type(made).__name__}, expected a gymnasium.Env")
        return made
    raise TypeError(f"env must be a Gymnasium env id or a function returning an env, got {type(env).__name__}")


def make_saq_env(env: EnvSource, action_set: ActionSet) -> SAQActionWrapper:
    """One ``SAQActionWrapper(base_env, action_set)`` from an env id or an env factory."""
    return SAQActionWrapper(_make_base_env(env), action_set)


def make_saq_vec_env(
    env: EnvSource,
    action_set: ActionSet,
    n_envs: int = 1,
    seed: int | None = None,
    vec_env_cls: type[VecEnv] = DummyVecEnv,
    outer_wrapper: Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]] | None = None,
) -> VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` copies of ``SAQActionWrapper(env, action_set)``.

    Built with SB3's ``make_vec_env``: each sub-env is ``gym.make(env)`` (or ``env()``), then
    SB3's ``Monitor`` (episode returns for SB3's logger, on the *continuous* env), then the SAQ
    wrapper, then ``outer_wrapper`` if given. All sub-envs share ``action_set`` (one frozen
    quantizer; with ``SubprocVecEnv`` each process gets a copy). ``env_method("action_masks")``
    reaches the wrapper, which is what sb3-contrib's maskable algorithms call.
    """
    if n_envs < 1:
        raise DataError(f"n_envs must be >= 1, got {n_envs}")

    def wrap(base: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        wrapped: gym.Env[Any, Any] = SAQActionWrapper(base, action_set)
        return outer_wrapper(wrapped) if outer_wrapper is not None else wrapped

    # Fail here, with the wrapper's own message, rather than inside SB3's env construction.
    probe = _make_base_env(env)
    try:
        SAQActionWrapper(probe, action_set)
    finally:
        probe.close()
    env_id: Any = env if isinstance(env, str) else (lambda: _make_base_env(env))
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, vec_env_cls=vec_env_cls, wrapper_class=wrap)


# ---------------------------------------------------------------------- normalization layer
class StandardizeObservations(BaseFeaturesExtractor):
    """SB3 features extractor computing d3rlpy's ``StandardObservationScaler`` exactly.

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
        """Replace the statistics in place (used by :func:`warm_start_dqn`)."""
        dim = self.mean.shape[0]
        self.mean.copy_(self._stat(mean, dim, 0.0, "mean"))
        self.std.copy_(self._stat(std, dim, 1.0, "std"))
        self.eps = float(eps)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = self.flatten(observations)
        return (x - self.mean) / (self.std + self.eps)


# ---------------------------------------------------------------------- reading d3rlpy nets
@dataclasses.dataclass(frozen=True)
class _D3rlpyQNet:
    """The pieces of a d3rlpy discrete Q-function an SB3 ``QNetwork`` needs."""

    linears: list[nn.Linear]
    activation: type[nn.Module]
    n_actions: int
    obs_dim: int
    mean: np.ndarray | None
    std: np.ndarray | None
    eps: float

    @property
    def net_arch(self) -> list[int]:
        return [layer.out_features for layer in self.linears[:-1]]


def d3rlpy_q_network(algo: Any, critic: int | None = None) -> _D3rlpyQNet:
    """Read the MLP, activation and observation scaler of a d3rlpy discrete Q-learning model.

    Works for d3rlpy's ``DiscreteCQL``/``DQN``/``DoubleDQN`` and our ``DiscreteIQL`` (any
    algorithm whose impl exposes ``q_function``, a ``ModuleList`` of mean Q-functions, built
    with a plain ``VectorEncoderFactory``: Linear layers and one activation, no batch/layer norm
    or dropout).

    Args:
        algo: a built (trained or loaded) d3rlpy algorithm.
        critic: which member of a Q ensemble to read; required when ``n_critics > 1`` (the
            ensemble's mean or min is not one MLP). SAQ-IQL's preset has 2 critics.

    Raises:
        NotFittedError: ``algo`` is not built yet (no ``fit``/``build_with_dataset``/load).
        DataError: unsupported network, scaler, or ensemble without ``critic``.
    """
    impl = getattr(algo, "impl", None)
    if impl is None:
        raise NotFittedError(
            f"{type(algo).__name__} has no networks yet: train it, call build_with_dataset, or load it first"
        )
    q_funcs = getattr(impl, "q_function", None)
    if not isinstance(q_funcs, nn.ModuleList) or len(q_funcs) == 0:
        raise DataError(f"{type(algo).__name__} has no discrete Q-function ensemble (impl.q_function)")
    if critic is None:
        if len(q_funcs) > 1:
            raise DataError(
                f"{type(algo).__name__} has {len(q_funcs)} critics: pass critic=i (0..{len(q_funcs) - 1}); "
                "an SB3 DQN holds one Q-network, not an ensemble mean/min"
            )
        critic = 0
    if not 0 <= critic < len(q_funcs):
        raise DataError(f"critic must be in [0, {len(q_funcs)}), got {critic}")
    q_func = q_funcs[critic]
    encoder, head = getattr(q_func, "encoder", None), getattr(q_func, "_fc", None)
    layers = getattr(encoder, "_layers", None)
    if not isinstance(head, nn.Linear) or not isinstance(layers, nn.Sequential):
        raise DataError(
            f"unsupported Q-function {type(q_func).__name__}: expected d3rlpy's mean Q-function on a "
            "VectorEncoder (q_func_factory=MeanQFunctionFactory, encoder_factory=VectorEncoderFactory)"
        )
    children = list(layers)
    linears = children[0::2]
    activations = children[1::2]
    if (
        len(children) % 2
        or not all(isinstance(layer, nn.Linear) for layer in linears)
        or any(isinstance(act, (nn.Linear, nn.BatchNorm1d, nn.LayerNorm, nn.Dropout)) for act in activations)
        or len({type(act) for act in activations}) != 1
    ):
        raise DataError(
            "unsupported encoder layers "
            f"{[type(c).__name__ for c in children]}: expected Linear/activation pairs with one "
            "activation and no batch norm, layer norm or dropout"
        )
    scaler = getattr(algo.config, "observation_scaler", None)
    mean = std = None
    eps = 0.0
    if scaler is not None:
        import d3rlpy

        if not isinstance(scaler, d3rlpy.preprocessing.StandardObservationScaler):
            raise DataError(
                f"observation scaler {type(scaler).__name__} is not supported: expected d3rlpy's "
                "StandardObservationScaler (the SAQ presets' scaler) or none"
            )
        if scaler.mean is None or scaler.std is None:
            raise NotFittedError("the d3rlpy observation scaler has no statistics yet: train or build the model first")
        mean, std, eps = np.asarray(scaler.mean), np.asarray(scaler.std), float(scaler.eps)
    return _D3rlpyQNet(
        linears=[*linears, head],
        activation=type(activations[0]),
        n_actions=head.out_features,
        obs_dim=linears[0].in_features,
        mean=mean,
        std=std,
        eps=eps,
    )


def dqn_policy_kwargs(algo: Any, critic: int | None = None) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` for a DQN/QRDQN whose network has ``algo``'s Q-network shape.

    ``net_arch`` and ``activation_fn`` come from the d3rlpy encoder (SAQ-CQL preset: 512-512
    ReLU; SAQ-IQL: 256-256), and the features extractor is :class:`StandardizeObservations`
    holding ``algo``'s observation scaler statistics. Also useful for a from-scratch baseline
    that differs from the warm-started one only by its initial weights.
    """
    net = d3rlpy_q_network(algo, critic)
    extractor_kwargs: dict[str, Any] = {"eps": net.eps}
    if net.mean is not None and net.std is not None:
        extractor_kwargs.update(mean=net.mean.tolist(), std=net.std.tolist())
    return {
        "net_arch": net.net_arch,
        "activation_fn": net.activation,
        "features_extractor_class": StandardizeObservations,
        "features_extractor_kwargs": extractor_kwargs,
    }


def warm_start_dqn(dqn: DQN, algo: Any, critic: int | None = None) -> DQN:
    """Copy ``algo``'s Q-network (weights and observation scaler) into ``dqn`` and its target.

    ``dqn`` must have been built with :func:`dqn_policy_kwargs` ``(algo)`` (or an equal
    architecture with a :class:`StandardizeObservations` extractor); the copy is exact, so
    ``dqn.predict(obs, deterministic=True)`` equals ``algo.predict(obs)`` before any update.
    Both the online and the target network receive d3rlpy's *online* Q-network (SB3's DQN
    starts with equal networks; d3rlpy's target may lag behind its online net). Returns ``dqn``.

    Raises:
        SpaceMismatchError: different number of actions or observation size.
        DataError: ``dqn``'s architecture or features extractor does not match.
    """
    net = d3rlpy_q_network(algo, critic)
    if not isinstance(dqn, DQN):
        raise DataError(f"warm_start_dqn needs a stable_baselines3 DQN, got {type(dqn).__name__}")
    n_actions = int(dqn.action_space.n)  # type: ignore[union-attr]
    if n_actions != net.n_actions:
        raise SpaceMismatchError(
            f"the DQN has {n_actions} actions, the d3rlpy model has K={net.n_actions} outputs: wrap the env "
            "with the quantizer the offline model was trained on"
        )
    for q_network in (dqn.q_net, dqn.q_net_target):
        extractor = q_network.features_extractor
        if not isinstance(extractor, StandardizeObservations):
            raise DataError(
                f"the DQN's features extractor is {type(extractor).__name__}: build it with "
                "policy_kwargs=dqn_policy_kwargs(algo) so it normalizes observations like d3rlpy"
            )
        if extractor.features_dim != net.obs_dim:
            raise SpaceMismatchError(
                f"the DQN sees {extractor.features_dim} observation features, the d3rlpy model {net.obs_dim}"
            )
        targets = [m for m in q_network.q_net if isinstance(m, nn.Linear)]
        activations = {type(m) for m in q_network.q_net if not isinstance(m, nn.Linear)}
        shapes = [tuple(m.weight.shape) for m in targets]
        expected = [tuple(m.weight.shape) for m in net.linears]
        if shapes != expected or activations != {net.activation}:
            raise DataError(
                f"the DQN's network (layers {shapes}, activations {sorted(a.__name__ for a in activations)}) "
                f"differs from the d3rlpy model's (layers {expected}, activation {net.activation.__name__}): "
                "build it with policy_kwargs=dqn_policy_kwargs(algo)"
            )
        with torch.no_grad():
            if net.mean is not None and net.std is not None:
                extractor.set_statistics(net.mean, net.std, net.eps)
            else:
                extractor.set_statistics(np.zeros(net.obs_dim), np.ones(net.obs_dim), 0.0)
            for source, target in zip(net.linears, targets):
                target.weight.copy_(source.weight.detach().to(target.weight.device))
                target.bias.copy_(source.bias.detach().to(target.bias.device))
    return dqn


# ------------------------------------------------------------------------------- agents
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


#: Agent names accepted by :func:`make_agent`.
AGENTS: dict[str, type[BaseAlgorithm]] = {"dqn": SAQDQN, "qrdqn": QRDQN, "maskable_ppo": MaskablePPO}


def make_agent(name: str, env: VecEnv | gym.Env[Any, Any], **kwargs: Any) -> BaseAlgorithm:
    """``SAQDQN`` (``"dqn"``), sb3-contrib ``QRDQN`` or ``MaskablePPO`` with ``"MlpPolicy"`` on ``env``.

    ``MaskablePPO`` needs ``env`` to expose ``action_masks()`` (every ``SAQActionWrapper`` does),
    and then never samples an index the action set marks invalid (ARQ's dropped candidates).
    DQN and QRDQN do not read masks: with an ARQ sampler they may pick dropped candidates, which
    the wrapper executes as decoded (see :mod:`saq_wrappers.wrappers`). ``kwargs`` go to the
    algorithm (``device`` defaults to ``"cpu"``).
    """
    key = name.lower().replace("-", "_")
    if key not in AGENTS:
        raise DataError(f"unknown agent {name!r}: expected one of {', '.join(AGENTS)}")
    if key == "maskable_ppo" and not is_masking_supported(env):
        raise DataError("MaskablePPO needs an env with action_masks(): wrap it with SAQActionWrapper")
    kwargs.setdefault("device", "cpu")
    return AGENTS[key]("MlpPolicy", env, **kwargs)


def sb3_policy(
    model: BaseAlgorithm, env: gym.Env[Any, Any] | None = None, deterministic: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """A batch policy for :func:`saq_wrappers.evaluation.evaluate` from an SB3 model.

    For ``MaskablePPO`` pass the (wrapped) ``env`` being evaluated: its ``action_masks()`` at
    the current observation is given to ``predict``.
    """
    maskable = isinstance(model, MaskablePPO)
    if maskable and env is None:
        raise DataError("a MaskablePPO policy needs env= (the wrapped env it acts in) to read action masks")

    def act(observations: np.ndarray) -> np.ndarray:
        if maskable:
            masks = np.asarray(env.get_wrapper_attr("action_masks")())[None]  # type: ignore[union-attr]
            actions, _ = model.predict(observations, deterministic=deterministic, action_masks=masks)
        else:
            actions, _ = model.predict(observations, deterministic=deterministic)
        return np.asarray(actions).reshape(len(observations))

    return act


class EvaluationCurveCallback(BaseCallback):
    """Evaluate the agent greedily every ``eval_freq`` env steps: return vs env steps.

    Uses :func:`saq_wrappers.evaluation.evaluate` on ``eval_env`` (a wrapped env of its own,
    episode ``i`` seeded ``seed + i`` every time, so points differ only by the agent). The first
    point is taken before any update (env step 0) — for a warm-started agent, the offline
    policy's return — and the last at the end of training. ``curve`` holds dicts with
    ``env_steps``, ``mean_return``, ``std_return``, ``seconds`` (training wall-clock so far,
    evaluation excluded).
    """

    def __init__(self, eval_env: gym.Env[Any, Any], eval_freq: int, n_episodes: int = 5, seed: int = 10_000,
                 verbose: int = 0) -> None:
        super().__init__(verbose)
        if eval_freq < 1:
            raise DataError(f"eval_freq must be >= 1 env step, got {eval_freq}")
        self.eval_env = eval_env
        self.eval_freq = int(eval_freq)
        self.n_episodes = int(n_episodes)
        self.seed = int(seed)
        self.curve: list[dict[str, float]] = []
        self._next = 0
        self._train_seconds = 0.0
        self._started = 0.0

    def evaluate_now(self) -> EvaluationResult:
        policy = sb3_policy(self.model, self.eval_env, deterministic=True)
        result = evaluate(policy, self.eval_env, n_episodes=self.n_episodes, seed=self.seed, progress=False)
        self.curve.append({"env_steps": int(self.num_timesteps), "mean_return": result.mean_return,
                           "std_return": result.std_return, "seconds": self._train_seconds})
        if self.verbose:
            print(f"  step {self.num_timesteps:>7d}: return {result.mean_return:9.1f} ± {result.std_return:.1f}")
        return result

    def _on_training_start(self) -> None:
        self._next = self.num_timesteps + self.eval_freq
        self.evaluate_now()
        self._started = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._train_seconds += time.perf_counter() - self._started
            self.evaluate_now()
            self._next += self.eval_freq
            self._started = time.perf_counter()
        return True

    def _on_training_end(self) -> None:
        self._train_seconds += time.perf_counter() - self._started
        if not self.curve or self.curve[-1]["env_steps"] != self.num_timesteps:
            self.evaluate_now()


# ------------------------------------------------------------------- offline-to-online recipe
#: The arms :func:`run_finetune` can compare (the offline policy alone is always measured).
ARMS = ("finetune", "finetune-plain", "finetune-mixed", "scratch")
_ARM_LABELS = {
    "finetune": "DQN from SAQ-CQL (+ decaying conservative term)",
    "finetune-plain": "DQN from SAQ-CQL (plain DQN loss)",
    "finetune-mixed": "DQN from SAQ-CQL (+ conservative term, offline data in replay)",
    "scratch": "DQN from scratch (same wrapper, same net)",
}


@dataclasses.dataclass
class FinetuneConfig:
    """Options of :func:`run_finetune` (and of ``saq finetune``).

    Defaults fit a 2-core CPU in about 5-10 minutes on the built-in Pendulum expert data.
    """

    dataset: str = "builtin:pendulum-expert"
    zoo_model: str | None = None
    env_id: str | None = None
    dataset_steps: int = 50_000
    noise_std: float = 0.5
    n_codes: int = 16
    quantizer_steps: int = 3000
    offline_steps: int = 3000
    cql_alpha: float = 10.0
    online_steps: int = 8000
    eval_every: int = 1000
    eval_episodes: int = 10
    conservative_alpha: float = 1.0
    conservative_steps: int = 5000
    learning_starts: int = 1000
    scratch_exploration_fraction: float = 0.2
    arms: tuple[str, ...] = ("finetune", "finetune-plain", "finetune-mixed", "scratch")
    seed: int = 0
    output_dir: str | None = None
    name: str = "finetune"
    progress: bool = True

    @classmethod
    def quick(cls, **overrides: Any) -> FinetuneConfig:
        """A smoke-test sized run (about a minute)."""
        settings: dict[str, Any] = dict(
            quantizer_steps=500, offline_steps=500, online_steps=1200, eval_every=400,
            eval_episodes=2, conservative_steps=600, learning_starts=200, dataset_steps=5000,
            name="finetune_quick",
        )
        settings.update(overrides)
        return cls(**settings)


def _load_offline_data(config: FinetuneConfig) -> Any:
    """The dataset: built-in, a local Minari id/path, or generated from an SB3 zoo model."""
    from saq_wrappers.integrations.d3rlpy.quickstart import load_dataset

    if config.zoo_model is None:
        return load_dataset(config.dataset, progress=config.progress)
    if config.env_id is None:
        raise DataError("--zoo-model needs --env (the Gymnasium id the model acts in, e.g. Hopper-v5)")
    import hashlib

    from saq_wrappers.integrations.generate import generate_dataset

    from saq_wrappers.experts import default_cache_dir

    model_file = Path(config.zoo_model)
    if not model_file.is_file():
        raise DataError(f"{model_file}: no such SB3 model file")
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()[:10]
    env_name = config.env_id.split("-")[0].lower()
    # Minari ids allow no '.' in the name: the noise level is written as e.g. 0p5
    noise = f"{config.noise_std:g}".replace(".", "p").replace("-", "m")
    dataset_id = f"saq-finetune/{env_name}-medium-{digest}-s{config.dataset_steps}-n{noise}-v0"
    root = default_cache_dir() / "minari"
    folder = root / dataset_id
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        generate_dataset(config.zoo_model, config.env_id, dataset_id, "medium", n_steps=config.dataset_steps,
                         noise_std=config.noise_std, seed=config.seed, root=root, progress=config.progress)
    return load_dataset(str(folder), progress=config.progress)


def _output_folder(config: FinetuneConfig) -> Path:
    if config.output_dir is not None:
        folder = Path(config.output_dir)
    else:
        folder = Path("saq_runs") / f"finetune-{time.strftime('%Y%m%d-%H%M%S')}"
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        from saq_wrappers.errors import OutputPathError

        raise OutputPathError(f"cannot create output folder {str(folder)!r}: {str(parent)!r} does not exist")
    folder.mkdir(exist_ok=True)
    return folder


def run_finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Offline SAQ-CQL, then online DQN from it; curves of return vs env steps.

    Steps: fit the VQ-VAE quantizer on the dataset and relabel it to ``K`` codes; train d3rlpy
    ``DiscreteCQL`` with the SAQ-CQL preset for ``offline_steps`` updates; evaluate it (the
    *offline policy alone*); then, on ``SAQActionWrapper(env, quantizer)`` with the quantizer
    frozen, train for ``online_steps`` env steps each arm of ``config.arms``:

    - ``finetune``: :func:`warm_started_dqn` from the SAQ-CQL model with the decaying
      conservative term (``conservative_alpha`` -> 0 over ``conservative_steps``);
    - ``finetune-plain``: the same warm start with SB3's plain DQN loss;
    - ``finetune-mixed``: ``finetune`` with the offline transitions (relabeled to codes) put in
      the replay buffer first (:func:`add_offline_transitions`);
    - ``scratch``: the same :class:`SAQDQN` (same net, observation normalization and
      hyperparameters) from random weights with SB3's usual epsilon schedule
      (1 -> 0.05 over ``scratch_exploration_fraction`` of the run).

    Every arm is evaluated greedily every ``eval_every`` env steps on the same seeded episodes
    (the first point is before any update: for the warm-started arms it equals the offline
    policy's return). Writes ``{name}.json``, ``{name}.md`` and ``{name}.png`` to the output
    folder (atomically) and returns the results.
    """
    import d3rlpy
    from saq_wrappers.integrations.d3rlpy import (
        evaluate_algo,
        saq_cql_config,
        to_discrete_dataset,
    )
    from saq_wrappers.integrations.d3rlpy.training import train_with_budget

    from saq_wrappers.io import atomic_output
    from saq_wrappers.transitions import relabel
    from saq_wrappers.vqvae import VQVAEQuantizer

    unknown = [arm for arm in config.arms if arm not in ARMS]
    if unknown:
        raise DataError(f"unknown arms {unknown}: expected some of {', '.join(ARMS)}")
    if config.online_steps < 1 or config.eval_every < 1:
        raise DataError("online_steps and eval_every must be >= 1")
    folder = _output_folder(config)
    say = print if config.progress else (lambda *_: None)
    started = time.perf_counter()
    load_at_start = os.getloadavg()

    data = _load_offline_data(config)
    env = data.make_env()
    env_maker = data.make_env
    say(f"dataset {data.name}: {len(data.transitions)} transitions, {data.transitions.n_episodes} episodes, "
        f"mean return {float(data.transitions.episode_returns().mean()):.1f}")

    # Offline phase: quantizer (frozen from here on) and SAQ-CQL.
    phase = time.perf_counter()
    quantizer = VQVAEQuantizer(env.observation_space, env.action_space, n_codes=config.n_codes, seed=config.seed)
    quantizer.fit(data.transitions, n_steps=config.quantizer_steps, progress=config.progress)
    relabeled = relabel(data.transitions, quantizer, progress=False)
    dataset = to_discrete_dataset(data.transitions, relabeled)
    quantizer_seconds = time.perf_counter() - phase
    phase = time.perf_counter()
    d3rlpy.seed(config.seed)
    cql = saq_cql_config(alpha=config.cql_alpha).create(device="cpu")
    train_with_budget(cql, dataset, n_steps=config.offline_steps, progress=config.progress, desc="SAQ-CQL offline")
    offline_seconds = time.perf_counter() - phase
    eval_seed = config.seed + 10_000
    offline = evaluate_algo(cql, env, quantizer, n_episodes=config.eval_episodes, seed=eval_seed, progress=False)
    say(f"offline SAQ-CQL: return {offline.mean_return:.1f} ± {offline.std_return:.1f}")

    runs: list[dict[str, Any]] = []
    for arm in config.arms:
        phase = time.perf_counter()
        venv = make_saq_vec_env(env_maker, quantizer, n_envs=1, seed=config.seed)
        common: dict[str, Any] = dict(seed=config.seed, learning_starts=config.learning_starts,
                                      buffer_size=config.online_steps + len(data.transitions))
        if arm == "scratch":
            agent = SAQDQN("MlpPolicy", venv, double_q=True, learning_rate=3e-4, batch_size=256, gamma=0.99,
                           train_freq=1, gradient_steps=1, target_update_interval=200,
                           exploration_initial_eps=1.0, exploration_final_eps=0.05,
                           exploration_fraction=config.scratch_exploration_fraction, device="cpu",
                           policy_kwargs={**dqn_policy_kwargs(cql), "optimizer_kwargs": {"weight_decay": 1e-3}},
                           **common)
        else:
            alpha = 0.0 if arm == "finetune-plain" else config.conservative_alpha
            agent = warm_started_dqn(venv, cql, conservative_alpha=alpha,
                                     conservative_steps=config.conservative_steps, **common)
            if arm == "finetune-mixed":
                add_offline_transitions(agent, data.transitions, relabeled.codes)
        eval_env = SAQActionWrapper(env_maker(), quantizer)
        callback = EvaluationCurveCallback(eval_env, config.eval_every, config.eval_episodes, seed=eval_seed,
                                           verbose=int(config.progress))
        say(f"{arm}: {_ARM_LABELS[arm]}")
        agent.learn(config.online_steps, callback=callback, progress_bar=False)
        curve = callback.curve
        start, final = curve[0]["mean_return"], curve[-1]["mean_return"]
        runs.append({
            "arm": arm,
            "label": _ARM_LABELS[arm],
            "curve": curve,
            "start_return": start,
            "final_return": final,
            "min_return": min(p["mean_return"] for p in curve),
            "max_return": max(p["mean_return"] for p in curve),
            "seconds": time.perf_counter() - phase,
            "updates": int(agent._n_updates),
            "conservative_alpha": float(getattr(agent, "conservative_alpha", 0.0)),
            "conservative_steps": int(getattr(agent, "conservative_steps", 0)),
            "offline_transitions_in_replay": len(data.transitions) if arm == "finetune-mixed" else 0,
        })
        venv.close()
        eval_env.close()

    results: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "dataset": {"name": data.name, "transitions": len(data.transitions),
                    "episodes": data.transitions.n_episodes,
                    "mean_return": float(data.transitions.episode_returns().mean()),
                    "random_return": data.random_return, "expert_return": data.expert_return},
        "quantizer": {"n_codes": config.n_codes, "used_codes": relabeled.stats["used_codes"],
                      "reconstruction_mse": relabeled.stats["mse"], "seconds": quantizer_seconds},
        "offline": {"algo": "SAQ-CQL (d3rlpy DiscreteCQL, saq_cql_config)", "steps": config.offline_steps,
                    "seconds": offline_seconds, "evaluation": offline.to_dict()},
        "runs": runs,
        "total_seconds": time.perf_counter() - started,
        "load_average_at_start": list(load_at_start),
        "load_average_at_end": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    table = finetune_table(results)
    with atomic_output(folder / f"{config.name}.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_output(folder / f"{config.name}.md") as tmp:
        tmp.write_text(table + "\n")
    plot_finetune_curves(results, folder / f"{config.name}.png")
    print("\n" + table)
    say(f"\nwrote {folder / config.name}.json/.md/.png")
    return results


def finetune_table(results: dict[str, Any]) -> str:
    """Markdown: the offline policy, then each arm's return at the start, worst, final."""
    offline = results["offline"]["evaluation"]
    lines = [
        (f"Dataset {results['dataset']['name']} ({results['dataset']['transitions']} transitions, mean return "
        f"{results['dataset']['mean_return']:.1f}); K={results['quantizer']['n_codes']} codes "
        f"({results['quantizer']['used_codes']} used); SAQ-CQL {results['offline']['steps']} updates; "
        f"{results['config']['online_steps']} online env steps; evaluation "
        f"{results['config']['eval_episodes']} seeded episodes per point; load average "
        f"{results['load_average_at_start'][0]:.1f} -> {results['load_average_at_end'][0]:.1f} "
        f"on {results['cpu_count']} CPUs; total {results['total_seconds']:.0f} s."),
        "",
        "| method | return at step 0 | worst point | final return | best point | online time (s) |",
        "|---|---|---|---|---|---|",
        f"| offline SAQ-CQL alone | {offline['mean_return']:.1f} | - | {offline['mean_return']:.1f} | - | - |",
    ]
    for run in results["runs"]:
        lines.append(
            f"| {run['label']} | {run['start_return']:.1f} | {run['min_return']:.1f} | {run['final_return']:.1f} | "
            f"{run['max_return']:.1f} | {run['seconds']:.0f} |"
        )
    lines += ["", "Return vs env steps:", "",
              "| env steps | " + " | ".join(run["arm"] for run in results["runs"]) + " |",
              "|---|" + "---|" * len(results["runs"])]
    steps = sorted({p["env_steps"] for run in results["runs"] for p in run["curve"]})
    for step in steps:
        cells = []
        for run in results["runs"]:
            point = next((p for p in run["curve"] if p["env_steps"] == step), None)
            cells.append("" if point is None else f"{point['mean_return']:.1f}")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_finetune_curves(results: dict[str, Any], path: Path) -> None:
    """Return vs env steps for each arm, the offline policy as a horizontal line (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from saq_wrappers.io import atomic_output

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for run in results["runs"]:
        curve = run["curve"]
        x = [p["env_steps"] for p in curve]
        y = np.array([p["mean_return"] for p in curve])
        s = np.array([p["std_return"] for p in curve])
        axis.plot(x, y, marker="o", markersize=3, label=run["label"])
        axis.fill_between(x, y - s, y + s, alpha=0.15)
    offline = results["offline"]["evaluation"]["mean_return"]
    axis.axhline(offline, color="black", linestyle="--", linewidth=1.2, label="offline SAQ-CQL alone")
    for key, label in (("expert_return", "expert"), ("random_return", "random")):
        value = results["dataset"].get(key)
        if value is not None:
            axis.axhline(value, color="gray", linestyle=":", linewidth=1)
            axis.text(0, value, f" {label}", va="bottom", color="gray", fontsize=8)
    axis.set_xlabel("online env steps")
    axis.set_ylabel(f"greedy return ({results['config']['eval_episodes']} seeded episodes)")
    axis.set_title(f"offline SAQ-CQL -> online DQN: {results['dataset']['name']}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


# ---------------------------------------------------------------------------------- CLI
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``saq finetune`` (added to ``parser`` when given)."""
    parser = parser or argparse.ArgumentParser(
        prog="saq finetune",
        description=(
            "Offline SAQ-CQL (d3rlpy) then online DQN (SB3) through the SAQ wrapper with the "
            "quantizer frozen; curves of return vs env steps for DQN fine-tuned from SAQ-CQL, DQN "
            "from scratch and the offline policy alone (JSON, Markdown, PNG)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = FinetuneConfig()
    parser.add_argument("--dataset", default=d.dataset,
                        help="built-in dataset, local Minari dataset id, or Minari dataset folder")
    parser.add_argument("--zoo-model", default=None,
                        help="SB3 model file: generate a 'medium' dataset from it instead (with --env)")
    parser.add_argument("--env", dest="env_id", default=None, help="Gymnasium id for --zoo-model, e.g. Hopper-v5")
    parser.add_argument("--dataset-steps", type=int, default=d.dataset_steps, help="env steps of the generated dataset")
    parser.add_argument("--noise-std", type=float, default=d.noise_std,
                        help="action noise of the generated medium dataset (half ranges)")
    parser.add_argument("--n-codes", "-k", type=int, default=d.n_codes, help="codebook size K")
    parser.add_argument("--quantizer-steps", type=int, default=d.quantizer_steps, help="VQ-VAE updates")
    parser.add_argument("--offline-steps", type=int, default=d.offline_steps, help="SAQ-CQL updates")
    parser.add_argument("--cql-alpha", type=float, default=d.cql_alpha, help="SAQ-CQL alpha (offline)")
    parser.add_argument("--online-steps", type=int, default=d.online_steps, help="online env steps per arm")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=d.eval_episodes, help="episodes per evaluation point")
    parser.add_argument("--conservative-alpha", type=float, default=d.conservative_alpha,
                        help="initial weight of the online conservative term")
    parser.add_argument("--conservative-steps", type=int, default=d.conservative_steps,
                        help="env steps over which that weight decays to 0")
    parser.add_argument("--learning-starts", type=int, default=d.learning_starts, help="env steps before updates")
    parser.add_argument("--arms", default=",".join(d.arms),
                        help=f"comma-separated arms among {', '.join(ARMS)}")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed")
    parser.add_argument("--output", default=None, help="output folder (default: saq_runs/finetune-TIMESTAMP)")
    parser.add_argument("--name", default=None, help="file stem of the results (default: finetune[_quick])")
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes (about a minute)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``saq finetune`` from parsed arguments."""
    import logging

    import structlog

    # d3rlpy logs every epoch at INFO through structlog; keep warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    defaults = FinetuneConfig.quick() if args.quick else FinetuneConfig()
    explicit = {
        "dataset": args.dataset, "zoo_model": args.zoo_model, "env_id": args.env_id,
        "noise_std": args.noise_std, "n_codes": args.n_codes, "cql_alpha": args.cql_alpha,
        "conservative_alpha": args.conservative_alpha, "seed": args.seed, "output_dir": args.output,
        "progress": not args.quiet, "arms": tuple(a.strip() for a in args.arms.split(",") if a.strip()),
    }
    # Size options: --quick changes their defaults, an explicitly given value still wins.
    parser_defaults = FinetuneConfig()
    for field in ("dataset_steps", "quantizer_steps", "offline_steps", "online_steps", "eval_every",
                  "eval_episodes", "conservative_steps", "learning_starts"):
        value = getattr(args, field)
        explicit[field] = value if value != getattr(parser_defaults, field) else getattr(defaults, field)
    explicit["name"] = args.name or defaults.name
    run_finetune(dataclasses.replace(defaults, **explicit))
    return 0
