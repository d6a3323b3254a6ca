"""Evaluating d3rlpy algorithms in an env, discrete ones through an ActionSet wrapper.

A trained model meets an env (and an action set) only when they fit: :func:`check_algo_fits`
compares the model's number of codes with the action set's (a K = 8 model would otherwise act
through a K = 16 quantizer without a word), discrete against continuous, and the observation
shape, before the first step. Every episode has a step limit
(:func:`saq_wrappers.evaluation.episode_step_limit`), in our evaluation and in d3rlpy's.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoBase
from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCImpl
from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import ReplayBufferBase
from d3rlpy.metrics import EnvironmentEvaluator

from saq_wrappers.action_set import ActionSet
from saq_wrappers.errors import NotFittedError, SpaceMismatchError
from saq_wrappers.evaluation import EvaluationResult, check_episodes, episode_step_limit, evaluate, time_limit
from saq_wrappers.integrations.d3rlpy.acting import code_weights
from saq_wrappers.integrations.d3rlpy.candidate_networks import observes_candidates
from saq_wrappers.mode_acting import ModeAveraging
from saq_wrappers.wrappers import SAQActionWrapper


def check_algo_fits(algo: Any, env: gym.Env[Any, Any], action_set: ActionSet | None = None) -> None:
    """Raise unless ``algo`` can act on ``env`` (through ``action_set`` when given).

    With an action set, ``algo`` must be discrete with one output per code
    (``algo.action_size == action_set.n``); without, its actions must be the env's: discrete with
    ``Discrete(n).n`` outputs, or continuous of the ``Box``'s size. Its observation shape must be
    the env's. A d3rlpy algorithm must be built (trained or loaded); any other object (a policy
    stand-in) is checked only for an ``action_size`` it declares.

    Raises:
        NotFittedError: an unbuilt d3rlpy algorithm.
        SpaceMismatchError: what the model was trained on, against what it was given.
    """
    name = type(algo).__name__
    if not isinstance(algo, QLearningAlgoBase):
        declared = getattr(algo, "action_size", None)
        if declared is not None and action_set is not None:
            _check_codes(name, int(declared), action_set)
        return
    if algo.impl is None:
        raise NotFittedError(f"{name} is not built: fit it, or load it with d3rlpy.load_learnable, before "
                             "evaluating")
    size, continuous = int(algo.action_size), algo.get_action_type() == ActionSpace.CONTINUOUS
    space = env.action_space
    if action_set is not None:
        if continuous:
            raise SpaceMismatchError(
                f"{name} acts on continuous actions of size {size}, but an action set was given (its "
                f"{action_set.n} codes are discrete actions): evaluate it on the raw env without action_set, "
                "or train a discrete algorithm on the codes")
        _check_codes(name, size, action_set)
    elif isinstance(space, gym.spaces.Discrete):
        if continuous or size != int(space.n):
            raise SpaceMismatchError(f"{name} acts on {'continuous actions of size' if continuous else 'codes'} "
                                     f"{size}, the env's action space is {space}")
    elif not continuous:
        raise SpaceMismatchError(
            f"{name} acts on {size} discrete codes, but the env's action space is {space} (a Box): pass "
            "the action set (quantizer) it was trained with")
    elif size != int(np.prod(space.shape)):
        raise SpaceMismatchError(f"{name} outputs {size}-dimensional actions, the env's action space is "
                                 f"{space} of shape {space.shape}")
    trained, expected = algo.observation_shape, env.observation_space.shape
    if expected is not None and all(isinstance(d, (int, np.integer)) for d in trained) and tuple(trained) != expected:
        raise SpaceMismatchError(f"{name} was trained on observation shape {tuple(trained)}, the env's observations "
                                 f"have shape {expected}")


def _check_codes(name: str, size: int, action_set: ActionSet) -> None:
    if size != action_set.n:
        raise SpaceMismatchError(f"{name} was trained on {size} codes, the action set has {action_set.n}: "
                                 "evaluate it with the quantizer (action set) it was trained with")


class _CheckedEnvironmentEvaluator(EnvironmentEvaluator):
    """d3rlpy's ``EnvironmentEvaluator`` that checks the algorithm against the env first."""

    def __init__(self, env: gym.Env[Any, Any], action_set: ActionSet, n_trials: int) -> None:
        super().__init__(env, n_trials=n_trials)
        self._action_set = action_set

    def __call__(self, algo: Any, dataset: ReplayBufferBase) -> float:
        check_algo_fits(algo, self._env, self._action_set)
        return super().__call__(algo, dataset)


def saq_environment_evaluator(
    env: gym.Env[Any, Any], action_set: ActionSet, n_trials: int = 10, seed: int = 0,
    observe_candidates: bool = False,
) -> EnvironmentEvaluator:
    """d3rlpy's own ``EnvironmentEvaluator`` on ``SAQActionWrapper(env, action_set)``.

    Pass it to ``algo.fit(..., evaluators={"environment": ...})`` exactly like d3rlpy's
    evaluator for a discrete env. The wrapped env is seeded once with ``seed``; d3rlpy resets it
    without a seed afterwards, so consecutive evaluations see fresh but reproducible episodes.
    Each call first checks the algorithm against the action set (:func:`check_algo_fits`);
    d3rlpy's loop has no step limit of its own, so an env without a ``TimeLimit`` gets one of
    :func:`~saq_wrappers.evaluation.episode_step_limit` steps. ``observe_candidates=True`` for
    an algorithm that reads candidate observations
    (:func:`~saq_wrappers.integrations.d3rlpy.candidate_networks.observes_candidates`).

    Raises:
        DataError: ``n_trials`` not an integer from 1 to ``MAX_EPISODES``, or a bad ``seed``.
    """
    n_trials, seed = check_episodes(n_trials, seed, name="n_trials")
    wrapped: gym.Env[Any, Any] = SAQActionWrapper(env, action_set, observe_candidates=observe_candidates)
    limit = episode_step_limit(wrapped)
    if time_limit(wrapped) != limit:
        wrapped = gym.wrappers.TimeLimit(wrapped, limit)
    wrapped.reset(seed=seed)
    wrapped.action_space.seed(seed)
    return _CheckedEnvironmentEvaluator(wrapped, action_set, n_trials=n_trials)


def evaluate_algo(
    algo: Any,
    env: gym.Env[Any, Any],
    action_set: ActionSet | None = None,
    n_episodes: int = 10,
    seed: int = 0,
    progress: bool = True,
    greedy: bool = True,
    max_steps: int | None = None,
    acting: ModeAveraging | None = None,
) -> EvaluationResult:
    """Returns over ``n_episodes`` seeded episodes, acting greedily (``algo.predict``) or, with
    ``greedy=False``, by sampling the algorithm's policy (``algo.sample_action``; the authors
    sample SAQ-IQL's codes from eq. 10). d3rlpy 2.8.1's ``DiscreteBC`` returns its arg-max from
    ``sample_action``, so a discrete BC (SAQ-BC, with either policy over codes) samples its code
    from its classifier's probabilities here (:func:`sample_codes`); d3rlpy's continuous ``BC``
    returns its mean either way.

    With ``action_set``, the algorithm is a discrete one on codes and acts through
    ``SAQActionWrapper(env, action_set)``; without, it acts on ``env`` directly. The algorithm
    is checked against both first (:func:`check_algo_fits`); ``max_steps`` bounds every episode
    (see :func:`~saq_wrappers.evaluation.evaluate`). With ``acting`` (and an action set), the
    chosen code picks a mode and the env gets that mode's mean under the algorithm's own policy
    over codes (:func:`~saq_wrappers.integrations.d3rlpy.acting.code_weights`). An algorithm that
    reads candidate observations (:func:`~saq_wrappers.integrations.d3rlpy.candidate_networks.observes_candidates`)
    gets them from the wrapper.

    Raises:
        SpaceMismatchError: the model does not fit the env or the action set (e.g. its number of
            codes differs from ``action_set.n``), before any step.
        ValueError: ``acting`` without an action set.
        NotFittedError: an unbuilt d3rlpy algorithm.
    """
    if acting is not None and action_set is None:
        raise ValueError("acting (mode averaging) needs the action set the algorithm's codes decode with")
    if action_set is None:
        check_algo_fits(algo, env)
        target = env
    else:
        weights = code_weights(algo) if acting is not None else None
        target = SAQActionWrapper(env, action_set, acting=acting, code_weights=weights,
                                  observe_candidates=observes_candidates(algo))
        check_algo_fits(algo, target, action_set)  # against the observations it will see
    discrete_bc = isinstance(getattr(algo, "impl", None), DiscreteBCImpl)
    act = algo.predict if greedy else sample_codes(algo) if discrete_bc else algo.sample_action

    def policy(observations: np.ndarray) -> np.ndarray:
        return np.asarray(act(observations.astype(np.float32)))

    return evaluate(policy, target, n_episodes=n_episodes, seed=seed, max_steps=max_steps, progress=progress)


def sample_codes(algo: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``observations -> codes`` drawn from ``algo``'s policy over codes
    (:func:`~saq_wrappers.integrations.d3rlpy.acting.code_weights`) with torch's global generator,
    as d3rlpy's own ``sample_action`` draws: SAQ-BC's sampled acting, which d3rlpy's
    ``DiscreteBC.sample_action`` (its arg-max) does not give."""
    weights = code_weights(algo)

    def sample(observations: np.ndarray) -> np.ndarray:
        probabilities = torch.as_tensor(weights(observations))
        return torch.multinomial(probabilities, 1)[:, 0].numpy()

    return sample
