"""The policy over codes of a trained discrete d3rlpy algorithm, as the wrappers' ``code_weights``.

Mode averaging (:mod:`saq_wrappers.mode_acting`) climbs the action density the agent's own policy
puts on the decoded codes. Each of the four SAQ algorithms has its policy:

* SAQ-BC (d3rlpy's ``DiscreteBC``): the classifier's softmax, ``pi(k | s)``.
* SAQ-CQL (d3rlpy's ``DiscreteCQL``, and any ``DQN``-like critic): ``softmax(Q(s, .))``, the policy
  whose log-partition ``logsumexp_k Q(s, k)`` is CQL(H)'s regularizer (the ``mu`` maximizing
  ``E_mu[Q] + H(mu)`` is ``exp(Q) / Z``), so it is the distribution SAQ-CQL's penalty pushes
  toward the data's codes.
* SAQ-IQL (our ``DiscreteIQL``): the policy it acts with, SAQ eq. 10.
* SAQ-BRAC (our ``DiscreteBRAC``): its actor ``pi_phi``.

Every forward pass applies the algorithm's observation scaler first, as ``predict`` does.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoBase
from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCImpl
from d3rlpy.algos.qlearning.torch.dqn_impl import DQNImpl
from d3rlpy.torch_utility import convert_to_torch_recursively

from saq_wrappers.errors import NotFittedError
from saq_wrappers.integrations.d3rlpy.discrete import policy_probabilities

__all__ = ["code_weights"]


def code_weights(algo: QLearningAlgoBase[Any, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """``observations (B, *obs_shape) -> (B, K)`` probabilities of the codes under ``algo``'s policy.

    Pass the result to ``SAQActionWrapper(env, quantizer, acting=ModeAveraging(),
    code_weights=code_weights(algo))``.

    Raises:
        NotFittedError: ``algo`` is not built (fit or load it first).
        TypeError: an algorithm with no policy over codes known here (the supported ones are
            listed in the module docstring).
    """
    impl = algo.impl
    if impl is None:
        raise NotFittedError(f"{type(algo).__name__} is not built: fit it, or load it with "
                             "d3rlpy.load_learnable, before acting with its code weights")
    if hasattr(impl, "policy_log_probs"):
        return lambda x: policy_probabilities(algo, x)
    if isinstance(impl, DiscreteBCImpl):
        return lambda x: _softmax_of(algo, x, lambda t: impl._modules.imitator(t).logits)  # noqa: SLF001
    if isinstance(impl, DQNImpl):
        return lambda x: _softmax_of(algo, x, impl._q_func_forwarder.compute_expected_q)  # noqa: SLF001
    raise TypeError(f"no policy over codes is known for {type(algo).__name__}: code_weights supports "
                    "DiscreteBC, DiscreteCQL / DQN / DoubleDQN and saq-wrappers' DiscreteIQL and "
                    "DiscreteBRAC")


def _softmax_of(
    algo: QLearningAlgoBase[Any, Any], x: np.ndarray, scores: Callable[[torch.Tensor], torch.Tensor]
) -> np.ndarray:
    torch_x = convert_to_torch_recursively(np.asarray(x, dtype=np.float32), algo._device)  # noqa: SLF001
    with torch.no_grad():
        if algo.config.observation_scaler:
            torch_x = algo.config.observation_scaler.transform(torch_x)
        return torch.softmax(scores(torch_x).double(), dim=1).cpu().numpy()
