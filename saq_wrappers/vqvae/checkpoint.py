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

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import torch

from saq_wrappers import __version__
from saq_wrappers.action_set import box_from_dict, box_to_dict
from saq_wrappers.errors import CheckpointError, DataError
from saq_wrappers.io import load_checkpoint, save_checkpoint
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
#: Version of the checkpoint layout (tensor names + metadata keys).
CHECKPOINT_FORMAT = 1
#: Prefix of the model's tensor names in the file.
_MODEL_PREFIX = "model."


@dataclass(frozen=True)
class QuantizerCheckpoint:
    """What :func:`read_quantizer_checkpoint` found, with the metadata layout checked."""

    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    config: dict[str, Any]
    normalization: Any
    tensors: dict[str, torch.Tensor]
    fit_summary: dict[str, Any] | None
    user_metadata: dict[str, Any]


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
) -> None:
    """Write one checkpoint atomically (:func:`saq_wrappers.io.save_checkpoint`).

    Raises:
        DataError: ``user_metadata`` is not JSON-serialisable (nothing is written).
    """
    config_json = asdict(config)
    config_json["hidden_sizes"] = list(config.hidden_sizes)
    metadata = {
        "kind": CHECKPOINT_KIND,
        "format": CHECKPOINT_FORMAT,
        "library_version": __version__,
        "observation_space": box_to_dict(observation_space),
        "action_space": box_to_dict(action_space),
        "config": config_json,
        "normalization": normalizer.to_json(),
        "fit_summary": fit_summary,
        "user_metadata": user_metadata,
    }
    try:
        json.dumps(user_metadata)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"quantizer.metadata must be JSON-serialisable (str keys; str, number, bool, "
            f"None, list or dict values): {error}"
        ) from error
    tensors = {_MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    save_checkpoint(path, tensors, metadata)


def read_quantizer_checkpoint(path: str | os.PathLike[str]) -> QuantizerCheckpoint:
    """Read a checkpoint written by :func:`write_quantizer_checkpoint` and check its metadata.

    Raises:
        CheckpointError: the file is missing, unreadable, of another kind or format, or its
            metadata is malformed.
    """
    tensors, metadata = load_checkpoint(path, CHECKPOINT_KIND)
    where = str(path)
    found = metadata.get("format")
    if found != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{where!r} holds a {CHECKPOINT_KIND} checkpoint of format {found!r}; this version "
            f"of saq-wrappers ({__version__}) reads format {CHECKPOINT_FORMAT}"
        )
    try:
        observation_space = box_from_dict(metadata["observation_space"])
        action_space = box_from_dict(metadata["action_space"])
        config = dict(metadata["config"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(
            f"{where!r} has malformed {CHECKPOINT_KIND} metadata ({error})"
        ) from error
    fields = set(QuantizerConfig.__dataclass_fields__)
    if set(config) != fields:
        raise CheckpointError(
            f"{where!r} config keys {sorted(config)} differ from the expected {sorted(fields)}"
        )
    summary = metadata.get("fit_summary")
    user_metadata = metadata.get("user_metadata", {})
    if not isinstance(user_metadata, dict):
        raise CheckpointError(
            f"{where!r} user_metadata must be a JSON object, got {type(user_metadata).__name__}"
        )
    return QuantizerCheckpoint(
        observation_space=observation_space,
        action_space=action_space,
        config=config,
        normalization=metadata.get("normalization"),
        tensors=tensors,
        fit_summary=summary if isinstance(summary, dict) else None,
        user_metadata=user_metadata,
    )


def checked_model_state(
    tensors: dict[str, torch.Tensor], model: StateConditionedVQVAE, where: str
) -> dict[str, torch.Tensor]:
    """The state dict for ``model`` out of a checkpoint's ``tensors``, after checking that the
    names, shapes and dtypes are exactly ``model``'s and that every value is finite.

    Raises:
        CheckpointError: a tensor is missing, extra, of another shape or dtype, or not finite.
    """
    expected = {_MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))[:5]
        extra = sorted(set(tensors) - set(expected))[:5]
        raise CheckpointError(
            f"{where!r} tensors do not match a {CHECKPOINT_KIND}: missing {missing}, "
            f"unexpected {extra}"
        )
    state = {}
    for name, reference in expected.items():
        tensor = tensors[name]
        if tensor.shape != reference.shape or tensor.dtype != reference.dtype:
            raise CheckpointError(
                f"{where!r} tensor {name!r} has shape {tuple(tensor.shape)} "
                f"{tensor.dtype}, expected {tuple(reference.shape)} {reference.dtype}"
            )
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{where!r} tensor {name!r} holds NaN or inf")
        state[name[len(_MODEL_PREFIX) :]] = tensor
    return state
