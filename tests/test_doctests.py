"""The ``Example:`` sections of the public docstrings run and print what they claim.

Users read these examples as the API's documentation (Gymnasium's wrappers carry a runnable
example in their class docstring, and ours follow), so each one is executed with :func:`doctest.testmod` against its
expected output. A module in :data:`MODULES` that loses all of its examples fails too, so an
example cannot silently disappear. Each example trains for a few dozen updates on Pendulum-v1 and
takes a few seconds at most.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

#: Modules whose docstrings carry runnable examples.
MODULES = (
    "saq_wrappers.wrappers",
    "saq_wrappers.vqvae.quantizer",
    "saq_wrappers.score.support_sampler",
    "saq_wrappers.integrations.gymnasium_robotics",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
