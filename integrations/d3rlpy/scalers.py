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

from d3rlpy.dataset import EpisodeBase, TrajectorySlicerProtocol, TransitionPickerProtocol
from d3rlpy.preprocessing import StandardObservationScaler, register_observation_scaler

from saq_wrappers.vqvae.normalization import robust_std

__all__ = ["RobustStandardObservationScaler"]


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
