"""``saq data lift-demos``: scripted robosuite Lift demonstrations written as a robomimic hdf5 file.

The command line of :func:`saq_wrappers.integrations.robomimic.generate_lift_demos` (a stand-in
for robomimic's Lift PH data where it cannot be downloaded). The ``saq`` CLI imports this module
only when the command is used, so ``saq --help`` works without robosuite.

Example:
    $ saq data lift-demos --output lift_demos.hdf5 --demos 200
"""

from __future__ import annotations

import argparse

from saq_wrappers.integrations.robomimic import generate_lift_demos
from saq_wrappers.io import check_output_path
from saq_wrappers.validation import check_int, check_seed

__all__ = ["MAX_DEMOS", "MAX_DEMO_STEPS", "build_parser", "run"]

#: Most demonstrations of one file (robomimic's Lift PH has 200).
MAX_DEMOS = 100_000
#: Longest attempt, in env steps (a scripted Lift demo takes about 100).
MAX_DEMO_STEPS = 100_000


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``saq data lift-demos`` (added to ``parser`` when given)."""
    parser = parser or argparse.ArgumentParser(
        prog="saq data lift-demos",
        description=(
            "Generate successful, human-like scripted robosuite Lift demonstrations as a "
            "robomimic-format hdf5 file (a stand-in for robomimic's Lift PH data)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--output", required=True, help="output .hdf5 file")
    parser.add_argument("--demos", type=int, default=200, help="successful demonstrations to keep")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first attempt")
    parser.add_argument("--max-steps", type=int, default=250, help="steps before an attempt counts as failed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``saq data lift-demos`` from parsed arguments; prints statistics. The options and the
    output path are checked before the first demonstration."""
    check_int("demos", args.demos, 1, MAX_DEMOS)
    check_int("max steps", args.max_steps, 1, MAX_DEMO_STEPS)
    check_seed("seed", args.seed)
    check_output_path(args.output)
    stats = generate_lift_demos(
        args.output, args.demos, seed=args.seed, max_steps=args.max_steps, progress=not args.quiet
    )
    print(
        f"wrote {stats['n_demos']} demos to {stats['path']} ({stats['attempts']} attempts, "
        f"demonstrator success {100 * stats['success_rate']:.0f}%, mean length "
        f"{stats['mean_length']:.0f} steps, approach modes {stats['modes']})"
    )
    return 0
