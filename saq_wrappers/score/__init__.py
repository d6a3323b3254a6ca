"""ARQ: a score-based generative model of the behavior policy as an ``ActionSet``.

One module per job:

* :mod:`.support_sampler` -- :class:`ScoreSupportSampler`, ``N`` candidates per state, valid
  where the model's log-likelihood (normalized action space) is above ``log_eps = -5``;
* :mod:`.probability_flow` -- :func:`ode_sample`, the fast path: samples and their
  log-likelihoods from one probability-flow ODE solve;
* :mod:`.pc_sampler` -- :func:`pc_sample`, the paper's predictor-corrector sampler;
* :mod:`.likelihood` -- :func:`ode_log_likelihood`, the RK45 likelihood of given actions;
* :mod:`.candidate_table` -- :func:`precompute_candidate_table` / :class:`CandidateTable`, the
  paper's "prepopulating" of candidates for every dataset state;
* :mod:`.sde` (:class:`VPSDE`), :mod:`.network` (:class:`ScoreNet`, :class:`EnsembleScore`),
  :mod:`.training` (denoising score matching), :mod:`.ode_solvers` (batched RK solvers) and
  :mod:`.gaussian_mixture` (:class:`GaussianMixtureScore`, closed-form scores for checking).
"""

from __future__ import annotations

from saq_wrappers.errors import NotFittedError
from saq_wrappers.score.candidate_table import CandidateTable, precompute_candidate_table
from saq_wrappers.score.gaussian_mixture import GaussianMixtureScore
from saq_wrappers.score.likelihood import ode_log_likelihood
from saq_wrappers.score.network import EnsembleScore, ScoreFunction, ScoreNet
from saq_wrappers.score.pc_sampler import pc_sample
from saq_wrappers.score.probability_flow import ode_sample
from saq_wrappers.score.sde import VPSDE
from saq_wrappers.score.support_sampler import DEFAULT_LOG_EPS, ScoreSupportSampler

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
