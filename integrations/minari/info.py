"""What a Minari dataset says about itself (:class:`MinariInfo`), and rebuilding its env safely.

A dataset folder is untrusted input: its ``metadata.json`` names the env to rebuild as an
``entry_point`` (``module:callable``) with kwargs, and ``gym.make`` imports and calls whatever
it names. :meth:`MinariInfo.make_env` therefore rebuilds only envs whose id the installed
Gymnasium registry knows, with every field that changes what runs as the registry has it
(:func:`check_registered` says field by field), unless ``trust_env_spec=True``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from saq_wrappers.errors import DataError
from saq_wrappers.evaluation import DEFAULT_MAX_STEPS, normalized_score

from .opening import DatasetSource, open_minari, reference_scores

__all__ = ["MinariInfo", "check_registered", "minari_info"]

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
        return np.asarray(normalized_score(np.asarray(returns, dtype=np.float64), self.ref_min_score,
                                           self.ref_max_score))

    def rebuild_spec(self, eval_env: bool = True, *, trust_env_spec: bool = False) -> EnvSpec | None:
        """The spec :meth:`make_env` builds (the evaluation env, else the collection env), or
        ``None`` for an env-less dataset; checked without importing anything, so a caller can
        refuse an untrusted dataset before any work.

        ``gym.make`` imports and calls the spec's ``entry_point`` with its kwargs, and the spec
        comes from the dataset's files. Unless ``trust_env_spec`` (here or on the info), the spec
        must name an env id the installed Gymnasium registry knows, with the registered entry
        points, the registered kwargs, no additional wrappers and a bounded time limit (see
        :func:`check_registered` for every field). A trusted spec without a time limit is still
        evaluated in bounded episodes (:func:`saq_wrappers.evaluation.episode_step_limit`).

        Raises:
            DataError: an untrusted spec; the message names the field, the values and the opt-in.
        """
        spec = (self.eval_env_spec if eval_env else None) or self.env_spec
        if spec is not None and not (trust_env_spec or self.trust_env_spec):
            check_registered(spec, self.dataset_id)
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


#: Stored kwargs that may differ from the registered ones: the registry has no render mode, and
#: ``None`` (no rendering) is what ``gym.make`` does without one.
_HARMLESS_KWARGS = {"render_mode": None}


def check_registered(spec: EnvSpec, dataset_id: str) -> None:
    """Refuse ``spec`` unless everything ``gym.make`` would do with it is what the installed
    Gymnasium registry does for ``spec.id``. Field by field (Gymnasium 1.0's ``EnvSpec``):

    * ``id``: must be registered (else nothing to compare with, and the id may be a typo).
    * ``entry_point``, ``vector_entry_point``: equal to the registered ones (``None`` for the vector
      one too): ``gym.make`` imports and calls them.
    * ``kwargs``: equal to the registered kwargs, key by key, except ``render_mode: None``. Env
      constructors take paths (``xml_file``), sizes (``frame_skip``, maze maps), reward weights
      and entry points, so any other value may read a file, run for ages, change the scores the
      reference returns were measured on, or import code.
    * ``max_episode_steps``: an integer from 1 to the larger of 100,000
      (:data:`saq_wrappers.evaluation.DEFAULT_MAX_STEPS`) and the registered limit; ``None`` only
      where the registry has none. Datasets legitimately set their own (Minari's Adroit datasets
      were collected with ``gym.make(..., max_episode_steps=...)``), but ``None`` or ``10**9``
      would make every evaluation episode run for ever.
    * ``additional_wrappers``: none (each wrapper is an entry point with kwargs).
    * ``order_enforce``, ``disable_env_checker``: harmless, any value: they only decide whether
      Gymnasium raises on a step before reset and warns about a malformed env, never what a step
      returns.
    * ``reward_threshold``, ``nondeterministic``: harmless, informational: ``gym.make`` ignores them.
    * ``apply_api_compatibility`` (Gymnasium < 1.0): not a field any more; Minari drops a ``false``
      and a ``true`` makes the dataset fail to open.

    Raises:
        DataError: naming the field, the stored and the registered values, and the opt-in.
    """
    registered = gym.registry.get(spec.id)
    if registered is None:
        problem = (f"its env id {spec.id!r} is not in the installed Gymnasium registry (import the package "
                   "that registers it first)")
    elif spec.entry_point != registered.entry_point:
        problem = (f"it names entry point {spec.entry_point!r}, the installed Gymnasium registry "
                   f"{registered.entry_point!r}: gym.make would import and call that code")
    elif spec.vector_entry_point not in (None, registered.vector_entry_point):
        problem = (f"it names vector entry point {spec.vector_entry_point!r}, the registry "
                   f"{registered.vector_entry_point!r}")
    elif spec.additional_wrappers:
        problem = f"it adds wrappers {[w.entry_point for w in spec.additional_wrappers]}"
    else:
        problem = _kwargs_problem(spec, registered) or _time_limit_problem(spec, registered)
        if problem is None:
            return
    raise DataError(
        f"Minari dataset {dataset_id!r}: refusing to rebuild its env {spec.id!r} (entry point "
        f"{spec.entry_point!r}) from metadata.json: {problem}. Pass {_TRUST_HINT} only if you trust this "
        "dataset, or build the env yourself"
    )


def _kwargs_problem(spec: EnvSpec, registered: EnvSpec) -> str | None:
    if not isinstance(spec.kwargs, dict):
        return f"its kwargs are {spec.kwargs!r}, expected a JSON object"
    stored, expected = _plain(spec.kwargs), _plain(registered.kwargs or {})
    missing = object()

    def shown(kwargs: dict[str, Any], key: str) -> str:
        return repr(kwargs[key]) if key in kwargs else "absent"

    differ = [
        f"{key!r}: {shown(stored, key)} (registered: {shown(expected, key)})"
        for key in sorted(set(stored) | set(expected), key=str)
        if stored.get(key, missing) != expected.get(key, missing)
        and not (key in _HARMLESS_KWARGS and key not in expected and stored[key] == _HARMLESS_KWARGS[key])
    ]
    if not differ:
        return None
    return (f"its kwargs differ from the registered {spec.id!r} ones: {', '.join(differ)}; an env's kwargs may "
            "name files, sizes, reward weights or code, so only the registered ones are rebuilt")


def _time_limit_problem(spec: EnvSpec, registered: EnvSpec) -> str | None:
    steps, limit = spec.max_episode_steps, registered.max_episode_steps
    if steps is None:
        if limit is None:
            return None
        return (f"its max_episode_steps is None where the registered {spec.id!r} has {limit}: no evaluation "
                "episode would ever be cut")
    largest = max(DEFAULT_MAX_STEPS, limit or 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= largest:
        return (f"its max_episode_steps {steps!r} is not an integer from 1 to {largest:,} (the registered "
                f"{spec.id!r} has {limit})")
    return None


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples and arrays as lists), to compare registered
    kwargs with stored ones."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def minari_info(
    dataset: DatasetSource, *, download: bool = False, trust_env_spec: bool = False
) -> MinariInfo:
    """Metadata of a Minari dataset (see :class:`MinariInfo`); reads no episode data.

    ``trust_env_spec`` lets :meth:`MinariInfo.make_env` rebuild whatever env the dataset's
    metadata names (it imports and runs that code): only for datasets you trust.
    """
    ds = open_minari(dataset, download=download)
    metadata = dict(ds.storage.metadata)
    ref_min_score, ref_max_score = reference_scores(metadata, ds.id)
    return MinariInfo(
        dataset_id=ds.id,
        data_path=Path(ds.storage.data_path),
        observation_space=ds.observation_space,
        action_space=ds.action_space,
        total_episodes=int(ds.total_episodes),
        total_steps=int(ds.total_steps),
        ref_min_score=ref_min_score,
        ref_max_score=ref_max_score,
        env_spec=ds.env_spec,
        eval_env_spec=ds._eval_env_spec,  # no public accessor in Minari 0.5.4
        metadata=metadata,
        trust_env_spec=trust_env_spec,
    )
