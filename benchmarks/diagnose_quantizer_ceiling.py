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

    python benchmarks/diagnose_quantizer_ceiling.py --data-dir /work/bench-data \\
        --zoo ../shared/data/sb3-zoo --dataset hopper-expert --seed 0 --episodes 10

Writes ``benchmarks/results/quantizer_ceiling/<dataset>__<quantizer>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from saq_wrappers.vqvae.quantizer import VQVAEQuantizer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "quantizer_ceiling"
QUANTIZERS = ROOT / "benchmarks" / "results" / "harness" / "standard" / "artifacts" / "quantizers"

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

    import gymnasium as gym
    import torch

    from saq_wrappers.integrations.sb3.models import load_sb3_model

    torch.set_num_threads(args.threads)
    folder = args.data_dir / "minari" / "saqbench-std" / f"{args.dataset}-v0" / "data"
    metadata = json.loads((folder / "metadata.json").read_text())
    env_id = json.loads(metadata["eval_env_spec"])["id"]
    ref_min, ref_max = float(metadata["ref_min_score"]), float(metadata["ref_max_score"])
    name = f"{args.dataset}__K64__h512x512__n{args.quantizer_steps}__seed{args.seed}"
    quantizer = VQVAEQuantizer.load(QUANTIZERS / f"{name}.safetensors")
    env = gym.make(env_id)
    title = env_id.split("-")[0]
    agent = load_sb3_model(args.zoo / "tqc" / f"{title}-v3" / "model.zip", env)

    rows = []
    for mode, (deterministic_source, action_map) in _modes(quantizer).items():
        returns, errors = [], []
        started = time.perf_counter()
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=10_000 + episode)
            total, done = 0.0, False
            while not done:
                mean, _ = agent.predict(obs, deterministic=True)
                stochastic, _ = agent.predict(obs, deterministic=False)
                source = np.asarray(mean if deterministic_source else stochastic, np.float32)
                sent = action_map(np.asarray(obs, np.float32), source)
                errors.append(float(np.mean((sent - source) ** 2)))
                obs, reward, terminated, truncated, _ = env.step(sent)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        normalized = [100.0 * (r - ref_min) / (ref_max - ref_min) for r in returns]
        rows.append({"policy": mode, "normalized_mean": float(np.mean(normalized)),
                     "normalized_std": float(np.std(normalized)), "normalized": normalized,
                     "action_rmse": float(np.sqrt(np.mean(errors))),
                     "seconds": time.perf_counter() - started})
        print(f"{mode:24s} {rows[-1]['normalized_mean']:7.1f} ± {rows[-1]['normalized_std']:5.1f}"
              f"   action RMSE {rows[-1]['action_rmse']:.3f}", flush=True)

    result = {"dataset": args.dataset, "quantizer": name, "episodes": args.episodes,
              "reset_seeds": f"10000..{10_000 + args.episodes - 1}", "rows": rows,
              "command": "python benchmarks/diagnose_quantizer_ceiling.py " + " ".join(argv or sys.argv[1:])}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    with tempfile.NamedTemporaryFile("w", dir=OUT, delete=False, suffix=".tmp") as handle:
        json.dump(result, handle, indent=1)
    os.replace(handle.name, path)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
