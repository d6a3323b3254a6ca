"""How much return a standard-suite quantizer alone costs: the expert acting through its codes.

SAQ-BC imitates codes, and every SAQ-X acts with ``decoder(s, k)`` (SAQ eq. 6), so no SAQ-X can
score more than the data's own policy scores when its actions pass through the quantizer. This
script measures that ceiling on a locomotion dataset of the ``standard`` suite, with the zoo agent
that generated the dataset, in the dataset's own env, for these policies:

* ``expert``: the agent as it generated the data (stochastic; D4RL's recipe);
* ``expert, deterministic``: the agent's mean action (the dataset's ``ref_max_score``);
* ``encoded``: ``decoder(s, encode(s, a))`` with ``a`` the stochastic expert's action: a perfect
  SAQ-BC, i.e. one that always predicts the code the data's policy would have been relabeled with;
* ``encoded, deterministic``: the same from the mean action;
* ``nearest code``: ``decoder(s, k*)`` with ``k*`` the code whose decoded action is closest to the
  mean action: the closest any code-picking policy can come to the mean action at that state.

Each row also gives the RMS per-dimension error between the expert's action and the action sent.

Usage::

    python -m benchmarks.diagnostics.quantizer_ceiling --data-dir /work/bench-data \\
        --zoo ../shared/data/sb3-zoo --dataset hopper-expert --seed 0 --episodes 10

Writes ``benchmarks/results/quantizer_ceiling/<dataset>__<quantizer>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.harness.data import zoo_expert
from benchmarks.harness.runner import ARTIFACTS
from benchmarks.harness.spec import build_suite
from saq_wrappers.evaluation import normalized_score
from saq_wrappers.io import atomic_output
from saq_wrappers.rollouts import rollout
from saq_wrappers.vqvae.quantizer import VQVAEQuantizer

ROOT = Path(__file__).resolve().parents[2]

OUT = ROOT / "benchmarks" / "results" / "quantizer_ceiling"
SUITE_OUT = ROOT / "benchmarks" / "results" / "harness" / "standard"

ActionMap = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _modes(quantizer: VQVAEQuantizer) -> dict[str, tuple[bool, ActionMap]]:
    """Policy name -> (from the expert's mean action?, map (obs, expert action) -> action sent)."""
    k = quantizer.n_codes

    def identity(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        return action

    def encoded(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        return quantizer.decode(obs[None], quantizer.encode(obs[None], action[None]))[0]

    def nearest(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        decoded = quantizer.decode(np.repeat(obs[None], k, axis=0), np.arange(k))
        return decoded[int(np.argmin(((decoded - action) ** 2).sum(axis=1)))]

    return {
        "expert": (False, identity),
        "expert, deterministic": (True, identity),
        "encoded": (False, encoded),
        "encoded, deterministic": (True, encoded),
        "nearest code": (True, nearest),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the standard suite's --data-dir")
    parser.add_argument("--zoo", type=Path, required=True, help="folder of SB3 zoo agents (<algo>/<Env>-v3/model.zip)")
    parser.add_argument("--dataset", default="hopper-expert", help="a locomotion expert dataset of the suite")
    parser.add_argument("--seed", type=int, default=0, help="the quantizer's seed (its suite artifact)")
    parser.add_argument("--quantizer-steps", type=int, default=5000, help="the quantizer artifact's fit updates")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    from saq_wrappers.app.datasets import load_dataset
    from saq_wrappers.app.pipeline import ArtifactStore
    from saq_wrappers.integrations.sb3.models import load_sb3_model

    torch.set_num_threads(args.threads)
    spec = next((r for r in build_suite("standard", args.data_dir, algos=["SAQ-BC"], seeds=[args.seed])
                 if r.dataset.name == args.dataset), None)
    if spec is None:
        parser.error(f"no standard-suite dataset {args.dataset!r}")
    spec = dataclasses.replace(spec, quantizer=dataclasses.replace(spec.quantizer, steps=args.quantizer_steps))
    path = ArtifactStore(SUITE_OUT / ARTIFACTS).quantizer_path(spec)
    quantizer = VQVAEQuantizer.load(path)
    data = load_dataset(spec.dataset)
    env = data.make_env()
    agent = load_sb3_model(zoo_expert("standard", args.dataset, args.zoo), env)

    rows = []
    for mode, (deterministic_source, action_map) in _modes(quantizer).items():
        errors: list[float] = []

        def act(obs: np.ndarray) -> np.ndarray:
            mean, _ = agent.predict(obs, deterministic=True)
            stochastic, _ = agent.predict(obs, deterministic=False)
            source = np.asarray(mean if deterministic_source else stochastic, np.float32)
            sent = action_map(np.asarray(obs, np.float32), source)
            errors.append(float(np.mean((sent - source) ** 2)))
            return sent

        started = time.perf_counter()
        episodes = rollout(env, act, n_episodes=args.episodes, seed=10_000, progress=False)
        normalized = [normalized_score(float(e["rewards"].sum()), data.random_return, data.expert_return)
                      for e in episodes]
        rows.append({"policy": mode, "normalized_mean": float(np.mean(normalized)),
                     "normalized_std": float(np.std(normalized)), "normalized": normalized,
                     "action_rmse": float(np.sqrt(np.mean(errors))),
                     "seconds": time.perf_counter() - started})
        print(f"{mode:24s} {rows[-1]['normalized_mean']:7.1f} ± {rows[-1]['normalized_std']:5.1f}"
              f"   action RMSE {rows[-1]['action_rmse']:.3f}", flush=True)
    env.close()

    name = path.stem
    result = {"dataset": args.dataset, "quantizer": name, "episodes": args.episodes,
              "reset_seeds": f"10000..{10_000 + args.episodes - 1}", "rows": rows,
              "command": "python -m benchmarks.diagnostics.quantizer_ceiling " + " ".join(argv or sys.argv[1:])}
    OUT.mkdir(parents=True, exist_ok=True)
    with atomic_output(OUT / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT / f'{name}.json'}")
    return result


if __name__ == "__main__":
    main()
