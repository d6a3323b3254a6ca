"""The ``saq`` command.

``saq quickstart`` trains SAQ-X next to continuous X on a built-in dataset (no network);
``saq data generate|lift-demos`` makes datasets without downloads; ``saq finetune`` runs the
offline SAQ-CQL -> online DQN recipe.

``saq --help`` imports neither torch nor d3rlpy: a command's heavy modules are imported only
when that command is named. Every option is validated before any heavy work; Ctrl-C stops a
command with a one-line message and exit code 130, and SIGTERM (what ``kill``, ``timeout``,
Slurm and Docker send) or SIGHUP the same way with 143 or 129 (128 + the signal's number), after
the run's unfinished output folder is removed. A command whose libraries are not installed
stops with one line naming the extras that install them (``pip install 'saq-wrappers[cli]'``)
and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
from typing import Any, Callable, Iterator, Sequence

from saq_wrappers import __version__
from saq_wrappers.errors import SAQError

#: Exit code of a command stopped with Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Exit code of a command stopped with SIGTERM (128 + SIGTERM); SIGHUP gives 129 likewise.
EXIT_TERMINATED = 128 + signal.SIGTERM
#: Signals that stop a command the way Ctrl-C does (the run's cleanup runs, then one line).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: Exit code of a command whose optional libraries are not installed (as for a usage error).
EXIT_MISSING_EXTRA = 2

#: The extras each command needs, all named when one of its libraries is missing, so that one
#: ``pip install`` makes it work (``cli``: everything ``saq quickstart`` needs).
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "quickstart": ("cli",),
    "finetune": ("cli", "sb3"),
    "data generate": ("minari", "sb3"),
    "data lift-demos": ("robosuite",),
}
#: Libraries only some datasets need, for their envs (top-level import name -> extra): MuJoCo
#: for Gymnasium's locomotion envs, robosuite for robomimic tasks.
ENV_EXTRAS = {"mujoco": "mujoco", "robosuite": "robosuite"}
#: The optional libraries the commands import (top-level import names); a missing one is
#: reported with the extras above. tests/test_extras.py checks both tables against
#: pyproject.toml and the application's imports.
OPTIONAL_LIBRARIES = frozenset(
    {"d3rlpy", "minari", "h5py", "matplotlib", "structlog", "stable_baselines3", "sb3_contrib", *ENV_EXTRAS}
)

#: Commands whose options live in a recipe module: name -> (module, one-line summary).
#: Each module has ``build_parser(parser)`` and ``run(args) -> int``.
_RECIPES = {
    ("data", "generate"): ("saq_wrappers.app.generate",
                           "roll out an SB3 agent into a Minari dataset (expert/expert-mean/medium/medium-expert/random)"),
    ("data", "lift-demos"): ("saq_wrappers.app.lift_demos",
                             "scripted robosuite Lift demonstrations in robomimic hdf5 format"),
    ("finetune",): ("saq_wrappers.app.finetune",
                    "offline SAQ-CQL -> online SB3 DQN through the SAQ wrapper; return vs env steps"),
}


def _add_quickstart(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .datasets import BUILTIN_DATASET
    from .quickstart import ALGORITHMS, COUNTERPARTS, QuickstartConfig

    defaults = QuickstartConfig()
    parser = subparsers.add_parser(
        "quickstart",
        help="train SAQ-X and continuous X on one dataset and compare them",
        description=(
            "Fit the SAQ quantizer on a dataset, relabel it to discrete codes, train the SAQ "
            "algorithm with d3rlpy and its continuous d3rlpy counterpart "
            f"({', '.join(f'{k}: {v}' for k, v in COUNTERPARTS.items())}) for the same budget, "
            "evaluate both in the env and print one table. Runs with no arguments and no "
            f"network on the built-in dataset {BUILTIN_DATASET} (a scripted Pendulum-v1 expert "
            "with action noise, generated and cached on first use). Takes about 4 minutes with "
            "the defaults on 2 CPU cores."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", default=defaults.dataset,
                        help="built-in dataset, Minari dataset id or folder, robomimic hdf5 file, or "
                             "D4RL-style FILE.hdf5@ENV_ID (e.g. hopper.hdf5@Hopper-v5)")
    parser.add_argument("--algo", choices=ALGORITHMS, default=defaults.algo,
                        help="offline RL algorithm (SAQ-ALGO vs its continuous d3rlpy counterpart)")
    parser.add_argument("--n-codes", "-k", type=int, default=defaults.n_codes, help="codebook size K (>= 2)")
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
                        help="output folder, created with its parents; must be new or empty "
                             "(default: saq_runs/quickstart-ALGO-TIMESTAMP)")
    parser.add_argument("--no-baseline", action="store_true", help="train only the SAQ algorithm")
    parser.add_argument("--trust-dataset-env", dest="trust_env_spec", action="store_true",
                        help="rebuild a Minari dataset's evaluation env even when its metadata.json names an "
                             "entry point the installed Gymnasium registry does not have for that env id "
                             "(that code is imported and run): only for datasets you trust")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_quickstart)


def _run_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import QuickstartConfig, run_quickstart

    config = QuickstartConfig(
        dataset=args.dataset, algo=args.algo, n_codes=args.n_codes, quantizer_steps=args.quantizer_steps,
        time_budget=args.time_budget, steps=args.steps, eval_episodes=args.eval_episodes, seed=args.seed,
        output_dir=args.output, baseline=not args.no_baseline, progress=not args.quiet,
        trust_env_spec=args.trust_env_spec,
    )
    config.experiments()  # validates every option before anything heavy is imported
    _quiet_logs()
    run_quickstart(config)
    return 0


def _add_recipe(subparsers: argparse._SubParsersAction, path: tuple[str, ...], load: bool) -> None:  # type: ignore[type-arg]
    """A recipe command; its module (SB3, robosuite...) is imported only when ``load``."""
    module_name, summary = _RECIPES[path]
    parser = subparsers.add_parser(path[-1], help=summary, description=summary,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if load:
        module = importlib.import_module(module_name)
        module.build_parser(parser)
        run: Callable[[argparse.Namespace], int] = module.run

        def handler(args: argparse.Namespace) -> int:
            _quiet_logs()
            return int(run(args))

        parser.set_defaults(handler=handler)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The ``saq`` parser. Only the recipe named in ``argv`` is imported to build its options,
    so ``saq --help`` stays fast and works without the optional extras."""
    named = tuple(a for a in argv if not a.startswith("-"))
    parser = argparse.ArgumentParser(
        prog="saq",
        description="SAQ action quantization and ARQ support sampling for Gymnasium and d3rlpy.",
    )
    parser.add_argument("--version", action="version", version=f"saq-wrappers {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_quickstart(commands)
    data = commands.add_parser("data", help="generate datasets without downloads",
                               description="Generate offline datasets without downloads.")
    data_commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    for path in _RECIPES:
        target = data_commands if path[0] == "data" else commands
        _add_recipe(target, path, load=named[: len(path)] == path)
    return parser


class _Stopped(BaseException):
    """Raised in the main thread by a stop signal, so that every ``finally`` and context manager
    (the run folder's cleanup above all) runs as for Ctrl-C. A ``BaseException``, like
    ``KeyboardInterrupt``, so that no library's ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: Any) -> None:
    for other in STOP_SIGNALS:  # a repeated signal must not interrupt the cleanup it started
        signal.signal(other, signal.SIG_IGN)
    raise _Stopped(signum)


@contextlib.contextmanager
def _stop_signals_handled() -> Iterator[None]:
    """Turn :data:`STOP_SIGNALS` into :class:`_Stopped` while a command runs (main thread only;
    a signal the caller ignores, as ``nohup`` does SIGHUP, stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _raise_stopped)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _quiet_logs() -> None:
    """d3rlpy logs every dataset signature and epoch at INFO through structlog: keep warnings.
    (d3rlpy requires structlog: without it, there is no d3rlpy to quiet.)"""
    try:
        import structlog
    except ModuleNotFoundError:
        return
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _missing_library(error: BaseException) -> str | None:
    """The optional library (:data:`OPTIONAL_LIBRARIES`, or any an integration reports as a
    :class:`~saq_wrappers.integrations.MissingExtraError`) whose absence caused ``error``, else
    ``None``. Gymnasium's MuJoCo envs raise their own error from the ``ModuleNotFoundError``, and
    a dataset may wrap that in a DataError, hence the walk down the causes."""
    from saq_wrappers.integrations import MissingExtraError

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            library = current.name.split(".")[0]
            if library in OPTIONAL_LIBRARIES or isinstance(current, MissingExtraError):
                return library
        current = current.__cause__ or current.__context__
    return None


def _extras_hint(command: str, library: str) -> str:
    """``pip install 'saq-wrappers[...]'`` with the extras ``command`` needs, and the env extra
    of ``library`` when it is one (:data:`COMMAND_EXTRAS`, :data:`ENV_EXTRAS`)."""
    extras = list(COMMAND_EXTRAS.get(command, ("all",)))
    if library in ENV_EXTRAS and ENV_EXTRAS[library] not in extras:
        extras.append(ENV_EXTRAS[library])
    return f"pip install 'saq-wrappers[{','.join(extras)}]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``saq`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    words = [a for a in arguments if not a.startswith("-")]
    command = " ".join(words[: 2 if words[:1] == ["data"] else 1])
    prefix = " ".join(["saq", command]).rstrip()
    try:
        with _stop_signals_handled():
            parser = build_parser(arguments)
            args = parser.parse_args(arguments)
            if args.command is None:
                parser.print_help()
                return 2
            return int(args.handler(args))
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Stopped as stopped:
        reason = signal.strsignal(stopped.signum) or signal.Signals(stopped.signum).name
        print(f"{prefix}: {reason.lower()}", file=sys.stderr)  # "terminated", "hangup"
        return 128 + stopped.signum
    except Exception as error:  # noqa: BLE001 - re-raised unless it is one of the two kinds below
        library = _missing_library(error)
        if library is not None:
            print(f"{prefix}: needs {library}, which is not installed: {_extras_hint(command, library)}",
                  file=sys.stderr)
            return EXIT_MISSING_EXTRA
        if isinstance(error, (SAQError, OSError)):
            print(f"{prefix}: error: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
