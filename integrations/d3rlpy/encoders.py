"""A clear error, before any network is built, when an encoder factory cannot take the observations.

d3rlpy accepts tuple observations (``observation_shape=((100,), (200,))``) but its built-in
encoder factories build encoders for one array only: ``DefaultEncoderFactory`` (the default of
every d3rlpy algorithm and of ours) hands a tuple shape to ``VectorEncoderFactory``, which stops on
a bare ``assert len(observation_shape) == 1``. d3rlpy's own algorithms fail the same way; with a
tuple-aware factory (d3rlpy's test suite uses one) they and ours train on tuple observations.
"""

from __future__ import annotations

from d3rlpy.dataset import is_tuple_shape
from d3rlpy.models.encoders import (
    DefaultEncoderFactory,
    EncoderFactory,
    PixelEncoderFactory,
    SimBaEncoderFactory,
    VectorEncoderFactory,
)
from d3rlpy.types import Shape

from saq_wrappers.errors import DataError

__all__ = ["check_encoders_accept"]

#: d3rlpy's built-in factories, whose encoders read one observation array (not a tuple of them).
_SINGLE_ARRAY_FACTORIES: tuple[type[EncoderFactory], ...] = (
    DefaultEncoderFactory,
    VectorEncoderFactory,
    PixelEncoderFactory,
    SimBaEncoderFactory,
)


def check_encoders_accept(algo_name: str, observation_shape: Shape, **factories: EncoderFactory) -> None:
    """Raise :class:`~saq_wrappers.errors.DataError` if a tuple ``observation_shape`` meets one of
    d3rlpy's single-array encoder factories (``factories`` maps config field names to factories)."""
    if not is_tuple_shape(observation_shape):
        return
    single = [name for name, factory in factories.items() if isinstance(factory, _SINGLE_ARRAY_FACTORIES)]
    if single:
        raise DataError(
            f"{algo_name} got tuple observations of shapes {tuple(map(tuple, observation_shape))}, but "
            f"{', '.join(single)} {'is' if len(single) == 1 else 'are'} d3rlpy's single-array "
            f"{type(factories[single[0]]).__name__} (d3rlpy's default, which fails the same way in "
            "d3rlpy's own algorithms): pass an EncoderFactory whose create() accepts a tuple of "
            "shapes, registered with d3rlpy.models.register_encoder_factory"
        )
