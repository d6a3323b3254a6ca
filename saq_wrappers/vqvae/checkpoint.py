"""The quantizer's checkpoint: one safetensors file with the weights and JSON metadata.

Layout (format :data:`CHECKPOINT_FORMAT`): tensors ``model.<name>`` (the
:class:`~saq_wrappers.vqvae.model.StateConditionedVQVAE` state dict) and metadata ``kind``
(:data:`CHECKPOINT_KIND`), ``format``, ``library_version``, ``observation_space``,
``action_space``, ``config`` (the :class:`~saq_wrappers.vqvae.config.QuantizerConfig` fields),
``normalization`` (:meth:`~saq_wrappers.vqvae.normalization.Normalizer.to_json`),
``fit_summary`` and ``user_metadata``. No pickle: a checkpoint from an untrusted source can be
read safely, and everything in it is checked before use.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from saq_wrappers.action_set import box_from_dict, box_to_dict
from saq_wrappers.errors import CheckpointError, DataError
from saq_wrappers.io import (
    check_checkpoint_format,
    check_model_size,
    check_stored_shapes,
    load_checkpoint_tensors,
    read_checkpoint_header,
    save_checkpoint,
)
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.vqvae.config import QuantizerConfig
from saq_wrappers.vqvae.model import StateConditionedVQVAE
from saq_wrappers.vqvae.normalization import Normalizer

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KIND",
    "QuantizerCheckpoint",
    "checked_model_state",
    "read_quantizer_checkpoint",
    "write_quantizer_checkpoint",
]

#: Checkpoint ``kind`` written by :meth:`VQVAEQuantizer.save`.
CHECKPOINT_KIND = "vqvae_quantizer"
#: Version of the checkpoint layout (tensor names + metadata keys). Only this format is read,
#: whatever library version wrote it (:func:`saq_wrappers.io.check_checkpoint_format`).
CHECKPOINT_FORMAT = 1
#: Prefix of the model's tensor names in the file.
_MODEL_PREFIX = "model."


@dataclass(frozen=True)
class QuantizerCheckpoint:
    """What :func:`read_quantizer_checkpoint` found, every part checked."""

    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    config: QuantizerConfig
    normalizer: Normalizer
    tensors: dict[str, torch.Tensor]
    fit_summary: dict[str, Any] | None
    user_metadata: dict[str, Any]
    acting: ModeAveraging | None = None


def write_quantizer_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: StateConditionedVQVAE,
    config: QuantizerConfig,
    observation_space: gym.spaces.Box,
    action_space: gym.spaces.Box,
    normalizer: Normalizer,
    fit_summary: dict[str, Any] | None,
    user_metadata: dict[str, Any],
    acting: ModeAveraging | None = None,
) -> None:
    """Write one checkpoint atomically (:func:`saq_wrappers.io.save_checkpoint`, which also
    records ``library_version``).

    Raises:
        DataError: ``user_metadata`` is not JSON-serialisable or is nested deeper than
            :data:`~saq_wrappers.io.MAX_JSON_DEPTH` (nothing is written).
    """
    config_json = asdict(config)
    config_json["hidden_sizes"] = list(config.hidden_sizes)
    metadata = {
        "kind": CHECKPOINT_KIND,
        "format": CHECKPOINT_FORMAT,
        "observation_space": box_to_dict(observation_space),
        "action_space": box_to_dict(action_space),
        "config": config_json,
        "normalization": normalizer.to_json(),
        "fit_summary": fit_summary,
        "user_metadata": user_metadata,
    }
    if acting is not None:  # absent otherwise, so files without it read as before
        metadata["acting"] = {"mode_averaging": acting.to_dict()}
    tensors = {_MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    save_checkpoint(path, tensors, metadata)


def read_quantizer_checkpoint(path: str | os.PathLike[str]) -> QuantizerCheckpoint:
    """Read a checkpoint written by :func:`write_quantizer_checkpoint`, checking everything
    its header claims before any tensor is loaded or any module is built.

    In order: kind and format; spaces and config (sizes within
    :class:`~saq_wrappers.vqvae.config.QuantizerConfig`'s bounds); the tensor names and shapes
    the config implies against those the file stores (so a small file cannot make the loader
    allocate a large model); then the tensors and the normalization statistics.

    Raises:
        CheckpointError: the file is missing, unreadable, of another kind or format, its
            metadata is malformed or out of range, or its header does not describe its tensors.
    """
    header = read_checkpoint_header(path, CHECKPOINT_KIND)
    metadata = header.metadata
    where = str(path)
    check_checkpoint_format(header, metadata.get("format"), CHECKPOINT_FORMAT)
    try:
        observation_space = box_from_dict(metadata["observation_space"], "observation_space")
        action_space = box_from_dict(metadata["action_space"], "action_space")
        config_json = dict(metadata["config"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(
            f"{where!r} has malformed {CHECKPOINT_KIND} metadata ({error})"
        ) from error
    fields = set(QuantizerConfig.__dataclass_fields__)
    if set(config_json) != fields:
        raise CheckpointError(
            f"{where!r} config keys {sorted(config_json)} differ from the expected {sorted(fields)}"
        )
    if len(action_space.shape) != 1:
        raise CheckpointError(
            f"{where!r} has malformed {CHECKPOINT_KIND} metadata (action_space has shape "
            f"{action_space.shape}, expected (act_dim,))"
        )
    obs_dim = int(np.prod(observation_space.shape, dtype=np.int64))
    act_dim = int(action_space.shape[0])
    try:
        config = QuantizerConfig.checked(**config_json)
        state = config.model_state(obs_dim, act_dim)
        check_model_size(state, "the VQ-VAE")
    except (DataError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{where!r} has malformed {CHECKPOINT_KIND} metadata (config: {error})"
        ) from error
    expected = {_MODEL_PREFIX + name: shape for name, shape in state.items()}
    check_stored_shapes(header, expected, config.describe_sizes(obs_dim, act_dim))
    try:
        normalizer = Normalizer.from_json(metadata.get("normalization"), obs_dim, act_dim)
    except CheckpointError as error:
        raise CheckpointError(f"{where!r}: {error}") from error
    summary = metadata.get("fit_summary")
    user_metadata = metadata.get("user_metadata", {})
    if not isinstance(user_metadata, dict):
        raise CheckpointError(
            f"{where!r} user_metadata must be a JSON object, got {type(user_metadata).__name__}"
        )
    acting = None
    if metadata.get("acting") is not None:
        try:
            acting = ModeAveraging.from_dict(dict(metadata["acting"])["mode_averaging"])
        except (DataError, KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{where!r} has malformed acting settings ({error}); expected "
                                  '{"mode_averaging": {...ModeAveraging fields...}}') from error
    return QuantizerCheckpoint(
        observation_space=observation_space,
        action_space=action_space,
        config=config,
        normalizer=normalizer,
        tensors=load_checkpoint_tensors(header),
        fit_summary=summary if isinstance(summary, dict) else None,
        user_metadata=user_metadata,
        acting=acting,
    )


def checked_model_state(
    tensors: dict[str, torch.Tensor], model: StateConditionedVQVAE, where: str
) -> dict[str, torch.Tensor]:
    """The state dict for ``model`` out of a checkpoint's ``tensors`` (whose names and shapes
    :func:`read_quantizer_checkpoint` has checked), after checking that every dtype is
    ``model``'s and every value finite.

    Raises:
        CheckpointError: a tensor is of another dtype or holds NaN or inf.
    """
    state = {}
    for name, reference in model.state_dict().items():
        tensor = tensors[_MODEL_PREFIX + name]
        if tensor.dtype != reference.dtype:
            raise CheckpointError(
                f"{where!r} tensor {_MODEL_PREFIX + name!r} is {tensor.dtype}, "
                f"expected {reference.dtype}"
            )
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{where!r} tensor {_MODEL_PREFIX + name!r} holds NaN or inf")
        state[name] = tensor
    return state
