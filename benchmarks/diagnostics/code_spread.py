"""How far apart a quantizer's codes decode at a state, on the noise study's datasets.

The noise study (``docs/notes/noise-study.md``) found both of SAQ-BC's policies over codes far
behind BC on noise-free demonstrations (the expert's mean action), the density policy most. Its
reading: with one action per state the codes at a data state have nothing to spread over, decode
to nearly the same action there, and fan out only away from the data, where the policy's choice
among them is uninformed. This script measures that, per dataset of the noise study and seed of
its quantizer (the study's own artifacts), at two sets of states:

* ``data``: the dataset's states (a random subset of ``--states``);
* ``rollouts``: states of fresh episodes of the zoo expert that generated the data, sampling its
  actions (near the data, but not in it; the same episodes for every quantizer of an env).

Per set, against the expert's mean action ``mu(s)`` and the K decoded actions ``g(s, k)``:

* ``spread``: the RMS over action dimensions of the codes' standard deviation at a state (how far
  apart the codes decode), averaged over states;
* ``nearest``: RMS error of the code nearest ``mu(s)`` (the best any code-picking policy can do);
* ``within``: the share of codes whose action lies within 0.1 RMS per dimension of ``mu(s)``
  (one third of the zoo experts' action noise, 0.30): near 1 where the codes have collapsed onto
  the action, small where they spread over the noise.

And, over the whole dataset, two properties of its code labels (``encode(s, a)``, SAQ eq. 5):
``label perplexity`` (``exp`` of their entropy; K = 64 at most) and ``label state spread``: how
widely the states a code labels spread, as the RMS distance of those (standardized) states from
their own mean over the RMS distance of all the data's states from theirs, weighted by the codes'
frequencies: near 1 where every code labels states all over the data (it splits the actions at
each state), small where each code labels a region of its own (it splits the states).

Usage::

    python -m benchmarks.diagnostics.code_spread --data-dir /work/bench-data --zoo ../shared/data/sb3-zoo

Writes ``benchmarks/results/code_spread.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.data import zoo_expert
from benchmarks.harness.runner import ARTIFACTS
from benchmarks.harness.spec import build_suite
from saq_wrappers.io import atomic_output
from saq_wrappers.rollouts import rollout
from saq_wrappers.vqvae.quantizer import VQVAEQuantizer

ROOT = Path(__file__).resolve().parents[2]
STUDY_OUT = ROOT / "benchmarks" / "results" / "harness" / "noise-study"
OUT = ROOT / "benchmarks" / "results" / "code_spread.json"
#: RMS per dimension within which a code's action counts as the expert's mean action.
WITHIN = 0.1


def code_geometry(quantizer: VQVAEQuantizer, obs: np.ndarray, mean_actions: np.ndarray) -> dict[str, float]:
    """``spread``, ``nearest`` and ``within`` (module docstring) over the states ``obs``."""
    candidates, _ = quantizer.candidates(obs)  # (B, K, act_dim)
    spread = np.sqrt(candidates.var(axis=1).mean(axis=1))
    errors = np.sqrt(((candidates - mean_actions[:, None, :]) ** 2).mean(axis=2))  # (B, K)
    return {"spread": float(spread.mean()), "nearest": float(np.sqrt((errors.min(axis=1) ** 2).mean())),
            "within": float((errors < WITHIN).mean())}


def label_state_spread(states: np.ndarray, codes: np.ndarray) -> float:
    """``label state spread`` (module docstring) of ``codes`` labelling ``states``."""
    scale = states.std(axis=0)
    standardized = (states - states.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    overall = np.sqrt((standardized**2).sum(axis=1).mean())
    within = 0.0
    for code in np.unique(codes):
        members = standardized[codes == code]
        within += len(members) * ((members - members.mean(axis=0)) ** 2).sum(axis=1).mean()
    return float(np.sqrt(within / len(codes)) / overall) if overall > 0 else 0.0


def perplexity(codes: np.ndarray, n_codes: int) -> float:
    """``exp`` of the entropy of the codes' frequencies."""
    freq = np.bincount(codes, minlength=n_codes) / len(codes)
    freq = freq[freq > 0]
    return float(np.exp(-(freq * np.log(freq)).sum()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the noise study's --data-dir")
    parser.add_argument("--zoo", type=Path, required=True, help="folder of SB3 zoo agents")
    parser.add_argument("--seeds", default="0,1,2", help="quantizer seeds (the study's artifacts)")
    parser.add_argument("--states", type=int, default=4000, help="data states per dataset")
    parser.add_argument("--episodes", type=int, default=3, help="expert rollout episodes per env")
    args = parser.parse_args(argv)

    import torch

    from saq_wrappers.app.datasets import load_dataset
    from saq_wrappers.app.pipeline import ArtifactStore
    from saq_wrappers.integrations.sb3.models import load_sb3_model

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    specs = [r for r in build_suite("noise-study", args.data_dir, algos=["SAQ-BC"], seeds=seeds)
             if r.code_policy == "index" and r.evaluation.greedy]
    store = ArtifactStore(STUDY_OUT / ARTIFACTS)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    experts: dict[str, tuple[Any, np.ndarray]] = {}
    loaded: dict[str, Any] = {}  # every seed's quantizer of a dataset reads the same data
    for spec in specs:
        if spec.dataset.name not in loaded:
            loaded[spec.dataset.name] = load_dataset(spec.dataset)
        data = loaded[spec.dataset.name]
        env_name = spec.dataset.name.split("-")[0]
        if env_name not in experts:  # one agent and one set of rollout states per env
            env = data.make_env()
            agent = load_sb3_model(zoo_expert("noise-study", spec.dataset.name, args.zoo), env)

            def act(obs: np.ndarray, agent: Any = agent) -> np.ndarray:
                return np.asarray(agent.predict(obs, deterministic=False)[0], np.float32)

            episodes = rollout(env, act, n_episodes=args.episodes, seed=20_000, progress=False)
            env.close()
            experts[env_name] = (agent, np.concatenate([np.asarray(e["observations"][:-1], np.float32)
                                                         for e in episodes]))
        agent, rollout_states = experts[env_name]
        transitions = data.transitions
        pick = rng.choice(len(transitions.observations), min(args.states, len(transitions.observations)),
                          replace=False)
        data_states = transitions.observations[pick]
        quantizer = VQVAEQuantizer.load(store.quantizer_path(spec))
        labels = quantizer.encode(transitions.observations, transitions.actions)
        row: dict[str, Any] = {"dataset": spec.dataset.name, "seed": spec.seed,
                               "label_perplexity": perplexity(labels, quantizer.n_codes),
                               "label_state_spread": label_state_spread(transitions.observations, labels)}
        for name, states in (("data", data_states), ("rollouts", rollout_states)):
            means = np.asarray(agent.predict(states, deterministic=True)[0], np.float32)
            row[name] = code_geometry(quantizer, states, means)
        rows.append(row)
        print(f"{row['dataset']:22s} seed {row['seed']}  perplexity {row['label_perplexity']:5.1f}  "
              f"state spread {row['label_state_spread']:.2f}  "
              + "  ".join(f"{n}: spread {row[n]['spread']:.3f} nearest {row[n]['nearest']:.3f} "
                          f"within {row[n]['within']:.2f}" for n in ("data", "rollouts")), flush=True)
    result = {"rows": rows, "states": args.states, "rollout_episodes": args.episodes, "within": WITHIN,
              "command": "python -m benchmarks.diagnostics.code_spread " + " ".join(argv or sys.argv[1:])}
    with atomic_output(OUT) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT}")
    return result


if __name__ == "__main__":
    main()
