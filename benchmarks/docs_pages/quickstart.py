"""The README's quickstart table, from the committed record of one ``saq quickstart`` run
(``benchmarks/results/quickstart/``: the ``results.json``, ``results.md`` and
``learning_curves.png`` that the command wrote into its run folder)."""

from __future__ import annotations

from .common import RESULTS_NAME, Results, code, commas

__all__ = ["QUICKSTART", "quickstart_block"]

#: The folder holding the committed quickstart run.
QUICKSTART = "quickstart"


def quickstart_block(results: Results) -> str:
    """The block between the README's ``quickstart`` markers: the settings, the run's own table, the
    reference returns of the normalized score, and its learning curves."""
    doc = results.json(f"{QUICKSTART}/results.json")
    config, dataset = doc["config"], doc["dataset"]
    lines = [
        f"Measured with {code('saq quickstart')} from an empty folder on 2 CPU cores (K = {config['n_codes']}, {commas(config['quantizer_steps'])} quantizer updates, "
        f"{config['time_budget']:g} s of training per algorithm, {config['eval_episodes']} evaluation "
        f"episodes, seed {config['seed']}; {doc['total_seconds']:.0f} s in all):", "",
        results.text(f"{QUICKSTART}/results.md").strip(), "",
        f"Normalized score: 0 = uniform random actions ({dataset['random_return']:.0f}), 100 = the "
        f"noise-free scripted expert ({dataset['expert_return']:.0f}). One seed on an easy task: it shows "
        "the speed and the workflow, not a benchmark result. "
        f"Source: {code(results.name(f'{QUICKSTART}/results.json'))}.", "",
        f"![quickstart learning curves]({RESULTS_NAME}/{QUICKSTART}/learning_curves.png)",
    ]
    return "\n".join(lines)
