"""The fields every d3rlpy config of the library shares are checked once, when the config is made
(``integrations/d3rlpy/_config_checks.py``), for DiscreteIQL and DiscreteBRAC alike: a batch of 0
trains on empty minibatches (a NaN loss), a NaN discount or a target rate above 1 diverges, a zero
learning rate never moves."""

from __future__ import annotations

import pytest

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy import DiscreteBRACConfig, DiscreteIQLConfig

COMMON_FIELD_CASES = [
    ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
    ("batch_size", 2.5, "batch_size must be an integer >= 1, got 2.5"),
    ("n_critics", 0, "n_critics must be an integer >= 1, got 0"),
    ("gamma", float("nan"), "gamma must be a finite number >= 0 and <= 1, got nan"),
    ("gamma", 1.5, "gamma must be a finite number >= 0 and <= 1, got 1.5"),
    ("tau", 2.0, "tau must be a finite number > 0 and <= 1, got 2.0"),
    ("tau", 0.0, "tau must be a finite number > 0 and <= 1, got 0.0"),
    ("critic_learning_rate", 0.0, "critic_learning_rate must be a finite number > 0, got 0.0"),
    ("actor_learning_rate", float("inf"), "actor_learning_rate must be a finite number > 0, got inf"),
    ("behavior_learning_rate", float("nan"), "behavior_learning_rate must be a finite number > 0, got nan"),
]


@pytest.mark.parametrize("config_class", [DiscreteIQLConfig, DiscreteBRACConfig], ids=lambda c: c.__name__)
@pytest.mark.parametrize("field, value, message", COMMON_FIELD_CASES)
def test_bad_common_fields_are_refused_when_the_config_is_made(config_class: type, field: str, value: object,
                                                                message: str) -> None:
    with pytest.raises(DataError, match=message):
        config_class(**{field: value})
    good = config_class(batch_size=8, gamma=1.0, tau=1.0)
    assert config_class.deserialize(good.serialize()) == good
