"""The checks every d3rlpy config of the library runs on the fields they all share.

:class:`~saq_wrappers.integrations.d3rlpy.iql.DiscreteIQLConfig`,
:class:`~saq_wrappers.integrations.d3rlpy.brac.DiscreteBRACConfig` and
:class:`~saq_wrappers.integrations.d3rlpy.arq.ARQConfig` and
:class:`~saq_wrappers.integrations.d3rlpy.density_bc.DensityBCConfig` call :func:`check_common_fields` from
``__post_init__``, so a bad value fails when the config is made or deserialized
(``d3rlpy.load_learnable`` builds the config the same way), before any network is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from saq_wrappers.validation import check_int, check_number


def check_common_fields(config: Any) -> None:
    """Check the shared fields of a d3rlpy config dataclass.

    ``batch_size`` and ``n_critics`` (where the config has critics) must be integers >= 1 (a batch of 0 trains on empty
    minibatches: a NaN loss), ``gamma`` a finite number in ``[0, 1]``, ``tau`` (the soft target
    update rate) in ``(0, 1]`` (0 would freeze the targets), and every ``*learning_rate`` field a
    finite number > 0.

    Raises:
        DataError: naming the field, what was expected and the value given.
    """
    check_int("batch_size", config.batch_size, 1)
    check_number("gamma", config.gamma, 0, 1)
    if hasattr(config, "n_critics"):  # configs without critics (DensityBC) have neither
        check_int("n_critics", config.n_critics, 1)
    if hasattr(config, "tau"):
        check_number("tau", config.tau, 0, 1, exclusive_minimum=True)
    for field in dataclasses.fields(config):
        if field.name.endswith("learning_rate"):
            check_number(field.name, getattr(config, field.name), 0, exclusive_minimum=True)
