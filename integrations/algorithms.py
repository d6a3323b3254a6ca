"""The names of every offline algorithm the library builds, in one place.

:mod:`saq_wrappers.integrations.d3rlpy.registry` maps each name to its d3rlpy config; the
experiment spec, the ``saq`` commands and the benchmark suites validate names against these
tuples. This module imports only the library's exceptions, so a spec validates (and ``saq --help`` lists the choices)
without d3rlpy installed or imported.

* :data:`SAQ_ALGOS`: discrete algorithms on the quantizer's codes (SAQ section 4.2);
* :data:`CONTINUOUS_ALGOS`: their continuous d3rlpy counterparts (:data:`COUNTERPARTS`;
  TD3+BC stands in for BRAC, which d3rlpy does not ship);
* ``ARQ``: action-restricted Q-learning on a precomputed candidate table.
"""

from __future__ import annotations

from saq_wrappers.errors import DataError

__all__ = ["ALGORITHMS", "CODE_POLICY_ALGOS", "CONTINUOUS_ALGOS", "COUNTERPARTS", "DENSITY_ACTIONS_ALGOS",
           "DENSITY_POLICY_ALGOS", "SAQ_ALGOS", "SAQ_PREFIX", "check_algorithm", "is_saq"]

#: What SAQ-X's name adds to its family's (``SAQ-CQL`` is CQL on codes).
SAQ_PREFIX = "SAQ-"
#: SAQ-X -> its continuous counterpart.
COUNTERPARTS: dict[str, str] = {"SAQ-BC": "BC", "SAQ-CQL": "CQL", "SAQ-IQL": "IQL", "SAQ-BRAC": "TD3+BC"}
#: SAQ-X: discrete algorithms on the quantizer's codes.
SAQ_ALGOS: tuple[str, ...] = tuple(COUNTERPARTS)
#: Continuous d3rlpy algorithms: the SAQ algorithms' counterparts (BC, CQL, IQL, TD3+BC).
CONTINUOUS_ALGOS: tuple[str, ...] = tuple(COUNTERPARTS.values())
#: Every algorithm name the registry knows.
ALGORITHMS: tuple[str, ...] = CONTINUOUS_ALGOS + SAQ_ALGOS + ("ARQ",)
#: The SAQ algorithms whose policy over codes can be an action density evaluated at the decoded
#: codes (issue 37): each has a policy network to parametrize (SAQ-CQL acts by its Q's arg-max).
DENSITY_POLICY_ALGOS: tuple[str, ...] = ("SAQ-BC", "SAQ-IQL", "SAQ-BRAC")
#: Those whose density policy can also be fitted to the labels' decoded actions instead of the
#: label codes among the codes (``DensityBCConfig(likelihood="actions")``).
DENSITY_ACTIONS_ALGOS: tuple[str, ...] = ("SAQ-BC",)
#: Every parametrization of a policy over codes other than the authors' index classifier -> the
#: algorithms that have it (run ids and labels name it: ``-density``, ``-density-actions``).
CODE_POLICY_ALGOS: dict[str, tuple[str, ...]] = {"density": DENSITY_POLICY_ALGOS,
                                                 "density-actions": DENSITY_ACTIONS_ALGOS}


def check_algorithm(name: str) -> None:
    """Raise :class:`~saq_wrappers.errors.DataError` naming the known algorithms if ``name`` is
    not one of :data:`ALGORITHMS`."""
    if name not in ALGORITHMS:
        raise DataError(f"unknown algorithm {name!r}: expected one of {', '.join(ALGORITHMS)}")


def is_saq(name: str) -> bool:
    """Whether ``name`` trains on SAQ codes (and so needs a quantizer)."""
    return name in SAQ_ALGOS
