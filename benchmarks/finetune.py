"""Offline SAQ-CQL -> online DQN through the SAQ wrapper: return vs env steps (SAQ section 6).

The SAQ paper leaves online fine-tuning open. This benchmark runs the recipe of
:func:`saq_wrappers.app.finetune.run_finetune`:

1. fit the VQ-VAE quantizer (K codes) on an offline dataset and relabel it;
2. train SAQ-CQL offline (d3rlpy ``DiscreteCQL`` with ``saq_cql_config``) and evaluate it: the
   *offline policy alone*;
3. on ``SAQActionWrapper(env, quantizer)`` with the quantizer frozen, train SB3 DQN online for
   ``--online-steps`` env steps (1 update per step), evaluating greedily every ``--eval-every``
   steps on the same seeded episodes:

   - **finetune**: DQN warm-started from the SAQ-CQL Q-network (exact copy, same observation
     normalization), with a CQL-style conservative term decaying to 0 over the first
     ``--conservative-steps`` env steps;
   - **finetune-plain** (optional arm): the same warm start with SB3's plain DQN loss;
   - **scratch**: the same network and hyperparameters from random weights, with the usual
     epsilon schedule.

It writes ``benchmarks/results/finetune.{json,md,png}`` (``finetune_quick.*`` with
``--quick``), atomically.

**Default task.** The package's built-in narrow expert dataset on ``Pendulum-v1`` (scripted
swing-up expert with action noise, no network needed) — small enough for a 2-core CPU in
about 5-10 minutes. For a medium Hopper dataset from an SB3 zoo agent (slower: 1000-step
episodes), pass the model file::

    python benchmarks/finetune.py --zoo-model /path/to/sac/Hopper-v3/model.zip --env Hopper-v5 \\
        --dataset-steps 50000 --online-steps 30000 --eval-every 3000

Usage::

    OMP_NUM_THREADS=1 python benchmarks/finetune.py           # measured run (~5-10 min, 2 cores)
    OMP_NUM_THREADS=1 python benchmarks/finetune.py --quick   # smoke run (~1 min)

Every option of ``saq finetune`` is accepted (``--help``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from saq_wrappers.app import finetune

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``saq finetune`` with its options; copy its JSON, Markdown and PNG to
    ``benchmarks/results`` (the run's own folder, with the models, is a temporary one unless
    ``--output`` is given)."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser = finetune.build_parser()
    parser.prog = "python benchmarks/finetune.py"
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        if args.output is None:
            args.output = str(Path(scratch) / "run")
        code = finetune.run(args)
        RESULTS.mkdir(exist_ok=True)
        for produced in Path(args.output).glob("finetune*.*"):
            if produced.suffix in (".json", ".md", ".png"):
                shutil.copyfile(produced, RESULTS / produced.name)
    return code


if __name__ == "__main__":
    sys.exit(main())
