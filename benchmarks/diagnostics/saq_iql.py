"""Why SAQ-IQL collapses on narrow data: one trained model, several acting rules, and the Q-values
of the codes the data never takes at a state.

SAQ-IQL trains its critics only at the dataset's code of each state and acts with SAQ eq. 10,
``pi*(k|s) ∝ exp(A(s,k)/lambda + max(log pi_beta(k|s), -8))``, which reads ``Q(s, k)`` at every
code. This script trains the SAQ-IQL preset once through the library's registry, then measures
on every 10th dataset state and in ``--episodes`` seeded episodes:

* how often eq. 10's choice is the dataset's code, and how often it is a code pi_beta gives
  < 0.1% (``out-of-support``);
* at how many states some out-of-support code has a higher Q than the dataset's code, and how
  much of the dataset advantage's variance lies between codes;
* the return of each acting rule: eq. 10 as the authors run it (lambda 0.1, clip -8; argmax and
  sampled), without the clip, with lambda 1, restricted to codes pi_beta supports, under eq. 9's
  KL constraint solved per state (the closed form's default since this diagnosis; argmax and
  sampled, several budgets), and pi_beta's own argmax;
* the mean mass each rule puts on out-of-support codes.

Usage (a Minari dataset folder, e.g. made by ``saq data generate``)::

    OMP_NUM_THREADS=2 python -m benchmarks.diagnostics.saq_iql --dataset DIR --steps 10000

Writes ``benchmarks/results/saq_iql_diagnosis.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from saq_wrappers.app.datasets import DatasetSpec, load_dataset
from saq_wrappers.app.pipeline import flush_denormals
from saq_wrappers.integrations.d3rlpy import registry, to_discrete_dataset, train_with_budget
from saq_wrappers.integrations.d3rlpy.torch.iql_impl import iql_policy_logits
from saq_wrappers.integrations.d3rlpy.torch.utility import min_q_values
from saq_wrappers.integrations.d3rlpy.training import seed_everything
from saq_wrappers.io import atomic_output
from saq_wrappers.transitions import relabel
from saq_wrappers.vqvae import VQVAEQuantizer

RESULTS = Path(__file__).resolve().parents[1] / "results" / "saq_iql_diagnosis.json"
#: pi_beta mass below which a code counts as out of the data's support at a state.
OUT_OF_SUPPORT = 1e-3

Rule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _eq10(temperature: float, kl_budget: float | None = None) -> Rule:
    """Eq. 10's logits from (advantage, log pi_beta), through the library's own function."""
    return lambda a, lb: iql_policy_logits(a, torch.zeros_like(a[:, :1]), lb, temperature, -8.0, kl_budget)


def _restricted(threshold: Callable[[torch.Tensor], torch.Tensor]) -> Rule:
    return lambda a, lb: torch.where(threshold(lb), a / 0.1 + lb, torch.full_like(lb, -1e9))


#: name -> (logits rule, sample a code from softmax(logits) instead of taking the argmax)
RULES: dict[str, tuple[Rule, bool]] = {
    "eq. 10, lambda 0.1, log pi_beta clipped at -8 (the authors' rule), argmax": (_eq10(0.1), False),
    "eq. 10, lambda 0.1, clip -8 (the authors' rule), sampled as their scripts do": (_eq10(0.1), True),
    "eq. 10, lambda 0.1, no clip": (lambda a, lb: a / 0.1 + lb, False),
    "eq. 10, lambda 1, clip -8": (_eq10(1.0), False),
    "eq. 10, lambda 0.1, only codes with pi_beta >= 1%": (_restricted(lambda lb: lb >= np.log(0.01)), False),
    "eq. 10, lambda 0.1, only codes with pi_beta >= 10% of its max":
        (_restricted(lambda lb: lb >= lb.max(1, keepdim=True).values + np.log(0.1)), False),
    **{f"eq. 10 under eq. 9's constraint KL <= {eps:g} per state, {'sampled' if sample else 'argmax'}":
       (_eq10(0.1, eps), sample) for eps in (0.03, 0.1, 0.3, 1.0) for sample in (False, True)},
    "argmax pi_beta (behavior cloning from the same model)": (lambda a, lb: lb, False),
}


def _between_code_share(values: torch.Tensor, codes: torch.Tensor) -> float:
    """Share of ``values``' variance explained by the code (between-code / total variance).

    Why: each code's critic output is trained only on the states where the data takes that
    code, so a per-code bias in ``A(s, k_data)`` tilts an advantage-weighted policy towards the
    same codes at every state; a large share points at that rather than per-state signal.
    """
    total = float(values.var(unbiased=False))
    if total == 0.0:
        return 0.0
    means = torch.zeros(int(codes.max()) + 1).index_add_(0, codes, values)
    counts = torch.zeros_like(means).index_add_(0, codes, torch.ones_like(values))
    per_sample_mean = (means / counts.clamp(min=1))[codes]
    return float(((per_sample_mean - values.mean()) ** 2).mean()) / total


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="Minari dataset folder or id")
    parser.add_argument("--steps", type=int, default=10_000, help="SAQ-IQL updates")
    parser.add_argument("--quantizer-steps", type=int, default=3000)
    parser.add_argument("--n-codes", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    flush_denormals()
    started = time.perf_counter()

    data = load_dataset(DatasetSpec(name="data", kind="minari", source=args.dataset))
    env = data.make_env()
    quantizer = VQVAEQuantizer(env.observation_space, env.action_space, n_codes=args.n_codes, seed=args.seed)
    quantizer.fit(data.transitions, n_steps=args.quantizer_steps, progress=False)
    relabeled = relabel(data.transitions, quantizer, progress=False)
    seed_everything(args.seed)
    algo = registry.make_config("SAQ-IQL", env.action_space,
                                options={"fit_behavior_policy": True}).create(device="cpu")
    record = train_with_budget(algo, to_discrete_dataset(data.transitions, relabeled, progress=False),
                               n_steps=args.steps, progress=False)
    modules = algo.impl._modules  # the trained networks, read directly

    def parts(observations: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Q of every code, advantage, log pi_beta) as eq. 10 reads them."""
        x = algo.observation_scaler.transform(torch.as_tensor(np.array(observations, np.float32)))
        with torch.no_grad():
            q = min_q_values(modules.targ_q_funcs, x)
            return q, q - modules.value_func(x), modules.behavior_policy(x).logits

    states = data.transitions.observations[::10]
    codes = torch.as_tensor(np.array(relabeled.codes[::10]))
    q, advantage, log_behavior = parts(states)
    q_data = q.gather(1, codes.view(-1, 1)).view(-1)
    outside = log_behavior < np.log(OUT_OF_SUPPORT)
    q_outside = torch.where(outside, q, torch.full_like(q, -float("inf"))).max(dim=1).values
    result: dict[str, Any] = {
        "command": "python -m benchmarks.diagnostics.saq_iql " + " ".join(sys.argv[1:] if argv is None else argv),
        "dataset": {"source": args.dataset, "transitions": len(data.transitions),
                    "episodes": int(data.transitions.n_episodes)},
        "settings": {"steps": args.steps, "quantizer_steps": args.quantizer_steps, "n_codes": args.n_codes,
                     "seed": args.seed, "episodes": args.episodes, "threads": args.threads},
        "last_losses": record.last_metrics,
        "states": {
            "pi_beta top-1 accuracy on the dataset codes": float((log_behavior.argmax(1) == codes).float().mean()),
            "median log pi_beta(dataset code)": float(log_behavior.gather(1, codes.view(-1, 1)).median()),
            "share of states where an out-of-support code has a higher Q than the dataset code":
                float((q_outside > q_data).float().mean()),
            "median Q(dataset code)": float(q_data.median()),
            "share of the dataset advantage's variance between codes": _between_code_share(
                advantage.gather(1, codes.view(-1, 1)).view(-1), codes),
        },
        "rules": {},
    }
    for name, (rule, sample) in RULES.items():
        logits = rule(advantage, log_behavior)
        picks = logits.argmax(1)
        returns = []
        generator = torch.Generator().manual_seed(args.seed)
        for episode in range(args.episodes):
            observation, _ = env.reset(seed=args.seed + episode)
            done, total = False, 0.0
            while not done:
                _, a, lb = parts(observation[None])
                step_logits = rule(a, lb)
                code = int(torch.multinomial(torch.softmax(step_logits, 1), 1, generator=generator)[0, 0]
                           if sample else step_logits.argmax(1)[0])
                action = quantizer.decode(observation[None].astype(np.float32), np.array([code]))[0]
                observation, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        mean = float(np.mean(returns))
        result["rules"][name] = {
            "mean return": mean,
            "normalized score": float(100 * (mean - data.random_return) / (data.expert_return - data.random_return)),
            "picks the dataset code": float((picks == codes).float().mean()),
            "picks an out-of-support code": float(outside.gather(1, picks.view(-1, 1)).float().mean()),
            "mean policy mass on out-of-support codes":
                float((torch.softmax(logits, 1) * outside.float()).sum(1).mean()),
        }
    result["seconds"] = time.perf_counter() - started
    RESULTS.parent.mkdir(exist_ok=True)
    with atomic_output(RESULTS) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
