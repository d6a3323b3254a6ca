"""Where SAQ-BC's actions go wrong: the code classifier against continuous BC, state by state.

:mod:`benchmarks.diagnostics.quantizer_ceiling` measures what the quantizer alone costs. This script
measures the rest: it trains the ``standard`` suite's SAQ-BC and BC runs (same spec, seed and
quantizer as the suite, so their scores reproduce the suite's) and compares, against the action
the zoo expert that generated the data would take (its mean action), at three sets of states:

* ``data``: the dataset's own states (what both policies were trained on);
* ``expert rollouts``: fresh episodes of the stochastic expert (held out, same distribution);
* ``own rollouts``: the states the policy reaches itself (where its errors compound).

``SAQ-BC, mode-averaged`` is the same trained SAQ-BC acting through
:class:`~saq_wrappers.mode_acting.ModeAveraging` (the mean of the mode its arg-max code picks).

The ``dataset actions`` row is the data's own recorded actions: how far the
stochastic expert's samples lie from its mean action, i.e. the error of imitating one sample,
and how often a sample's code (the SAQ-BC label) is the mean action's code.

Per set and policy: the RMS per-dimension action error; for SAQ-BC also the share of states where
its argmax code is the expert's own code (``encode(s, mean action)``, SAQ eq. 5) and the
quantizer's floor, the error of ``decoder(s, expert's code)``.

Usage::

    python -m benchmarks.diagnostics.code_policy --data-dir /work/bench-data \\
        --zoo ../shared/data/sb3-zoo --dataset hopper-expert --seed 0

Writes ``benchmarks/results/code_policy/<dataset>__K<K>__seed<seed>.json`` (``<dataset>``: the
``--source`` folder's name when given) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.harness.data import zoo_expert
from benchmarks.harness.runner import ARTIFACTS, init_worker
from benchmarks.harness.spec import build_suite
from saq_wrappers.io import atomic_output
from saq_wrappers.rollouts import rollout

ROOT = Path(__file__).resolve().parents[2]

SUITE_OUT = ROOT / "benchmarks" / "results" / "harness" / "standard"
OUT = ROOT / "benchmarks" / "results" / "code_policy"
Act = Callable[[np.ndarray], np.ndarray]


def _states_of(env: Any, act: Act, episodes: int, seed: int) -> np.ndarray:
    """Observations ``act`` (one observation -> action) acts on over ``episodes`` episodes."""
    visited = rollout(env, act, n_episodes=episodes, seed=seed, progress=False)
    return np.concatenate([np.asarray(e["observations"][:-1], np.float32) for e in visited])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the standard suite's --data-dir")
    parser.add_argument("--zoo", type=Path, required=True, help="folder of SB3 zoo agents (<algo>/<Env>-v3/model.zip)")
    parser.add_argument("--dataset", default="hopper-expert", help="a locomotion dataset of the suite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=3, help="rollout episodes per state set")
    parser.add_argument("--source", type=Path, default=None,
                        help="train on this Minari dataset folder instead (e.g. a larger one of the same env and "
                             "recipe, from `saq data generate`); its folder name keys its quantizer")
    parser.add_argument("--n-codes", type=int, default=None,
                        help="SAQ-BC's codebook size K (default: the suite's; other sizes share ablation-k's quantizers)")
    args = parser.parse_args(argv)

    from saq_wrappers.app.pipeline import ArtifactStore, run_experiment
    from saq_wrappers.integrations.d3rlpy import code_weights
    from saq_wrappers.mode_acting import ModeAveraging
    from saq_wrappers.integrations.sb3.models import load_sb3_model

    init_worker()  # one torch thread, as the suite's runs; d3rlpy's per-epoch logs off
    specs = {r.algo: r for r in build_suite("standard", args.data_dir, algos=["BC", "SAQ-BC"], seeds=[args.seed])
             if r.dataset.name == args.dataset}
    if len(specs) != 2:
        parser.error(f"no standard-suite BC and SAQ-BC runs on dataset {args.dataset!r}")
    if args.source is not None:
        for algo, spec in specs.items():
            dataset = dataclasses.replace(spec.dataset, name=args.source.name, source=str(args.source))
            specs[algo] = dataclasses.replace(spec, dataset=dataset)
    if args.n_codes is not None:
        saq_spec = specs["SAQ-BC"]
        specs["SAQ-BC"] = dataclasses.replace(
            saq_spec, quantizer=dataclasses.replace(saq_spec.quantizer, n_codes=args.n_codes))
    store = ArtifactStore(SUITE_OUT / ARTIFACTS)
    outcomes = {name: run_experiment(spec, store) for name, spec in specs.items()}
    saq = outcomes["SAQ-BC"]
    quantizer = saq.action_set
    env = saq.data.make_env()
    expert = load_sb3_model(zoo_expert("standard", args.dataset, args.zoo), env)

    def expert_mean(obs: np.ndarray) -> np.ndarray:
        return np.asarray(expert.predict(obs, deterministic=True)[0], np.float32)

    def batch(act: Act) -> Act:  # rollouts pass one observation, the policies take a batch
        return lambda obs: act(np.asarray(obs, np.float32)[None])[0]

    def saq_act(obs: np.ndarray) -> np.ndarray:
        return quantizer.decode(obs, saq.algo.predict(obs))

    weights_of = code_weights(saq.algo)

    def saq_mode_act(obs: np.ndarray) -> np.ndarray:
        return ModeAveraging().act(quantizer.candidates(obs)[0], weights_of(obs), saq.algo.predict(obs))

    data = saq.data.transitions
    policies: dict[str, Act] = {"SAQ-BC": saq_act, "SAQ-BC, mode-averaged": saq_mode_act,
                                "BC": lambda obs: outcomes["BC"].algo.predict(obs)}
    rollout_seed = 20_000 + 100 * args.seed
    expert_states = _states_of(env, lambda o: np.asarray(expert.predict(o)[0]), args.episodes, rollout_seed)
    state_sets: dict[str, dict[str, np.ndarray]] = {
        "data": {name: data.observations for name in policies},
        "expert rollouts": {name: expert_states for name in policies},
        "own rollouts": {name: _states_of(env, batch(act), args.episodes, rollout_seed)
                         for name, act in policies.items()},
    }
    data_mean = expert_mean(data.observations)
    noise = float(np.sqrt(np.mean((data.actions - data_mean) ** 2)))
    label_agreement = float(np.mean(quantizer.encode(data.observations, data.actions)
                                    == quantizer.encode(data.observations, data_mean)))
    rows: list[dict[str, Any]] = [{"states": "data", "policy": "dataset actions", "n_states": len(data.actions),
                                   "action_rmse": noise, "code_agreement": label_agreement}]
    print(f"{'data':16s} {'dataset actions':15s} {len(data.actions):6d} states   action RMSE {noise:.3f}"
          f"   code = expert's {label_agreement:.2f}")
    for set_name, per_policy in state_sets.items():
        for name, states in per_policy.items():
            target = expert_mean(states)
            codes = saq.algo.predict(states) if name == "SAQ-BC" else None
            actions = quantizer.decode(states, codes) if codes is not None else policies[name](states)
            row: dict[str, Any] = {"states": set_name, "policy": name, "n_states": len(states),
                                   "action_rmse": float(np.sqrt(np.mean((actions - target) ** 2)))}
            if codes is not None:
                expert_codes = quantizer.encode(states, target)
                row["code_agreement"] = float(np.mean(codes == expert_codes))
                row["quantizer_floor_rmse"] = float(np.sqrt(np.mean((quantizer.decode(states, expert_codes) - target) ** 2)))
            rows.append(row)
            extra = (f"   code = expert's {row['code_agreement']:.2f}   floor {row['quantizer_floor_rmse']:.3f}"
                     if name == "SAQ-BC" else "")
            print(f"{set_name:16s} {name:15s} {len(states):6d} states   action RMSE {row['action_rmse']:.3f}{extra}",
                  flush=True)
    env.close()
    result = {"dataset": specs["SAQ-BC"].dataset.name, "seed": args.seed, "episodes": args.episodes,
              "transitions": len(data.observations),
              "n_codes": specs["SAQ-BC"].quantizer.n_codes,
              "scores": {name: outcome.record["score"] for name, outcome in outcomes.items()},
              "rows": rows,
              "command": "python -m benchmarks.diagnostics.code_policy " + " ".join(argv or sys.argv[1:])}
    print("final scores:", {k: round(v, 1) for k, v in result["scores"].items()})
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"{specs['SAQ-BC'].dataset.name}__K{specs['SAQ-BC'].quantizer.n_codes}__seed{args.seed}"
    with atomic_output(OUT / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
