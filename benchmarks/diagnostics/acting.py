"""How much of SAQ-IQL's gap to SAQ-BC is the acting rule: both trained once, scored five ways.

The standard suite scores SAQ-BC by its arg-max code and SAQ-IQL by sampling its code from SAQ
eq. 10, as the authors' scripts act. On the expert data SAQ-IQL's KL budget holds its policy
close to the behavior policy (lambda ends near 7 on hopper-expert and 28-58 on
halfcheetah-expert), so the suite's pair differs both in the advantage tilt and in the acting
rule; scoring each policy by both rules separates the two. This script trains the suite's
SAQ-BC and SAQ-IQL runs for one dataset and seed (same specs, seeds and quantizer as the suite,
so the 10-episode scores reproduce a suite run) and then evaluates every trained policy with each
acting rule on the same ``--episodes`` fresh seeded episodes:

* ``SAQ-BC greedy``: the suite's rule for SAQ-BC (``predict``);
* ``SAQ-BC sampled``: a code drawn from the classifier's softmax (d3rlpy's
  ``DiscreteBC.sample_action`` returns the arg-max, so the draw is made here from its logits);
* ``SAQ-IQL greedy``: the arg-max of eq. 10 (``predict``, what d3rlpy's evaluators use);
* ``SAQ-IQL sampled``: the suite's and the authors' rule (``sample_action``);
* ``SAQ-IQL pi_beta greedy``: the arg-max of SAQ-IQL's behavior policy, trained on the same
  batches: against ``SAQ-IQL greedy`` it isolates the advantage tilt, against ``SAQ-BC greedy``
  the training run (in the suite both classifiers are the same recipe, 256-256 MLPs with the same
  loss, optimizer and seed, differing in their initial weights);
* ``SAQ-BC mode-averaged`` and ``SAQ-IQL sampled, mode-averaged``: the greedy SAQ-BC and sampled
  SAQ-IQL codes, each acting through :class:`~saq_wrappers.mode_acting.ModeAveraging` weighted by
  its own policy (issue 37: the chosen code picks a mode, the env gets the mode's mean);
* ``SAQ-BC policy mean``: the classifier's probability-weighted mean of all decoded codes (a
  kernel far wider than the codes), regression's answer on the codes: a reference for how much a
  global average would give on this unimodal data (it would average across the modes of
  multi-modal data).

Fifty episodes put a standard error of a few points on each score, where the suite's 10 final
episodes leave about 10 on the bimodal halfcheetah returns (the cheetah sometimes flips).

Usage::

    python -m benchmarks.diagnostics.acting --data-dir /work/bench-data --dataset hopper-expert --seeds 0 1 2

Writes ``benchmarks/results/acting_diagnosis/<dataset>__seed<seed>.json`` per dataset and seed (one
holding every rule is skipped, so the command resumes; one from before a rule was added is trained
and scored again) and prints the table over every finished file.
Quantizers come from ``--artifacts`` (default: the ablation suites' store, fitted on the same
data generation as ``--data-dir``; a quantizer fitted on other episodes is refused by its hash).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.harness.runner import ARTIFACTS, init_worker
from benchmarks.harness.spec import build_suite
from saq_wrappers.io import atomic_output

ROOT = Path(__file__).resolve().parents[2]

OUT = ROOT / "benchmarks" / "results" / "acting_diagnosis"
DEFAULT_ARTIFACTS = ROOT / "benchmarks" / "results" / "harness" / "ablations" / ARTIFACTS
#: Fresh evaluation episodes: far from the suite's final (seed + 0..9) and curve (seed + 10,000) seeds.
EPISODE_SEED_OFFSET = 50_000
RULES = ("SAQ-BC greedy", "SAQ-BC sampled", "SAQ-IQL greedy", "SAQ-IQL sampled", "SAQ-IQL pi_beta greedy",
         "SAQ-BC mode-averaged", "SAQ-IQL sampled, mode-averaged", "SAQ-BC policy mean")
#: The rules acting through mode averaging: (the code rule they start from, kernel width in code spacings).
MODE_RULES = {"SAQ-BC mode-averaged": ("SAQ-BC greedy", 2.0),
              "SAQ-IQL sampled, mode-averaged": ("SAQ-IQL sampled", 2.0),
              "SAQ-BC policy mean": ("SAQ-BC greedy", 1e4)}
Act = Callable[[np.ndarray], np.ndarray]


def _classifier_codes(algo: Any, classifier: Any, draw: bool) -> Act:
    """Codes of a categorical torch module of a trained d3rlpy algorithm, on the observations after
    the algorithm's observation scaler (the input ``predict`` sees): its arg-max, or a draw from
    its softmax."""
    import torch

    def act(observations: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(observations, dtype=torch.float32, device=algo.impl.device)
            if algo.observation_scaler is not None:
                x = algo.observation_scaler.transform(x)
            logits = classifier(x).logits
            codes = torch.distributions.Categorical(logits=logits).sample() if draw else logits.argmax(dim=1)
            return codes.cpu().numpy()

    return act


def sampled_bc_codes(algo: Any) -> Act:
    """Codes drawn from a trained d3rlpy ``DiscreteBC``'s softmax over its logits."""
    return _classifier_codes(algo, algo.impl.modules.imitator, draw=True)


def behavior_greedy_codes(algo: Any) -> Act:
    """The arg-max of a trained SAQ-IQL's behavior policy ``pi_beta``: eq. 10 without the
    advantage tilt, on SAQ-IQL's own (256-256) torso."""
    return _classifier_codes(algo, algo.impl.modules.behavior_policy, draw=False)


def diagnose(data_dir: Path, dataset: str, seed: int, episodes: int, artifacts: Path,
             steps: int | None = None) -> dict[str, Any]:
    """Train the suite's SAQ-BC and SAQ-IQL runs of ``dataset`` / ``seed`` and score every acting rule."""
    import torch

    from saq_wrappers.app.pipeline import ArtifactStore, run_experiment
    from saq_wrappers.evaluation import evaluate, normalized_score
    from saq_wrappers.integrations.d3rlpy import code_weights
    from saq_wrappers.mode_acting import ModeAveraging
    from saq_wrappers.wrappers import SAQActionWrapper

    suite = build_suite("standard", data_dir, algos=["SAQ-BC", "SAQ-IQL"], seeds=[seed], steps=steps)
    # SAQ-IQL fits pi_beta only when asked (its weighted fit of eq. 10 never reads it)
    specs = {r.algo: r if r.algo != "SAQ-IQL" else dataclasses.replace(
                 r, options=tuple(sorted({**dict(r.options), "fit_behavior_policy": True}.items())))
             for r in suite if r.dataset.name == dataset}
    if len(specs) != 2:
        raise SystemExit(f"no standard-suite SAQ-BC and SAQ-IQL runs on dataset {dataset!r}")
    store = ArtifactStore(artifacts)
    outcomes = {algo: run_experiment(spec, store) for algo, spec in specs.items()}
    bc, iql = outcomes["SAQ-BC"].algo, outcomes["SAQ-IQL"].algo
    acts: dict[str, Act] = {"SAQ-BC greedy": bc.predict, "SAQ-BC sampled": sampled_bc_codes(bc),
                            "SAQ-IQL greedy": iql.predict, "SAQ-IQL sampled": iql.sample_action,
                            "SAQ-IQL pi_beta greedy": behavior_greedy_codes(iql)}
    outcome = outcomes["SAQ-BC"]
    quantizer, refs = outcome.action_set, outcome.record["data"]
    random_return, expert_return = refs["random_return"], refs["expert_return"]
    env = SAQActionWrapper(outcome.data.make_env(), quantizer)
    envs = {rule: env for rule in acts}
    for rule, (start, width) in MODE_RULES.items():
        acts[rule] = acts[start]
        policy = bc if start.startswith("SAQ-BC") else iql
        envs[rule] = SAQActionWrapper(outcome.data.make_env(), quantizer, acting=ModeAveraging(bandwidth_scale=width),
                                      code_weights=code_weights(policy))
    scores: dict[str, Any] = {}
    try:
        for rule, act in acts.items():
            torch.manual_seed(seed)  # the sampled rules' draws
            result = evaluate(lambda obs, act=act: np.asarray(act(obs.astype(np.float32))), envs[rule],
                              n_episodes=episodes, seed=seed + EPISODE_SEED_OFFSET, progress=False)
            per_episode = [normalized_score(r, random_return, expert_return) for r in result.returns]
            scores[rule] = {"score": float(np.mean(per_episode)),
                            "standard_error": float(np.std(per_episode, ddof=1) / np.sqrt(len(per_episode))),
                            "episode_scores": per_episode}
            print(f"  {dataset} seed {seed} {rule:16s} {scores[rule]['score']:6.1f} "
                  f"± {scores[rule]['standard_error']:.1f} (s.e., {episodes} episodes)", flush=True)
    finally:
        for each in {id(e): e for e in envs.values()}.values():
            each.close()
    return {"dataset": dataset, "seed": seed, "steps": specs["SAQ-IQL"].steps, "episodes": episodes,
            "episode_seed_offset": EPISODE_SEED_OFFSET,
            "suite_protocol_scores": {algo: o.record["score"] for algo, o in outcomes.items()},
            "saq_iql_temperature": outcomes["SAQ-IQL"].record["training"]["last_metrics"].get("temperature"),
            "train_seconds": {algo: o.record["training"]["train_seconds"] for algo, o in outcomes.items()},
            "data_sha256": refs.get("sha256"),
            "scores": scores}


def table(folder: Path) -> str:
    """Per dataset: each rule's mean over the finished seeds (per-seed scores in brackets; a rule
    that a file from before the rule lacks is left out of its mean, shown as ``-``), and SAQ-IQL
    sampled minus SAQ-BC greedy (the issue's criterion pair) per seed."""
    lines = ["| dataset | seeds | " + " | ".join(RULES) + " | SAQ-IQL sampled − SAQ-BC greedy |",
             "|---" * (len(RULES) + 3) + "|"]
    records: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*__seed*.json")):
        record = json.loads(path.read_text())
        records.setdefault(record["dataset"], []).append(record)
    for dataset, runs in records.items():
        runs.sort(key=lambda r: r["seed"])
        cells = []
        for rule in RULES:
            per_seed = [r["scores"][rule]["score"] if rule in r["scores"] else None for r in runs]
            known = [score for score in per_seed if score is not None]
            mean = f"{np.mean(known):.1f}" if known else "-"
            cells.append(f"{mean} ({' / '.join('-' if s is None else f'{s:.1f}' for s in per_seed)})")
        gaps = [r["scores"]["SAQ-IQL sampled"]["score"] - r["scores"]["SAQ-BC greedy"]["score"] for r in runs]
        cells.append(f"{np.mean(gaps):+.1f} ({' / '.join(f'{g:+.1f}' for g in gaps)})")
        lines.append(f"| {dataset} | {', '.join(str(r['seed']) for r in runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the standard suite's --data-dir")
    parser.add_argument("--dataset", action="append", required=True,
                        help="a standard-suite dataset (repeatable), e.g. hopper-expert")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per acting rule")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help="quantizer store (default: the ablation suites', second data generation)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--steps", type=int, default=None,
                        help="training updates (default: the suite's 20,000; fewer only to check the script)")
    args = parser.parse_args(argv)
    if args.episodes < 2:
        parser.error("--episodes must be at least 2 (a standard error needs two)")
    init_worker()  # one torch thread, as the suite's runs; d3rlpy's per-epoch logs off
    command = "python -m benchmarks.diagnostics.acting " + " ".join(argv if argv is not None else sys.argv[1:])
    for dataset in args.dataset:
        for seed in args.seeds:
            path = args.out / f"{dataset}__seed{seed}.json"
            if path.exists() and set(RULES) <= set(json.loads(path.read_text())["scores"]):
                print(f"{path.name}: finished earlier, kept")
                continue
            record = diagnose(args.data_dir, dataset, seed, args.episodes, args.artifacts, args.steps)
            record["command"] = command
            args.out.mkdir(parents=True, exist_ok=True)
            with atomic_output(path) as tmp:
                tmp.write_text(json.dumps(record, indent=1))
    print(table(args.out))


if __name__ == "__main__":
    main()
