"""The observation scaler of every preset: d3rlpy's standardization with the library's rule for
near-constant dimensions.

d3rlpy's ``StandardObservationScaler`` computes ``(x - mean) / (std + eps)`` with ``eps = 1e-3``,
so a dimension that was constant in the data is divided by 1e-3 and a run-time move of a few
thousandths becomes several standard deviations of input (what made SAQ-BC collapse on the D4RL
kitchen data under the environment's observation noise). :class:`RobustStandardObservationScaler`
fits the same statistics the same way and then replaces the std of each near-constant dimension by
the typical spread of the dimensions that vary
(:func:`~saq_wrappers.vqvae.normalization.robust_std`, the rule the quantizer's and the score
sampler's :class:`~saq_wrappers.vqvae.normalization.Normalizer` use). Its transform is d3rlpy's,
unchanged, so data without near-constant dimensions are standardized bit for bit as before, and
anything that reads a ``StandardObservationScaler`` (the SB3 bridge) reads this one too.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from d3rlpy.dataset import EpisodeBase, TrajectorySlicerProtocol, TransitionPickerProtocol
from d3rlpy.preprocessing import StandardObservationScaler, register_observation_scaler

from saq_wrappers.vqvae.normalization import robust_std

__all__ = ["CandidateObservationScaler", "RobustStandardObservationScaler"]


@dataclasses.dataclass()
class RobustStandardObservationScaler(StandardObservationScaler):
    """d3rlpy's ``StandardObservationScaler`` whose fitted std gives each near-constant dimension
    the reference spread (:func:`~saq_wrappers.vqvae.normalization.robust_std`).

    ``transform(x) = (x - mean) / (std + eps)`` exactly as d3rlpy's (``eps`` 1e-3 by default, a
    numerical guard); only ``fit`` differs, after d3rlpy's own computation of ``mean`` and
    ``std``. Statistics given to the constructor are used as they are (the scaler is then built
    and never fitted). Registered with d3rlpy under :meth:`get_type` when this module is
    imported (importing ``saq_wrappers.integrations.d3rlpy`` does it), so ``save_learnable`` /
    ``load_learnable`` round-trip it; models saved with d3rlpy's own scaler load as before.

    Example::

        from saq_wrappers.integrations.d3rlpy.presets import saq_bc_config
        config = saq_bc_config()   # observation_scaler=RobustStandardObservationScaler()
    """

    def fit_with_transition_picker(
        self, episodes: Sequence[EpisodeBase], transition_picker: TransitionPickerProtocol
    ) -> None:
        """d3rlpy's fit, then :func:`~saq_wrappers.vqvae.normalization.robust_std` on ``std``."""
        super().fit_with_transition_picker(episodes, transition_picker)
        self.std = robust_std(self.std)

    def fit_with_trajectory_slicer(
        self, episodes: Sequence[EpisodeBase], trajectory_slicer: TrajectorySlicerProtocol
    ) -> None:
        """d3rlpy's fit, then :func:`~saq_wrappers.vqvae.normalization.robust_std` on ``std``."""
        super().fit_with_trajectory_slicer(episodes, trajectory_slicer)
        self.std = robust_std(self.std)

    @staticmethod
    def get_type() -> str:
        """The name this scaler is saved under in a d3rlpy config."""
        return "saq_robust_standard"


register_observation_scaler(RobustStandardObservationScaler)


@dataclasses.dataclass()
class CandidateObservationScaler(RobustStandardObservationScaler):
    """:class:`RobustStandardObservationScaler` on the state part of a candidate observation
    (:mod:`saq_wrappers.candidate_observations`), the identity on its last
    ``n_candidate_values`` entries (the decoded actions).

    Why: a policy parametrized as one action density evaluated at every candidate
    (:class:`~saq_wrappers.integrations.d3rlpy.torch.density_policy.ActionDensityPolicy`) needs
    all candidates in the same units; standardizing each candidate slot by its own statistics
    would give every code a different unit. After the fit, the candidate entries get mean 0 and
    std ``1 - eps``, so d3rlpy's unchanged ``(x - mean) / (std + eps)`` divides them by one.
    """

    n_candidate_values: int = 0

    def fit_with_transition_picker(
        self, episodes: Sequence[EpisodeBase], transition_picker: TransitionPickerProtocol
    ) -> None:
        """d3rlpy's fit; then the robust rule on the state part, the identity on the candidates."""
        StandardObservationScaler.fit_with_transition_picker(self, episodes, transition_picker)
        self._split_statistics()

    def fit_with_trajectory_slicer(
        self, episodes: Sequence[EpisodeBase], trajectory_slicer: TrajectorySlicerProtocol
    ) -> None:
        """d3rlpy's fit; then the robust rule on the state part, the identity on the candidates."""
        StandardObservationScaler.fit_with_trajectory_slicer(self, episodes, trajectory_slicer)
        self._split_statistics()

    def _split_statistics(self) -> None:
        assert self.mean is not None and self.std is not None
        n, size = self.n_candidate_values, self.mean.shape[-1]
        if not 0 < n < size:
            raise ValueError(f"n_candidate_values must be in [1, {size}) for observations of size {size}, got {n}")
        mean, std = np.array(self.mean, dtype=np.float64), np.array(self.std, dtype=np.float64)
        std[:-n] = robust_std(std[:-n])  # the reference spread of the state's own dimensions
        mean[-n:] = 0.0
        std[-n:] = 1.0 - self.eps
        self.mean, self.std = mean, std

    @staticmethod
    def get_type() -> str:
        """The name this scaler is saved under in a d3rlpy config."""
        return "saq_candidate_standard"


register_observation_scaler(CandidateObservationScaler)
