"""Reading a d3rlpy discrete Q-network into an SB3 DQN: the offline-to-online weight bridge.

SAQ-CQL (SAQ section 4.2, d3rlpy's ``DiscreteCQL`` on the ``K`` codes) and SAQ-IQL learn a
Q-function ``Q(s, k)`` over the codes of a frozen quantizer; on ``SAQActionWrapper(env,
quantizer)`` an SB3 DQN has the same inputs and outputs. :func:`dqn_policy_kwargs` builds the
DQN with d3rlpy's architecture and :func:`warm_start_dqn` copies the weights and d3rlpy's
observation statistics, so that before any online update the DQN's Q-values are d3rlpy's bit
for bit. The d3rlpy model is read by its attributes (``impl.q_function``, the encoder's layers,
``config.observation_scaler``: d3rlpy's ``StandardObservationScaler`` or a subclass with its
transform, such as the presets' ``RobustStandardObservationScaler``, whose near-constant
dimensions carry the reference spread in ``std``); the d3rlpy library itself is imported only to
recognise its scaler class.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from d3rlpy.preprocessing import StandardObservationScaler
from stable_baselines3 import DQN
from torch import nn

from saq_wrappers.errors import DataError, NotFittedError, SpaceMismatchError

from .features import StandardizeObservations

__all__ = ["d3rlpy_q_network", "dqn_policy_kwargs", "warm_start_dqn"]


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
        if not isinstance(scaler, StandardObservationScaler):
            raise DataError(
                f"observation scaler {type(scaler).__name__} is not supported: expected d3rlpy's "
                "StandardObservationScaler or a subclass computing its transform (the presets' "
                "RobustStandardObservationScaler), or none"
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
