"""Stable-Baselines3: online (fine-)tuning of discrete agents through :class:`SAQActionWrapper`.

``SAQActionWrapper(env, action_set)`` turns a continuous-control env into ``Discrete(n)``, so
SB3's discrete algorithms apply unchanged: ``DQN``, sb3-contrib's ``QRDQN``, and sb3-contrib's
``MaskablePPO``, which reads the wrapper's ``action_masks()`` so ARQ's dropped candidates
(likelihood below ``eps``) are never chosen.

The SAQ paper leaves online fine-tuning open (SAQ section 6: it is "not clear the best way to
adopt our method in the online finetuning setting"). This package makes one answer a supported,
measured path:

1. **Warm start.** :func:`warm_started_dqn` builds an SB3 DQN whose Q-network *is* the Q-network
   of a trained d3rlpy SAQ-CQL (``DiscreteCQL``) or SAQ-IQL (:class:`DiscreteIQL`, one of its
   critics) model: same ``K`` outputs, same MLP (``net_arch`` and activation read from the d3rlpy
   encoder), and the same observation normalization — d3rlpy's ``StandardObservationScaler``
   becomes an explicit :class:`StandardizeObservations` features extractor computing
   ``(x - mean) / (std + eps)`` with d3rlpy's own float32 statistics, so before any online
   update the DQN's Q-values are d3rlpy's bit for bit and its greedy actions are the offline
   policy's. Weights are copied, not shared; the optimizer state starts fresh.
2. **Conservative start (optional).** :class:`SAQDQN` is SB3's DQN with a CQL-style term
   ``alpha_t * E[logsumexp_k Q(s, k) - Q(s, a)]`` on replayed batches (the SAQ-CQL penalty,
   exact over the ``K`` codes) whose weight decays linearly from ``conservative_alpha`` to 0
   over the first ``conservative_steps`` env steps, and an optional double-DQN target (what
   d3rlpy's ``DiscreteCQL`` trains with).
3. **Frozen quantizer.** The action set is never updated online: the discretization the
   offline Q-values are indexed by must mean the same actions after fine-tuning. Codes the
   offline data never used stay decodable actions (the decoder maps ``(s, k)`` to *some*
   action for every ``k``); their Q-values come from the offline net, where SAQ-CQL pushed them
   down (pessimistic) without any data to pull them back, so the agent tries them only through
   exploration, and they are learned online from then on like any other index.

Example:
    >>> import gymnasium as gym                                          # doctest: +SKIP
    >>> from saq_wrappers.integrations.sb3 import make_saq_vec_env, warm_started_dqn
    >>> venv = make_saq_vec_env("Pendulum-v1", quantizer, n_envs=1, seed=0)
    >>> dqn = warm_started_dqn(venv, cql, conservative_alpha=1.0, conservative_steps=5_000)
    >>> dqn.learn(20_000)

The offline-to-online recipe (offline SAQ-CQL, then online DQN from it, next to DQN from
scratch and the offline policy alone, return vs env steps) is ``saq finetune``
(:mod:`saq_wrappers.app.finetune`; user guide ``docs/guide/finetune.md``).

Modules, one job each:

- :mod:`.envs`: SB3 ``VecEnv`` of SAQ-wrapped tasks (:func:`make_saq_vec_env`);
- :mod:`.features`: :class:`StandardizeObservations`, d3rlpy's observation scaler as an SB3 layer;
- :mod:`.d3rlpy_bridge`: reading a d3rlpy Q-network and copying it into an SB3 DQN;
- :mod:`.dqn`: :class:`SAQDQN`, :func:`warm_started_dqn`, :func:`add_offline_transitions`;
- :mod:`.agents`: :func:`make_agent` and :func:`evaluation_policy` (an agent as an evaluation
  policy; also exported under its former name ``sb3_policy``);
- :mod:`.callbacks`: :class:`EvaluationCurveCallback` (return vs env steps);
- :mod:`.models`: loading SB3 model files of continuous agents (:func:`load_sb3_model`) and
  :func:`rollout_policy` (such an agent as a single-observation policy for rollouts). SB3 model
  files (``.zip``) are loaded without running their pickles; ``trust_pickle=True`` is for
  files you trust.
"""

from __future__ import annotations

from saq_wrappers.integrations import requires_extra

with requires_extra("sb3", needed_by=__name__):  # SB3 first: a user missing all hears of it
    import stable_baselines3  # noqa: F401
    import sb3_contrib  # noqa: F401
    import d3rlpy  # noqa: F401 - the warm start reads d3rlpy models (the sb3 extra installs it)

from .agents import AGENTS, evaluation_policy, make_agent
from .callbacks import EvaluationCurveCallback
from .d3rlpy_bridge import d3rlpy_q_network, dqn_policy_kwargs, warm_start_dqn
from .dqn import SAQDQN, add_offline_transitions, warm_started_dqn
from .envs import make_saq_vec_env
from .features import StandardizeObservations
from .models import detect_algorithm, load_sb3_model, rollout_policy

#: Former name of :func:`evaluation_policy`, kept importable from this package.
sb3_policy = evaluation_policy

__all__ = [
    "AGENTS",
    "SAQDQN",
    "EvaluationCurveCallback",
    "StandardizeObservations",
    "add_offline_transitions",
    "d3rlpy_q_network",
    "detect_algorithm",
    "dqn_policy_kwargs",
    "evaluation_policy",
    "load_sb3_model",
    "make_agent",
    "make_saq_vec_env",
    "rollout_policy",
    "sb3_policy",
    "warm_start_dqn",
    "warm_started_dqn",
]
