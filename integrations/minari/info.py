"""What a Minari dataset says about itself (:class:`MinariInfo`), and rebuilding its env safely.

A dataset folder is untrusted input: its ``metadata.json`` names the env to rebuild as an
``entry_point`` (``module:callable``) with kwargs, and ``gym.make`` imports and calls whatever
it names. :meth:`MinariInfo.make_env` therefore rebuilds only envs whose id the installed
Gymnasium registry knows with that same entry point (no other entry point in the kwargs, no
extra wrappers) unless ``trust_env_spec=True``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from saq_wrappers.errors import DataError

from .opening import DatasetSource, open_minari

__all__ = ["MinariInfo", "minari_info"]

#: How a refusal tells the user to opt in (the Python keyword and the ``saq`` flag).
_TRUST_HINT = "trust_env_spec=True (saq: --trust-dataset-env)"


@dataclasses.dataclass(frozen=True)
class MinariInfo:
    """What a Minari dataset says about itself, for evaluation and normalized scores.

    Attributes:
        dataset_id: the id in the dataset's metadata.
        data_path: the folder holding the dataset's files.
        observation_space, action_space: as stored.
        total_episodes, total_steps: as stored.
        ref_min_score, ref_max_score: reference returns (random / expert), or ``None``.
        env_spec, eval_env_spec: the collection and evaluation envs, or ``None`` (env-less).
        metadata: the raw metadata dictionary.
        trust_env_spec: rebuild the stored env whatever code it names (see :meth:`rebuild_spec`).
    """

    dataset_id: str
    data_path: Path
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    total_episodes: int
    total_steps: int
    ref_min_score: float | None
    ref_max_score: float | None
    env_spec: EnvSpec | None
    eval_env_spec: EnvSpec | None
    metadata: dict[str, Any]
    trust_env_spec: bool = False

    def normalized_score(self, returns: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """D4RL-style normalized score ``100 * (R - ref_min) / (ref_max - ref_min)``.

        Minari's own ``get_normalized_score`` returns the same without the factor 100.
        """
        if self.ref_min_score is None or self.ref_max_score is None:
            raise DataError(
                f"Minari dataset {self.dataset_id!r} has no reference scores: expected "
                "'ref_min_score' and 'ref_max_score' in its metadata"
            )
        span = self.ref_max_score - self.ref_min_score
        if span == 0:
            raise DataError(
                f"Minari dataset {self.dataset_id!r} has equal reference scores: cannot normalize"
            )
        return 100.0 * (np.asarray(returns, dtype=np.float64) - self.ref_min_score) / span

    def rebuild_spec(self, eval_env: bool = True, *, trust_env_spec: bool = False) -> EnvSpec | None:
        """The spec :meth:`make_env` builds (the evaluation env, else the collection env), or
        ``None`` for an env-less dataset; checked without importing anything, so a caller can
        refuse an untrusted dataset before any work.

        ``gym.make`` imports and calls the spec's ``entry_point`` with its kwargs, and the spec
        comes from the dataset's files. Unless ``trust_env_spec`` (here or on the info), the spec
        must name an env id the installed Gymnasium registry knows, with the registered entry
        point (and vector entry point), no other entry point in its kwargs, and no additional
        wrappers (each wrapper is an entry point too).

        Raises:
            DataError: an untrusted spec; the message names the entry point and the opt-in.
        """
        spec = (self.eval_env_spec if eval_env else None) or self.env_spec
        if spec is not None and not (trust_env_spec or self.trust_env_spec):
            _check_registered(spec, self.dataset_id)
        return spec

    def make_env(
        self, eval_env: bool = True, *, trust_env_spec: bool = False, **kwargs: Any
    ) -> gym.Env[Any, Any]:
        """Rebuild the evaluation env (or the collection env) with ``gym.make``; the stored spec
        is checked first (see :meth:`rebuild_spec`), ``kwargs`` go to ``gym.make``."""
        spec = self.rebuild_spec(eval_env, trust_env_spec=trust_env_spec)
        if spec is None:
            raise DataError(
                f"Minari dataset {self.dataset_id!r} stores no environment (env_spec and "
                "eval_env_spec are None): build the env yourself"
            )
        try:
            return gym.make(spec, **kwargs)
        except Exception as error:  # noqa: BLE001 - gymnasium raises many kinds
            raise DataError(
                f"Minari dataset {self.dataset_id!r}: cannot rebuild env {spec.id!r} ({error})"
            ) from error


def _check_registered(spec: EnvSpec, dataset_id: str) -> None:
    """Refuse ``spec`` unless every entry point it would load is the installed registry's own
    for ``spec.id`` (see :meth:`MinariInfo.rebuild_spec`)."""
    registered = gym.registry.get(spec.id)
    if registered is None:
        problem = (f"its env id {spec.id!r} is not in the installed Gymnasium registry (import the "
                   "package that registers it first)")
    elif spec.entry_point != registered.entry_point:
        problem = (f"the installed Gymnasium registry has entry point {registered.entry_point!r} for "
                   f"{spec.id!r}, not {spec.entry_point!r}")
    elif spec.vector_entry_point not in (None, registered.vector_entry_point):
        problem = (f"it names vector entry point {spec.vector_entry_point!r}, the registry "
                   f"{registered.vector_entry_point!r}")
    elif _named_entry_points(spec.kwargs) != _named_entry_points(registered.kwargs):
        problem = (f"its kwargs name entry points {_named_entry_points(spec.kwargs)} that the registered "
                   f"{spec.id!r} does not")
    elif spec.additional_wrappers:
        problem = f"it adds wrappers {[w.entry_point for w in spec.additional_wrappers]}"
    else:
        return
    raise DataError(
        f"Minari dataset {dataset_id!r}: refusing to rebuild its env from metadata.json, which "
        f"names entry point {spec.entry_point!r} for {spec.id!r} ({problem}); gym.make would "
        f"import and call that code. Pass {_TRUST_HINT} only if you trust this dataset, or build "
        "the env yourself"
    )


def _named_entry_points(kwargs: Any, prefix: str = "") -> dict[str, Any]:
    """Every value under a key naming an entry point (``entry_point``, ``env_entry_point``...)
    anywhere in nested ``kwargs``, by dotted key: env creators that take one import it."""
    found: dict[str, Any] = {}
    if isinstance(kwargs, dict):
        for key, value in kwargs.items():
            path = f"{prefix}{key}"
            if "entry_point" in str(key):
                found[path] = value
            found.update(_named_entry_points(value, f"{path}."))
    return found


def minari_info(
    dataset: DatasetSource, *, download: bool = False, trust_env_spec: bool = False
) -> MinariInfo:
    """Metadata of a Minari dataset (see :class:`MinariInfo`); reads no episode data.

    ``trust_env_spec`` lets :meth:`MinariInfo.make_env` rebuild whatever env the dataset's
    metadata names (it imports and runs that code): only for datasets you trust.
    """
    ds = open_minari(dataset, download=download)
    metadata = dict(ds.storage.metadata)

    def score(key: str) -> float | None:
        value = metadata.get(key)
        return None if value is None else float(value)

    return MinariInfo(
        dataset_id=ds.id,
        data_path=Path(ds.storage.data_path),
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        total_episodes=int(ds.total_episodes),
        total_steps=int(ds.total_steps),
        ref_min_score=score("ref_min_score"),
        ref_max_score=score("ref_max_score"),
        env_spec=ds.env_spec,
        eval_env_spec=ds._eval_env_spec,  # no public accessor in Minari 0.5.4
        metadata=metadata,
        trust_env_spec=trust_env_spec,
    )
