"""The one algorithm registry: every algorithm name the pipeline, the recipes and the benchmarks
know, mapped to its d3rlpy config, with each setting written once (in :mod:`.presets`).

* ``SAQ-BC``, ``SAQ-CQL``, ``SAQ-IQL``, ``SAQ-BRAC``: discrete algorithms on the quantizer's codes
  (SAQ section 4.2), built from the SAQ presets;
* ``BC``, ``CQL``, ``IQL``, ``TD3+BC``: their continuous d3rlpy counterparts
  (:data:`COUNTERPARTS`; TD3+BC stands in for BRAC, which d3rlpy does not ship);
* ``ARQ``: action-restricted Q-learning on a precomputed candidate table.

X and SAQ-X use the same hidden sizes unless told otherwise (:func:`default_hidden`): the
authors' 512-512 for the BC/CQL family and 256-256 for the IQL/BRAC family and ARQ, so a
comparison differs only in the action representation.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import d3rlpy
from d3rlpy.base import LearnableConfig

from saq_wrappers.errors import DataError

from . import presets
from .arq import ARQConfig

#: Continuous d3rlpy algorithms.
CONTINUOUS_ALGOS: tuple[str, ...] = ("BC", "CQL", "IQL", "TD3+BC")
#: SAQ-X: discrete algorithms on the quantizer's codes.
SAQ_ALGOS: tuple[str, ...] = ("SAQ-BC", "SAQ-CQL", "SAQ-IQL", "SAQ-BRAC")
#: Every algorithm name the registry knows.
ALGORITHMS: tuple[str, ...] = CONTINUOUS_ALGOS + SAQ_ALGOS + ("ARQ",)
#: SAQ-X -> its continuous counterpart.
COUNTERPARTS: dict[str, str] = {"SAQ-BC": "BC", "SAQ-CQL": "CQL", "SAQ-IQL": "IQL", "SAQ-BRAC": "TD3+BC"}

_SAQ_PRESETS = {
    "SAQ-BC": (presets.saq_bc_config, ("encoder_factory",)),
    "SAQ-CQL": (presets.saq_cql_config, ("encoder_factory",)),
    "SAQ-IQL": (presets.saq_iql_config, ("critic_encoder_factory", "value_encoder_factory",
                                         "behavior_encoder_factory", "actor_encoder_factory")),
    "SAQ-BRAC": (presets.saq_brac_config, ("actor_encoder_factory", "critic_encoder_factory",
                                           "behavior_encoder_factory")),
}
_CONTINUOUS_ENCODERS = {
    "BC": ("encoder_factory",),
    "CQL": ("actor_encoder_factory", "critic_encoder_factory"),
    "IQL": ("actor_encoder_factory", "critic_encoder_factory", "value_encoder_factory"),
    "TD3+BC": ("actor_encoder_factory", "critic_encoder_factory"),
}


def check_algorithm(name: str) -> None:
    """Raise :class:`DataError` naming the known algorithms if ``name`` is not one."""
    if name not in ALGORITHMS:
        raise DataError(f"unknown algorithm {name!r}: expected one of {', '.join(ALGORITHMS)}")


def is_saq(name: str) -> bool:
    """Whether ``name`` trains on SAQ codes (and so needs a quantizer)."""
    return name in SAQ_ALGOS


def default_hidden(name: str) -> tuple[int, ...]:
    """Hidden sizes of every network of ``name``: the authors' 512-512 for BC/CQL (and SAQ-BC,
    SAQ-CQL), 256-256 for IQL, BRAC, TD3+BC and ARQ."""
    check_algorithm(name)
    family = name.replace("SAQ-", "")
    return presets.SAQ_HIDDEN_UNITS if family in ("BC", "CQL") else presets.SAQ_IQL_HIDDEN_UNITS


def make_config(
    name: str,
    action_space: Any,
    *,
    hidden: Optional[Sequence[int]] = None,
    batch_size: int = 256,
    options: Optional[Mapping[str, Any]] = None,
) -> LearnableConfig:
    """The d3rlpy config of ``name`` (``create(device=...)`` builds the algorithm).

    Args:
        name: one of :data:`ALGORITHMS`.
        action_space: the continuous ``Box`` (continuous algorithms scale actions by its bounds).
        hidden: hidden sizes of every network (default :func:`default_hidden`).
        batch_size: minibatch size (256, the authors').
        options: config fields to override (``{"alpha": 20.0}`` for SAQ-CQL); ARQ needs
            ``candidate_table`` and ``sampler_path``.
    """
    check_algorithm(name)
    encoder = presets.saq_encoder(tuple(hidden) if hidden is not None else default_hidden(name))
    settings: dict[str, Any] = {"batch_size": batch_size, **(options or {})}
    if name in _SAQ_PRESETS:
        factory, encoder_fields = _SAQ_PRESETS[name]
        return factory(**{field: encoder for field in encoder_fields}, **settings)  # type: ignore[no-any-return]
    if name in _CONTINUOUS_ENCODERS:
        return presets.continuous_config(name, action_space,
                                         **{field: encoder for field in _CONTINUOUS_ENCODERS[name]}, **settings)
    if "candidate_table" not in settings or "sampler_path" not in settings:
        raise DataError("ARQ needs options candidate_table and sampler_path (its precomputed candidates)")
    settings.setdefault("observation_scaler", d3rlpy.preprocessing.StandardObservationScaler())
    return ARQConfig(critic_encoder_factory=encoder, actor_encoder_factory=encoder, **settings)
