"""ARQ: a score-based generative model of the behavior policy as an ``ActionSet``.

* :class:`ScoreSupportSampler` -- ``N`` candidates per state, valid where the model's
  log-likelihood (normalized action space) is above ``log_eps = -5``.
* :func:`ode_sample` (fast: samples + log-likelihoods from one PF-ODE solve),
  :func:`pc_sample` (the paper's predictor-corrector), :func:`ode_log_likelihood` (RK45).
* :func:`precompute_candidate_table` / :class:`CandidateTable` -- the paper's "prepopulating".
"""

from __future__ import annotations

from saq_wrappers.score.analytic import GaussianMixtureScore
from saq_wrappers.score.likelihood import ode_log_likelihood
from saq_wrappers.score.network import EnsembleScore, ScoreFunction, ScoreNet
from saq_wrappers.score.sampler import DEFAULT_LOG_EPS, NotFittedError, ScoreSupportSampler
from saq_wrappers.score.sampling import ode_sample, pc_sample
from saq_wrappers.score.sde import VPSDE
from saq_wrappers.score.table import CandidateTable, precompute_candidate_table

__all__ = [
    "CandidateTable",
    "DEFAULT_LOG_EPS",
    "EnsembleScore",
    "GaussianMixtureScore",
    "NotFittedError",
    "ScoreFunction",
    "ScoreNet",
    "ScoreSupportSampler",
    "VPSDE",
    "ode_log_likelihood",
    "ode_sample",
    "pc_sample",
    "precompute_candidate_table",
]
