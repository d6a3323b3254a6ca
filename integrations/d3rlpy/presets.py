"""SAQ hyperparameter presets for d3rlpy's discrete algorithms.

d3rlpy's ``DiscreteCQLConfig`` defaults are Atari-style (lr 6.25e-5, batch 32, hard target update
every 8000 steps). SAQ's authors train on codes with lr 3e-4, batch 256, gamma 0.99, a hard
target copy every 200 steps, ReLU MLPs 512-512 and weight decay 1e-3 (their published code); these
functions return d3rlpy configs with those settings, and every keyword overrides one field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, TypeVar

import d3rlpy
import numpy as np
from d3rlpy.base import LearnableConfig

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy.brac import DiscreteBRACConfig
from saq_wrappers.integrations.d3rlpy.density_bc import DensityBCConfig
from saq_wrappers.integrations.d3rlpy.iql import DiscreteIQLConfig
from saq_wrappers.integrations.d3rlpy.optimizers import DenormalFreeAdamFactory
from saq_wrappers.integrations.d3rlpy.scalers import CandidateObservationScaler, RobustStandardObservationScaler

#: Hidden sizes of the discrete Q / policy MLP used by the authors for CQL and BC.
SAQ_HIDDEN_UNITS: tuple[int, ...] = (512, 512)
#: Hidden sizes of the authors' IQL networks (critics, value, behavior policy).
SAQ_IQL_HIDDEN_UNITS: tuple[int, ...] = (256, 256)

Config = TypeVar("Config", bound=LearnableConfig)


def saq_encoder(hidden_units: Sequence[int] = SAQ_HIDDEN_UNITS) -> d3rlpy.models.VectorEncoderFactory:
    """The ReLU MLP torso SAQ uses for its discrete networks."""
    return d3rlpy.models.VectorEncoderFactory(hidden_units=list(hidden_units), activation="relu")


def saq_optimizer(weight_decay: float = 1e-3, fused: bool = False) -> DenormalFreeAdamFactory:
    """Adam with the weight decay of the authors' runs, kept free of float32 denormals so it runs
    at full speed without any process-wide flag (:class:`DenormalFreeAdamFactory`); ``fused``
    updates all parameters in one kernel (SAQ-IQL's and SAQ-BRAC's presets)."""
    return DenormalFreeAdamFactory(weight_decay=weight_decay, fused=fused)


def every_encoder(config_type: type[LearnableConfig], hidden_units: Sequence[int]) -> dict[str, Any]:
    """Each encoder field of ``config_type`` (``encoder_factory``, ``critic_encoder_factory``,
    ...) set to one :func:`saq_encoder` of ``hidden_units``: every network of the algorithm gets
    the same torso, so X and SAQ-X can be compared on equal networks."""
    encoder = saq_encoder(hidden_units)
    return {field.name: encoder for field in dataclasses.fields(config_type)
            if field.name.endswith("encoder_factory")}


def _saq_config(config_type: type[Config], hidden_units: Sequence[int], settings: dict[str, Any],
                overrides: dict[str, Any], fused_adam: bool = False) -> Config:
    """``config_type`` with what every SAQ preset shares (the authors' torsos of
    ``hidden_units``, Adam with weight decay for every optimizer, observations standardized by
    :class:`~saq_wrappers.integrations.d3rlpy.scalers.RobustStandardObservationScaler`), then
    ``settings`` (the preset's own), then ``overrides`` (the caller's). ``fused_adam``: the
    optimizers update in one fused kernel (:func:`saq_optimizer`)."""
    optimizers = {field.name: saq_optimizer(fused=fused_adam) for field in dataclasses.fields(config_type)
                  if field.name.endswith("optim_factory")}
    return config_type(**{
        **every_encoder(config_type, hidden_units), **optimizers,
        "observation_scaler": RobustStandardObservationScaler(),
        **settings, **overrides,
    })


def saq_cql_config(alpha: float = 10.0, *, hidden_units: Sequence[int] = SAQ_HIDDEN_UNITS,
                   **overrides: Any) -> d3rlpy.algos.DiscreteCQLConfig:
    """``DiscreteCQLConfig`` for SAQ-CQL (SAQ section 4.2).

    The conservative term ``alpha * E[logsumexp_k Q(s, k) - Q(s, code)]`` is computed exactly
    over the K codes by d3rlpy's DiscreteCQL and logged as ``conservative_loss`` (unscaled).
    ``alpha`` defaults to 10, the low end of the authors' sweep {10, 15, 20, 30}; raise it for
    narrower data. gamma is d3rlpy's default, 0.99, as in the authors' runs.
    """
    settings = dict(learning_rate=3e-4, batch_size=256, target_update_interval=200, alpha=alpha)
    return _saq_config(d3rlpy.algos.DiscreteCQLConfig, hidden_units, settings, overrides)


def saq_bc_config(*, hidden_units: Sequence[int] = SAQ_HIDDEN_UNITS, **overrides: Any) -> d3rlpy.algos.DiscreteBCConfig:
    """``DiscreteBCConfig`` for SAQ-BC: cross-entropy of the policy logits against the codes.

    d3rlpy's ``beta`` (an L2 penalty on the logits) is set to 0 so the loss is the plain
    negative log-likelihood of SAQ eq. 8's right-hand side.
    """
    settings = dict(learning_rate=3e-4, batch_size=256, beta=0.0)
    return _saq_config(d3rlpy.algos.DiscreteBCConfig, hidden_units, settings, overrides)


def density_policy_settings(action_set: Any, n_components: int = 1) -> dict[str, Any]:
    """The config fields that make a SAQ algorithm's policies over ``action_set``'s codes action
    densities (issue 37): ``candidate_action_dim`` (the decoded action's size), ``n_components``,
    and an observation scaler that standardizes the state as every preset does and leaves the
    candidates in action units
    (:class:`~saq_wrappers.integrations.d3rlpy.scalers.CandidateObservationScaler`). For
    :func:`saq_iql_config` and :func:`saq_brac_config`::

        config = saq_iql_config(**density_policy_settings(quantizer))

    Train on candidate observations (:func:`~saq_wrappers.candidate_observations.with_candidate_observations`)
    and act through ``SAQActionWrapper(..., observe_candidates=True)``."""
    action_dim = int(np.prod(action_set.action_space.shape))
    return dict(candidate_action_dim=action_dim, n_components=n_components,
                observation_scaler=CandidateObservationScaler(n_candidate_values=action_set.n * action_dim))


def saq_density_bc_config(action_set: Any, n_components: int = 1, *, likelihood: str = "codes",
                          hidden_units: Sequence[int] = SAQ_HIDDEN_UNITS, **overrides: Any) -> DensityBCConfig:
    """``DensityBCConfig`` for SAQ-BC with the action-density policy over ``action_set``'s codes
    (issue 37): SAQ-BC's settings and :func:`density_policy_settings`.

    Train it on candidate observations and act through ``SAQActionWrapper(...,
    observe_candidates=True)`` (:mod:`saq_wrappers.integrations.d3rlpy.density_bc`, which also says
    what ``likelihood`` fits: ``"codes"``, SAQ eq. 8's label among the codes, or ``"actions"``, the
    density of the label's decoded action).
    """
    settings = dict(learning_rate=3e-4, batch_size=256, likelihood=likelihood,
                    **density_policy_settings(action_set, n_components))
    return _saq_config(DensityBCConfig, hidden_units, settings, overrides)


def saq_iql_config(*, hidden_units: Sequence[int] = SAQ_IQL_HIDDEN_UNITS, **overrides: Any) -> DiscreteIQLConfig:
    """``DiscreteIQLConfig`` for SAQ-IQL (SAQ section 4.2, eqs. 9-10).

    Every training setting is the config's default (:class:`DiscreteIQLConfig`: the authors'
    settings and two departures, eq. 10 fitted by advantage-weighted likelihood under a KL budget;
    pass ``policy_extraction="closed_form", kl_budget=None`` for the authors' rule). This preset
    adds the authors' networks: ReLU MLPs of ``hidden_units`` for the critics, value, behavior
    policy and the fitted policy, Adam with weight decay 1e-3, and standardized observations.
    ``expectile`` is 0.7 on locomotion and 0.9 on antmaze in the paper; ``temperature`` was swept
    over {0.5, 1, 2} on Adroit.
    """
    return _saq_config(DiscreteIQLConfig, hidden_units, {}, overrides, fused_adam=True)


def saq_brac_config(*, hidden_units: Sequence[int] = SAQ_IQL_HIDDEN_UNITS, **overrides: Any) -> DiscreteBRACConfig:
    """``DiscreteBRACConfig`` for SAQ-BRAC (SAQ section 4.2, eqs. 3-4 with exact sums).

    The authors released no SAQ-BRAC code; every training setting is the config's default
    (:class:`DiscreteBRACConfig`), with their IQL-sized networks (ReLU MLPs of ``hidden_units``,
    Adam with weight decay 1e-3) and standardized observations. ``alpha`` follows ``beta`` unless
    given, which makes the actor objective exactly ``E_pi[Q] - beta KL(pi || pi_beta)``; sweep
    ``beta`` over {0.1, 0.3, 1, 3, 10} as BRAC did.
    """
    if "beta" in overrides:
        overrides.setdefault("alpha", overrides["beta"])
    return _saq_config(DiscreteBRACConfig, hidden_units, {}, overrides, fused_adam=True)


# Continuous counterparts (d3rlpy's own algorithms).
def continuous_config(name: str, action_space: Any, *, hidden_units: Optional[Sequence[int]] = None,
                      **overrides: Any) -> LearnableConfig:
    """d3rlpy's continuous ``BC`` / ``CQL`` / ``IQL`` / ``TD3+BC`` with the settings SAQ-X is
    compared against: batch 256, observations standardized by the same scaler as SAQ-X's
    (:class:`~saq_wrappers.integrations.d3rlpy.scalers.RobustStandardObservationScaler`),
    actions scaled to [-1, 1] by the action space's bounds, and with ``hidden_units`` every
    network the ReLU MLP SAQ-X uses (:func:`every_encoder`); every other setting is d3rlpy's
    default (the authors' baselines).

    d3rlpy ships no BRAC; its nearest behavior-regularized actor-critic, TD3+BC, stands in.
    """
    factories: dict[str, Any] = {
        "BC": d3rlpy.algos.BCConfig,
        "CQL": d3rlpy.algos.CQLConfig,
        "IQL": d3rlpy.algos.IQLConfig,
        "TD3+BC": d3rlpy.algos.TD3PlusBCConfig,
    }
    if name not in factories:
        raise ValueError(f"no continuous d3rlpy algorithm {name!r}: expected one of {', '.join(factories)}")
    settings: dict[str, Any] = dict(
        batch_size=256,
        observation_scaler=RobustStandardObservationScaler(),
        action_scaler=d3rlpy.preprocessing.MinMaxActionScaler(
            minimum=np.asarray(action_space.low, dtype=np.float32),
            maximum=np.asarray(action_space.high, dtype=np.float32),
        ),
    )
    if hidden_units is not None:
        settings.update(every_encoder(factories[name], hidden_units))
    settings.update(overrides)
    return factories[name](**settings)  # type: ignore[no-any-return]


#: The IQL and SAQ authors' locomotion reward scale: ``r * 1000 / (max - min episode return)``.
RETURN_RANGE_MULTIPLIER = 1000.0


def return_range_reward_scaler(episode_returns: Any) -> d3rlpy.preprocessing.ReturnBasedRewardScaler:
    """d3rlpy's ``ReturnBasedRewardScaler`` set to the IQL / SAQ authors' locomotion preprocessing,
    ``r * 1000 / (max - min)`` over the dataset's episode returns (IQL appendix; the SAQ authors'
    scripts for hopper, walker2d and halfcheetah), fixed from those returns rather than refitted.

    Raises:
        DataError: fewer than two episodes, a non-finite return, or all returns equal (the
            scale would be infinite).
    """
    returns = np.asarray(episode_returns, dtype=np.float64).reshape(-1)
    if len(returns) < 2 or not np.isfinite(returns).all() or float(returns.max() - returns.min()) <= 0.0:
        raise DataError(
            "return-range reward scaling needs at least two episodes with finite, unequal returns; "
            f"got {len(returns)} episode(s) with returns {returns[:5].round(2).tolist()}"
        )
    return d3rlpy.preprocessing.ReturnBasedRewardScaler(
        return_max=float(returns.max()), return_min=float(returns.min()), multiplier=RETURN_RANGE_MULTIPLIER
    )
