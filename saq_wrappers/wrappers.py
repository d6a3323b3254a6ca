"""Gymnasium wrappers that expose a state-conditioned action set as a discrete action space.

SAQ's quantizer and ARQ's support sampler both give, at every state ``s``, a finite set of ``n``
candidate continuous actions (:class:`~saq_wrappers.action_set.ActionSet`). Wrapping an env with
:class:`SAQActionWrapper` turns its ``Box`` action space into ``Discrete(n)``: the agent picks an
index, the wrapper decodes it *at the observation the agent just saw* and steps the env with the
continuous action. Any discrete agent (DQN, SAQ-CQL's argmax policy, MaskablePPO, ...) can then act
in a continuous-control env.

Both wrappers follow the conventions of ``gymnasium/wrappers/transform_action.py``: they subclass
the matching action wrapper and :class:`gymnasium.utils.RecordConstructorArgs`, set their new
action space in ``__init__`` and do their work in ``action()`` / ``actions()``.

Conventions shared by both wrappers:

- The observation is passed through unchanged, so env checkers (Gymnasium's, SB3's) see the
  base env's observation space, unless ``observe_candidates=True`` (below).
- ``action_masks()`` follows sb3-contrib's maskable algorithms: ``True`` marks a valid index.
  The candidate table it needs is computed lazily (at most once per observation), so agents that
  never ask for masks pay only for one ``decode`` call per step.
- Choosing an index the action set marks invalid (an ARQ sample whose likelihood is below
  ``eps``) is *allowed*: the action set's own decoding of that index is executed. Agents that
  must avoid such indices are expected to use ``action_masks()`` (as maskable algorithms do);
  refusing them here would break non-maskable agents and would cost a ``candidates()`` call on
  every step just to check. An index outside ``[0, n)`` is always an error.
- When ``action_masks()`` was called for the current observation, the chosen index is looked up
  in that same candidate table instead of being decoded again, so the action executed is
  exactly the one the mask judged (this matters for samplers whose candidates are random draws).
- With ``acting=ModeAveraging()``, the chosen index picks a *mode* and the action executed is the
  mean of that mode (:mod:`saq_wrappers.mode_acting`): the climb from the chosen candidate over
  all candidates at the observation, weighted by ``code_weights(obs)`` (the agent's policy over
  indices; uniform over the valid candidates when not given, which is right for an ARQ sampler
  whose candidates are draws from the behavior policy). This needs the whole candidate table on
  every step (one batched ``candidates`` call), which the plain decoding does not.
- With ``observe_candidates=True``, every observation the agent gets is the env's observation
  followed by the ``n`` candidate actions at it (:mod:`saq_wrappers.candidate_observations`),
  for agents whose policy is parametrized through the candidate actions, e.g. the action-density
  policy of issue 37, ``pi(k | s) ∝ p(g(s, k) | s)``: they cannot score an index without the
  action it stands for at ``s``. The cost is that all ``n`` candidates are decoded on every
  ``reset``/``step`` (one batched ``candidates`` call per observation, never a second one: the
  following ``step`` executes the candidate the agent saw, from the same table), and every
  candidate must be valid there (:class:`~saq_wrappers.errors.DataError` otherwise).
  ``current_observation(s)`` still give the env's own observation; ``code_weights`` gets the
  candidate observations, since they are what the agent's policy reads.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.spaces import Discrete
from gymnasium.vector import VectorActionWrapper, VectorEnv
from gymnasium.vector.utils import batch_space

from saq_wrappers.action_set import ActionSet, check_indices, check_spaces_match
from saq_wrappers.candidate_observations import (
    candidate_observation_space,
    candidate_observations,
    split_candidate_observations,
)
from saq_wrappers.errors import DataError, SpaceMismatchError
from saq_wrappers.mode_acting import ModeAveraging

__all__ = ["SAQActionWrapper", "SAQVectorActionWrapper"]

#: ``(B, *obs_shape)`` observations -> ``(B, n)`` non-negative weights of the ``n`` indices.
CodeWeights = Callable[[np.ndarray], np.ndarray]

#: ``info`` key holding the continuous action sent to the base env.
CONTINUOUS_ACTION_KEY = "continuous_action"
#: ``info`` key holding the discrete index the agent chose.
ACTION_INDEX_KEY = "action_index"


def _action_set_size(action_set: ActionSet) -> int:
    """Return ``action_set.n`` as a positive ``int`` or raise a clear error."""
    for attribute in ("observation_space", "action_space", "n", "decode", "candidates"):
        if not hasattr(action_set, attribute):
            raise TypeError(
                f"action_set must implement the ActionSet protocol (observation_space, "
                f"action_space, n, candidates, decode); {type(action_set).__name__} has no "
                f"{attribute!r}"
            )
    n = int(action_set.n)
    if n < 1:
        raise DataError(f"the action set has n={n} actions, expected n >= 1")
    return n


def _clip_bounds(
    env_space: gym.spaces.Box, action_set: ActionSet
) -> tuple[np.ndarray, np.ndarray] | None:
    """Bounds to clip decoded actions to, or ``None`` when no clipping can be needed.

    Action sets keep decoded actions inside their own ``action_space``; clipping is only needed
    when the env's bounds are tighter somewhere, which is decided once here so that the common
    case (identical bounds) costs nothing per step.
    """
    set_space = action_set.action_space
    low = np.asarray(env_space.low, dtype=np.float64)
    high = np.asarray(env_space.high, dtype=np.float64)
    set_low = np.broadcast_to(np.asarray(set_space.low, dtype=np.float64), low.shape)
    set_high = np.broadcast_to(np.asarray(set_space.high, dtype=np.float64), high.shape)
    if np.all(low <= set_low) and np.all(high >= set_high):
        return None
    dtype = np.float32
    return low.astype(dtype), high.astype(dtype)


def _mismatch(where: str, error: SpaceMismatchError, action_set: ActionSet) -> SpaceMismatchError:
    """Add what the action set expects to a :class:`SpaceMismatchError` raised by the checks."""
    return SpaceMismatchError(
        f"cannot wrap this {where} with {type(action_set).__name__}: {error}. Expected a Box "
        f"action space of shape {action_set.action_space.shape} and a Box observation space of "
        f"shape {action_set.observation_space.shape}."
    )


def _check_options(
    acting: ModeAveraging | None, code_weights: CodeWeights | None, observe_candidates: bool
) -> None:
    if not isinstance(observe_candidates, (bool, np.bool_)):
        raise TypeError(f"observe_candidates must be a bool, got {type(observe_candidates).__name__}")
    if acting is not None and not isinstance(acting, ModeAveraging):
        raise TypeError(f"acting must be a ModeAveraging or None, got {type(acting).__name__}")
    if code_weights is not None and not callable(code_weights):
        raise TypeError(f"code_weights must be a callable (observations -> (B, n) weights), got "
                        f"{type(code_weights).__name__}")
    if code_weights is not None and acting is None:
        raise ValueError("code_weights is used by mode averaging only: pass acting=ModeAveraging() too")


def _constructor_args(
    action_set: ActionSet,
    acting: ModeAveraging | None,
    code_weights: CodeWeights | None,
    observe_candidates: bool,
) -> dict[str, Any]:
    """What the env spec records: the options only where given, so a plain wrapper's spec is as before."""
    recorded: dict[str, Any] = {"action_set": action_set}
    if acting is not None:
        recorded["acting"] = acting
    if code_weights is not None:
        recorded["code_weights"] = code_weights
    if observe_candidates:
        recorded["observe_candidates"] = True
    return recorded


def _observed_space(action_set: ActionSet) -> gym.spaces.Box:
    """The ``Box`` of one candidate observation, or a :class:`SpaceMismatchError` saying why not."""
    try:
        return candidate_observation_space(action_set)
    except SpaceMismatchError as error:
        raise SpaceMismatchError(
            f"observe_candidates=True appends the candidate actions to the observation, which "
            f"needs a flat (1-D) Box observation space: {error}. Flatten the observations first "
            f"(gymnasium.wrappers.FlattenObservation) or leave observe_candidates off."
        ) from None


def _observed_candidates(
    action_set: ActionSet, n: int, obs_batch: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate observations of ``obs_batch`` with the ``(B, n, act_dim)`` candidates and
    ``(B, n)`` validity in them, all from ONE ``candidates`` call: the wrappers cache the table so
    that the following step executes exactly the candidates the agent saw, decoding nothing."""
    seen = candidate_observations(action_set, obs_batch)
    _, actions = split_candidate_observations(seen, n, action_set.action_space.shape[0])
    # candidate_observations refuses an invalid candidate, so every one it returns is valid
    return seen, actions, np.ones(actions.shape[:2], dtype=bool)


def _weights_at(
    code_weights: CodeWeights | None, obs: np.ndarray, valid: np.ndarray, n: int
) -> np.ndarray:
    """``(B, n)`` weights of the candidates at ``obs``: the agent's, zero where invalid."""
    if code_weights is None:
        return valid.astype(np.float64)
    weights = np.asarray(code_weights(obs), dtype=np.float64)
    if weights.shape != (len(obs), n):
        raise DataError(f"code_weights returned shape {weights.shape}, expected ({len(obs)}, {n}): one "
                        "weight per index at each observation")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise DataError("code_weights returned negative, NaN or infinite weights; expected probabilities")
    return weights * valid


class SAQActionWrapper(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Turn an env with a ``Box`` action space into one with ``Discrete(action_set.n)``.

    The index the agent picks is decoded by ``action_set`` at the observation the agent last saw
    (the one returned by the latest ``reset``/``step``), because SAQ's codes and ARQ's candidates
    only mean something at the state they were computed for (SAQ: ``a = g(s, k)``). Observations
    (unless ``observe_candidates``), rewards and episode ends are passed through untouched.

    ``step`` adds to ``info``:

    - ``info["continuous_action"]``: the ``(act_dim,)`` action sent to the base env;
    - ``info["action_index"]``: the index the agent chose, as an ``int``.

    Out-of-range indices raise :class:`~saq_wrappers.errors.DataError`. Indices the action set
    marks invalid are executed as the action set decodes them (see the module docstring); use
    :meth:`action_masks` to avoid them.

    Example:
        >>> import gymnasium as gym
        >>> from saq_wrappers.action_set import FixedActionSet
        >>> from saq_wrappers.wrappers import SAQActionWrapper
        >>> env = gym.make("Pendulum-v1")
        >>> grid = FixedActionSet.grid(env.observation_space, env.action_space, bins=5)
        >>> env = SAQActionWrapper(env, grid)
        >>> env.action_space
        Discrete(5)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(4)
        >>> info["continuous_action"], info["action_index"]
        (array([2.], dtype=float32), 4)
        >>> env.action_masks()
        array([ True,  True,  True,  True,  True])

    Args:
        env: the env to wrap; its action space must be a ``Box`` of the action set's shape and its
            observation space a ``Box`` of the action set's observation shape.
        action_set: any :class:`~saq_wrappers.action_set.ActionSet`, e.g. a fitted
            ``VQVAEQuantizer`` (SAQ) or a ``ScoreSupportSampler`` (ARQ).
        acting: ``None`` executes the chosen index's own action; a
            :class:`~saq_wrappers.mode_acting.ModeAveraging` executes the mean of the mode the
            index picks (see the module docstring).
        code_weights: with ``acting``, the agent's weights of the indices at a batch of
            observations (what the agent sees: candidate observations with
            ``observe_candidates``), e.g. ``saq_wrappers.integrations.d3rlpy.code_weights(algo)``.
        observe_candidates: observations become ``(obs_dim + n * act_dim,)`` float32 candidate
            observations, ``observation_space`` their ``Box``: for an agent whose policy is
            parametrized through the candidate actions (e.g. the action-density policy of issue
            37). Costs decoding all ``n`` candidates on every ``reset``/``step`` (see the module
            docstring).

    Raises:
        SpaceMismatchError: the env's spaces do not fit the action set, or
            ``observe_candidates`` with observations that are not flat.
        TypeError: ``env`` is a vector env (use :class:`SAQVectorActionWrapper`).
        DataError: from ``reset``/``step`` with ``observe_candidates``, an action set with an
            invalid candidate at the observation.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        action_set: ActionSet,
        acting: ModeAveraging | None = None,
        code_weights: CodeWeights | None = None,
        observe_candidates: bool = False,
    ) -> None:
        # The action set is recorded by reference: deep-copying a fitted model on every wrap
        # would double its memory, and the spec must describe the model actually used.
        if isinstance(env, VectorEnv):
            raise TypeError(
                "SAQActionWrapper wraps a single gymnasium.Env, got a vector env "
                f"({type(env).__name__}): use SAQVectorActionWrapper for vector envs"
            )
        _check_options(acting, code_weights, observe_candidates)
        gym.utils.RecordConstructorArgs.__init__(
            self,
            **_constructor_args(action_set, acting, code_weights, observe_candidates),
            _disable_deepcopy=True,
        )
        gym.ActionWrapper.__init__(self, env)
        n = _action_set_size(action_set)
        try:
            check_spaces_match(action_set, env.observation_space, env.action_space, where="env")
        except SpaceMismatchError as error:
            raise _mismatch("env", error, action_set) from None
        self.action_set = action_set
        self.acting = acting
        self.code_weights = code_weights
        self.observe_candidates = bool(observe_candidates)
        self.action_space = Discrete(n)
        if self.observe_candidates:
            self.observation_space = _observed_space(action_set)
        self._n = n
        self._clip = _clip_bounds(env.action_space, action_set)
        self._obs_batch: np.ndarray | None = None
        # (1, obs_dim + n * act_dim) candidate observation, with observe_candidates only
        self._seen_batch: np.ndarray | None = None
        # Per-observation cache for action_masks(); reset whenever a new observation arrives.
        self._candidate_actions: np.ndarray | None = None
        self._valid: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the base env and remember its first observation for decoding."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self._remember(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Decode ``action`` at the current observation, step, and remember the new observation."""
        index = self._index(action)
        continuous = self._decode(index)
        obs, reward, terminated, truncated, info = self.env.step(continuous)
        obs = self._remember(obs)
        info[CONTINUOUS_ACTION_KEY] = continuous
        info[ACTION_INDEX_KEY] = index
        return obs, reward, terminated, truncated, info

    def action(self, action: Any) -> np.ndarray:
        """The continuous ``(act_dim,)`` action ``action`` decodes to at the current observation."""
        return self._decode(self._index(action))

    def action_masks(self) -> np.ndarray:
        """``(n,)`` bool: which indices the action set considers valid at the current observation.

        sb3-contrib's ``MaskablePPO`` calls this before every step. The candidate table is
        computed once per observation and reused by the following ``step``.
        """
        return self._candidate_table()[1].copy()

    def _candidate_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(n, act_dim)`` candidates and ``(n,)`` validity at the current observation, once."""
        if self._valid is None or self._candidate_actions is None:
            actions, valid = self.action_set.candidates(self._current_obs())
            self._candidate_actions = np.asarray(actions)[0]
            self._valid = np.asarray(valid, dtype=bool).reshape(self._n)
        return self._candidate_actions, self._valid

    @property
    def current_observation(self) -> np.ndarray | None:
        """The float32 observation the next index will be decoded at (``None`` before reset).

        The env's own observation, also with ``observe_candidates``.
        """
        return None if self._obs_batch is None else self._obs_batch[0]

    def _remember(self, obs: Any) -> Any:
        """Remember ``obs`` to decode at; return what the agent sees of it."""
        # A private copy per observation: the env or the agent may modify the array they hold
        # in place, and action sets may keep a reference to what they were given (e.g. to
        # cache), so neither a view nor a shared buffer overwritten in place would be safe.
        batch = np.array(obs, dtype=np.float32, copy=True)[None]
        self._candidate_actions = None
        self._valid = None
        if not self.observe_candidates:
            self._obs_batch = batch
            return obs
        self._obs_batch = None  # if decoding fails, nothing is left to act on until reset()
        self._seen_batch, actions, valid = _observed_candidates(self.action_set, self._n, batch)
        self._candidate_actions, self._valid = actions[0], valid[0]
        self._obs_batch = batch
        # a copy: the cached table is a view of the private one, which the agent must not edit
        return self._seen_batch[0].copy()

    def _current_obs(self) -> np.ndarray:
        if self._obs_batch is None:
            raise ResetNeeded(
                "SAQActionWrapper needs an observation to decode at: call reset() before step() "
                "or action_masks()"
            )
        return self._obs_batch

    def _index(self, action: Any) -> int:
        """Return ``action`` as an ``int`` in ``[0, n)``; Python/NumPy integer scalars are cheap."""
        try:
            index = operator.index(action)
        except TypeError:
            index = self._index_slow(action)
        if not 0 <= index < self._n:
            raise DataError(
                f"action index {index} is outside the action space Discrete({self._n}): "
                f"expected an integer in [0, {self._n})"
            )
        return index

    def _index_slow(self, action: Any) -> int:
        array = np.asarray(action)
        if array.size != 1:
            raise DataError(
                f"expected one action index for Discrete({self._n}), got an array of shape "
                f"{array.shape}"
            )
        flat = array.reshape(1)
        if not np.issubdtype(flat.dtype, np.integer):
            # Whole floats (3.0) are accepted like check_indices does; anything else is refused
            # with its message, which names the dtype.
            return int(check_indices(flat, np.iinfo(np.int64).max, 1)[0])
        return int(flat[0])

    def _decode(self, index: int) -> np.ndarray:
        obs = self._current_obs()
        if self.acting is not None:
            actions, valid = self._candidate_table()
            seen = self._seen_batch if self.observe_candidates else obs
            weights = _weights_at(self.code_weights, seen, valid[None], self._n)
            continuous = self.acting.act(actions[None], weights, np.array((index,)))[0]
        elif self._candidate_actions is not None:
            continuous = np.array(self._candidate_actions[index], dtype=np.float32)
        else:
            continuous = self.action_set.decode(obs, np.array((index,), dtype=np.int64))[0]
        if self._clip is not None:
            continuous = np.clip(continuous, self._clip[0], self._clip[1])
        return continuous


class SAQVectorActionWrapper(VectorActionWrapper, gym.utils.RecordConstructorArgs):
    """Vector-env version of :class:`SAQActionWrapper`: ``MultiDiscrete([n] * num_envs)`` actions.

    The whole batch of indices is decoded with ONE ``action_set.decode`` call at the batch of
    observations the agent last saw, so a neural quantizer runs one batched forward pass per
    vector step instead of ``num_envs`` small ones.

    Autoreset: the remembered observations are exactly the ones ``reset``/``step`` returned, which
    are the ones the agent acts on under every Gymnasium autoreset mode. Under the default
    ``NEXT_STEP`` mode (the only one in Gymnasium 1.0), a sub-env that ended is reset by the next
    ``step`` and ignores its action; its row of ``info["continuous_action"]`` is still filled (it
    is decoded at the final observation) but ``info["_continuous_action"]`` is ``False`` there,
    following Gymnasium's vector ``info`` convention of ``"_key"`` masks.

    ``step`` adds to ``info``: ``"continuous_action"`` ``(num_envs, act_dim)``, ``"action_index"``
    ``(num_envs,)`` int64, and their ``"_continuous_action"``/``"_action_index"`` masks.

    Example:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> from saq_wrappers.action_set import FixedActionSet
        >>> from saq_wrappers.wrappers import SAQVectorActionWrapper
        >>> envs = gym.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync")
        >>> grid = FixedActionSet.grid(
        ...     envs.single_observation_space, envs.single_action_space, bins=5)
        >>> envs = SAQVectorActionWrapper(envs, grid)
        >>> envs.action_space
        MultiDiscrete([5 5 5])
        >>> obs, info = envs.reset(seed=0)
        >>> obs, rewards, terminations, truncations, info = envs.step(np.array([0, 2, 4]))
        >>> info["continuous_action"]
        array([[-2.],
               [ 0.],
               [ 2.]], dtype=float32)
        >>> envs.action_masks().shape
        (3, 5)
        >>> envs.close()

    Args:
        env: a Gymnasium ``VectorEnv`` (``SyncVectorEnv``, ``AsyncVectorEnv``, ...) whose
            single action space is a ``Box`` of the action set's shape and whose single
            observation space is a ``Box`` of the action set's observation shape.
        action_set: any :class:`~saq_wrappers.action_set.ActionSet`.
        acting: as for :class:`SAQActionWrapper`; the climbs of all sub-envs run as one batch.
        code_weights: as for :class:`SAQActionWrapper`, called once per step on the whole batch.
        observe_candidates: as for :class:`SAQActionWrapper`: ``single_observation_space`` is
            the candidate observations' ``Box`` and ``observation_space`` its batch; all
            sub-envs' candidates are decoded in one ``candidates`` call per ``reset``/``step``.

    Raises:
        SpaceMismatchError: the sub-envs' spaces do not fit the action set, or
            ``observe_candidates`` with observations that are not flat.
        TypeError: ``env`` is not a vector env (use :class:`SAQActionWrapper`).
        DataError: from ``reset``/``step`` with ``observe_candidates``, an action set with an
            invalid candidate at some sub-env's observation.
    """

    def __init__(
        self,
        env: VectorEnv,
        action_set: ActionSet,
        acting: ModeAveraging | None = None,
        code_weights: CodeWeights | None = None,
        observe_candidates: bool = False,
    ) -> None:
        if not isinstance(env, VectorEnv):
            raise TypeError(
                "SAQVectorActionWrapper wraps a gymnasium.vector.VectorEnv, got "
                f"{type(env).__name__}: use SAQActionWrapper for a single env"
            )
        _check_options(acting, code_weights, observe_candidates)
        gym.utils.RecordConstructorArgs.__init__(
            self,
            **_constructor_args(action_set, acting, code_weights, observe_candidates),
            _disable_deepcopy=True,
        )
        VectorActionWrapper.__init__(self, env)
        n = _action_set_size(action_set)
        try:
            check_spaces_match(
                action_set, env.single_observation_space, env.single_action_space, where="env"
            )
        except SpaceMismatchError as error:
            raise _mismatch("vector env", error, action_set) from None
        self.action_set = action_set
        self.acting = acting
        self.code_weights = code_weights
        self.observe_candidates = bool(observe_candidates)
        self._n = n
        self.single_action_space = Discrete(n)
        self.action_space = batch_space(self.single_action_space, env.num_envs)
        if self.observe_candidates:
            self.single_observation_space = _observed_space(action_set)
            self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self._clip = _clip_bounds(env.single_action_space, action_set)
        self._next_step_autoreset = _uses_next_step_autoreset(env)
        self._obs_batch: np.ndarray | None = None
        # (num_envs, obs_dim + n * act_dim) candidate observations, with observe_candidates only
        self._seen_batch: np.ndarray | None = None
        self._ended = np.zeros(env.num_envs, dtype=bool)
        self._candidate_actions: np.ndarray | None = None
        self._valid: np.ndarray | None = None

    def reset(
        self,
        *,
        seed: int | list[int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the sub-envs and remember the batch of first observations."""
        obs, info = self.env.reset(seed=seed, options=options)
        obs = self._remember(obs)
        self._ended = np.zeros(self.num_envs, dtype=bool)
        return obs, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Decode the batch of indices in one call, step every sub-env, remember the new batch."""
        indices = self._indices(actions)
        continuous = self._decode(indices)
        obs, rewards, terminations, truncations, info = self.env.step(continuous)
        executed = ~self._ended if self._next_step_autoreset else np.ones(self.num_envs, bool)
        obs = self._remember(obs)
        self._ended = np.logical_or(terminations, truncations)
        info[CONTINUOUS_ACTION_KEY] = continuous
        info["_" + CONTINUOUS_ACTION_KEY] = executed
        info[ACTION_INDEX_KEY] = indices
        info["_" + ACTION_INDEX_KEY] = executed.copy()
        return obs, rewards, terminations, truncations, info

    def actions(self, actions: Any) -> np.ndarray:
        """The ``(num_envs, act_dim)`` continuous actions the indices decode to right now."""
        return self._decode(self._indices(actions))

    def action_masks(self) -> np.ndarray:
        """``(num_envs, n)`` bool: valid indices of every sub-env at its current observation."""
        return self._candidate_table()[1].copy()

    def _candidate_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(num_envs, n, act_dim)`` candidates and ``(num_envs, n)`` validity, once per step."""
        if self._valid is None or self._candidate_actions is None:
            actions, valid = self.action_set.candidates(self._current_obs())
            self._candidate_actions = np.asarray(actions)
            self._valid = np.asarray(valid, dtype=bool).reshape(self.num_envs, self._n)
        return self._candidate_actions, self._valid

    @property
    def current_observations(self) -> np.ndarray | None:
        """The float32 batch the next indices will be decoded at (``None`` before reset).

        The sub-envs' own observations, also with ``observe_candidates``.
        """
        return self._obs_batch

    def _remember(self, obs: Any) -> Any:
        """Remember the batch ``obs`` to decode at; return what the agent sees of it."""
        batch = np.asarray(obs, dtype=np.float32)
        if batch is obs:
            # Vector envs created with copy=False return a buffer they overwrite in place.
            batch = obs.copy()
        self._candidate_actions = None
        self._valid = None
        if not self.observe_candidates:
            self._obs_batch = batch
            return obs
        self._obs_batch = None  # if decoding fails, nothing is left to act on until reset()
        self._seen_batch, self._candidate_actions, self._valid = _observed_candidates(
            self.action_set, self._n, batch
        )
        self._obs_batch = batch
        # a copy: the cached table is a view of the private one, which the agent must not edit
        return self._seen_batch.copy()

    def _current_obs(self) -> np.ndarray:
        if self._obs_batch is None:
            raise ResetNeeded(
                "SAQVectorActionWrapper needs observations to decode at: call reset() before "
                "step() or action_masks()"
            )
        return self._obs_batch

    def _indices(self, actions: Any) -> np.ndarray:
        """Return ``actions`` as int64 ``(num_envs,)`` in ``[0, n)`` or raise :class:`DataError`."""
        array = np.asarray(actions)
        if array.dtype.kind in "iu" and array.shape == (self.num_envs,):
            if array.size and (array.min() < 0 or array.max() >= self._n):
                bad = int(np.flatnonzero((array < 0) | (array >= self._n))[0])
                raise DataError(
                    f"action index {int(array[bad])} of sub-env {bad} is outside Discrete("
                    f"{self._n}): expected integers in [0, {self._n})"
                )
            return array.astype(np.int64, copy=True)
        return check_indices(array, self._n, self.num_envs)

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        obs = self._current_obs()
        if self.acting is not None:
            actions, valid = self._candidate_table()
            seen = self._seen_batch if self.observe_candidates else obs
            weights = _weights_at(self.code_weights, seen, valid, self._n)
            continuous = self.acting.act(actions, weights, indices)
        elif self._candidate_actions is not None:
            rows = np.arange(self.num_envs)
            continuous = np.asarray(self._candidate_actions[rows, indices], dtype=np.float32)
        else:
            continuous = self.action_set.decode(obs, indices)
        if self._clip is not None:
            continuous = np.clip(continuous, self._clip[0], self._clip[1])
        return continuous


def _uses_next_step_autoreset(env: VectorEnv) -> bool:
    """Whether a finished sub-env is reset by the *next* ``step`` (ignoring that step's action).

    Gymnasium 1.0 vector envs always do this; later versions name the mode in
    ``metadata["autoreset_mode"]`` (``AutoresetMode.NEXT_STEP`` is the default there too).
    """
    mode = env.metadata.get("autoreset_mode") if env.metadata else None
    if mode is None:
        return True
    return str(getattr(mode, "value", mode)) == "NextStep"
