"""The ``saq`` command.

``saq quickstart`` trains SAQ-X next to continuous X on a built-in dataset (no network);
``saq data generate|lift-demos`` makes datasets without downloads; ``saq finetune`` runs the
offline SAQ-CQL -> online DQN recipe.
Subcommands import their heavy dependencies (d3rlpy, Minari) only when they run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from saq_wrappers import __version__
from saq_wrappers.errors import SAQError


def _quiet_d3rlpy() -> None:
    """Keep d3rlpy's chatter out of the command's output.

    d3rlpy imports the legacy ``gym`` package, which prints an "unmaintained" banner to stderr on
    import (d3rlpy itself uses Gymnasium), and logs every dataset signature at INFO through
    structlog. The banner is swallowed (import errors still propagate) and the log level raised
    to warnings.
    """
    import contextlib
    import io

    import structlog

    with contextlib.redirect_stderr(io.StringIO()):
        import d3rlpy  # noqa: F401
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _add_quickstart(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from saq_wrappers.integrations.d3rlpy.quickstart import ALGORITHMS, BUILTIN_DATASET, QuickstartConfig

    defaults = QuickstartConfig()
    parser = subparsers.add_parser(
        "quickstart",
        help="train SAQ-X and continuous X on one dataset and compare them",
        description=(
            "Fit the SAQ quantizer on a dataset, relabel it to discrete codes, train the SAQ "
            "algorithm with d3rlpy and its continuous d3rlpy counterpart for the same budget, "
            "evaluate both in the env and print one table. Runs with no arguments and no "
            f"network on the built-in dataset {BUILTIN_DATASET} (a scripted Pendulum-v1 expert "
            "with action noise, generated and cached on first use)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", default=defaults.dataset,
                        help="built-in dataset, Minari dataset id, or path to a Minari dataset folder")
    parser.add_argument("--algo", choices=ALGORITHMS, default=defaults.algo,
                        help="offline RL algorithm (SAQ-ALGO vs its continuous d3rlpy counterpart)")
    parser.add_argument("--n-codes", "-k", type=int, default=defaults.n_codes, help="codebook size K")
    parser.add_argument("--quantizer-steps", type=int, default=defaults.quantizer_steps,
                        help="VQ-VAE training updates")
    parser.add_argument("--time-budget", type=float, default=defaults.time_budget,
                        help="training seconds per algorithm (same wall-clock for both)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training updates per algorithm instead of a time budget")
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes,
                        help="episodes of the final evaluation")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument("--output", default=None,
                        help="output folder (default: saq_runs/quickstart-ALGO-TIMESTAMP)")
    parser.add_argument("--no-baseline", action="store_true", help="train only the SAQ algorithm")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_quickstart(args: argparse.Namespace) -> int:
    from saq_wrappers.integrations.d3rlpy.quickstart import QuickstartConfig, run_quickstart

    config = QuickstartConfig(
        dataset=args.dataset,
        algo=args.algo,
        n_codes=args.n_codes,
        quantizer_steps=args.quantizer_steps,
        time_budget=None if args.steps is not None else args.time_budget,
        steps=args.steps,
        eval_episodes=args.eval_episodes,
        seed=args.seed,
        output_dir=args.output,
        baseline=not args.no_baseline,
        progress=not args.quiet,
    )
    run_quickstart(config)
    return 0


#: ``saq data`` subcommands: name -> module with ``build_parser(parser)`` and ``run(args)``.
_DATA_COMMANDS = {
    "generate": ("saq_wrappers.integrations.generate",
                 "roll out an SB3 agent into a Minari dataset (expert/medium/medium-expert/random)"),
    "lift-demos": ("saq_wrappers.integrations.robosuite_demos",
                   "scripted robosuite Lift demonstrations in robomimic hdf5 format"),
}


def _add_data(subparsers: argparse._SubParsersAction, load: bool) -> None:  # type: ignore[type-arg]
    """``saq data ...``; its modules (SB3, robosuite) are imported only when ``load`` is true."""
    import importlib

    parser = subparsers.add_parser("data", help="generate datasets without downloads",
                                   description="Generate offline datasets without downloads.")
    data_commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    for name, (module_name, summary) in _DATA_COMMANDS.items():
        sub = data_commands.add_parser(name, help=summary, description=summary,
                                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if load:
            module = importlib.import_module(module_name)
            module.build_parser(sub)
            sub.set_defaults(data_run=module.run)


def _add_finetune(subparsers: argparse._SubParsersAction, load: bool) -> None:  # type: ignore[type-arg]
    """``saq finetune``; SB3 is imported only when ``load`` is true."""
    summary = "offline SAQ-CQL -> online SB3 DQN through the SAQ wrapper; return vs env steps"
    parser = subparsers.add_parser("finetune", help=summary, description=summary,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if load:
        from saq_wrappers.integrations import sb3

        sb3.build_parser(parser)
        parser.set_defaults(finetune_run=sb3.run)


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    """The ``saq`` parser; ``load`` names the command whose heavy modules are imported to build
    its options (``saq --help`` stays fast and works without the optional extras)."""
    parser = argparse.ArgumentParser(
        prog="saq",
        description="SAQ action quantization and ARQ support sampling for Gymnasium and d3rlpy.",
    )
    parser.add_argument("--version", action="version", version=f"saq-wrappers {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_quickstart(subparsers)
    _add_data(subparsers, load == "data")
    _add_finetune(subparsers, load == "finetune")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``saq`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    _quiet_d3rlpy()
    parser = build_parser(load=arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {
        "quickstart": _run_quickstart,
        "data": lambda a: int(a.data_run(a)),
        "finetune": lambda a: int(a.finetune_run(a)),
    }
    try:
        return handlers[args.command](args)
    except (SAQError, OSError) as error:
        print(f"saq {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
