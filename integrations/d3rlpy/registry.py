"""The one algorithm registry: every algorithm name of :mod:`saq_wrappers.integrations.algorithms`
mapped to its d3rlpy config, with each setting written once (in :mod:`.presets` and the configs).

* ``SAQ-BC``, ``SAQ-CQL``, ``SAQ-IQL``, ``SAQ-BRAC``: discrete algorithms on the quantizer's codes
  (SAQ section 4.2), built from the SAQ presets;
* ``BC``, ``CQL``, ``IQL``, ``TD3+BC``: their continuous d3rlpy counterparts
  (:data:`~saq_wrappers.integrations.algorithms.COUNTERPARTS`);
* ``ARQ``: action-restricted Q-learning on a precomputed candidate table.

X and SAQ-X use the same hidden sizes unless told otherwise (:func:`default_hidden`): the
authors' 512-512 for the BC/CQL family and 256-256 for the IQL/BRAC family and ARQ, so a
comparison differs only in the action representation.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

from d3rlpy.base import LearnableConfig

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.algorithms import (
    ALGORITHMS,
    CONTINUOUS_ALGOS,
    COUNTERPARTS,
    DENSITY_POLICY_ALGOS,
    SAQ_ALGOS,
    SAQ_PREFIX,
    check_algorithm,
    is_saq,
)

from . import presets
from .arq import ARQConfig
from .scalers import RobustStandardObservationScaler

__all__ = ["ALGORITHMS", "CONTINUOUS_ALGOS", "COUNTERPARTS", "DENSITY_POLICY_ALGOS", "SAQ_ALGOS", "check_algorithm",
           "default_hidden", "density_policy_config", "is_saq", "make_config"]

#: SAQ-X -> its preset.
_SAQ_PRESETS: dict[str, Callable[..., LearnableConfig]] = {
    "SAQ-BC": presets.saq_bc_config,
    "SAQ-CQL": presets.saq_cql_config,
    "SAQ-IQL": presets.saq_iql_config,
    "SAQ-BRAC": presets.saq_brac_config,
}


def default_hidden(name: str) -> tuple[int, ...]:
    """Hidden sizes of every network of ``name``: the authors' 512-512 for BC/CQL (and SAQ-BC,
    SAQ-CQL), 256-256 for IQL, BRAC, TD3+BC and ARQ."""
    check_algorithm(name)
    family = name.removeprefix(SAQ_PREFIX)
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
        name: one of :data:`~saq_wrappers.integrations.algorithms.ALGORITHMS`.
        action_space: the continuous ``Box`` (continuous algorithms scale actions by its bounds).
        hidden: hidden sizes of every network (default :func:`default_hidden`).
        batch_size: minibatch size (256, the authors').
        options: config fields to override (``{"alpha": 20.0}`` for SAQ-CQL); ARQ needs
            ``candidate_table`` and ``sampler_path``.
    """
    check_algorithm(name)
    hidden_units = tuple(hidden) if hidden is not None else default_hidden(name)
    settings: dict[str, Any] = {"batch_size": batch_size, **(options or {})}
    if is_saq(name):
        return _SAQ_PRESETS[name](hidden_units=hidden_units, **settings)
    if name in CONTINUOUS_ALGOS:
        return presets.continuous_config(name, action_space, hidden_units=hidden_units, **settings)
    if "candidate_table" not in settings or "sampler_path" not in settings:
        raise DataError("ARQ needs options candidate_table and sampler_path (its precomputed candidates)")
    settings.setdefault("observation_scaler", RobustStandardObservationScaler())
    return ARQConfig(**{**presets.every_encoder(ARQConfig, hidden_units), **settings})


def density_policy_config(
    name: str,
    action_set: Any,
    *,
    hidden: Optional[Sequence[int]] = None,
    batch_size: int = 256,
    options: Optional[Mapping[str, Any]] = None,
) -> LearnableConfig:
    """SAQ-X (SAQ-BC, SAQ-IQL or SAQ-BRAC) with action-density policies over ``action_set``'s
    codes (:func:`~saq_wrappers.integrations.d3rlpy.presets.density_policy_settings`), sized as
    :func:`make_config` sizes SAQ-X; ``options`` override config fields (``n_components``).

    Raises:
        DataError: an algorithm without a policy over codes to parametrize (SAQ-CQL acts by its Q).
    """
    if name not in DENSITY_POLICY_ALGOS:
        raise DataError(f"the density policy is built for {', '.join(DENSITY_POLICY_ALGOS)}, not {name!r}")
    hidden_units = tuple(hidden) if hidden is not None else default_hidden(name)
    if name == "SAQ-BC":
        return presets.saq_density_bc_config(action_set, hidden_units=hidden_units, batch_size=batch_size,
                                             **dict(options or {}))
    settings = {**presets.density_policy_settings(action_set), **dict(options or {})}
    return make_config(name, None, hidden=hidden_units, batch_size=batch_size, options=settings)
