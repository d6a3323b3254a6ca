"""The benchmark pages other than the standard suite's and the ablations': the index, the speed
benchmarks (``micro.md``), the real-benchmark suites and the history of removed result folders."""

from __future__ import annotations

from saq_wrappers.integrations.gymnasium_robotics import KITCHEN_ENV_ID, KITCHEN_NOISE, ROBOTICS_VENV

from ..harness import real_suites
from .common import Output, Results, bold_headings, code, commas, image, table
from .fragments import BENCHES, bench_note

__all__ = ["history_page", "index_page", "micro_page", "real_suites_page"]

#: Section titles of the speed page, in page order (the bench scripts of :data:`.fragments.BENCHES`).
MICRO_TITLES = {
    "wrapper": "Wrapper overhead",
    "saq_cql": "SAQ-CQL against CQL: updates per second",
    "discrete_algos": "SAQ-IQL, SAQ-BRAC and ARQ against IQL in a plain d3rlpy script: updates per second",
    "compute_ceiling": "Compute per update, and the standard suite's training time",
    "quantizer_fit": "Quantizer fit, encode and decode",
    "arq_sampler": "ARQ's candidate sampler",
    "finetune": "Online fine-tuning (SB3 DQN)",
    "finetune_zoo_pendulum_medium": "Online fine-tuning on a noisy zoo dataset",
}

#: The pages under ``docs/benchmarks/``: file, title, what it holds.
PAGES = (
    ("standard", "The standard suite", "SAQ-X against X (BC, CQL, IQL, TD3+BC) and ARQ on five generated "
     "datasets at equal updates: per-dataset scores with bootstrap intervals, SAQ-X − X, the IQM across "
     "datasets, P(SAQ-X > X), learning curves and the time it took"),
    ("ablations", "Ablations and the quantizer study", "codebook size (SAQ Table 4), state conditioning (SAQ "
     "Table 3), CQL's sampled against exact penalty (SAQ Figure 2), the quantizer's fit budget and SAQ-IQL's "
     "acting rule"),
    ("micro", "Speed", "wrapper overhead, updates per second of the SAQ algorithms against d3rlpy's, compute per "
     "update, quantizer fit and decode, ARQ's sampler, and online fine-tuning"),
    ("real-suites", "The real-benchmark suites", "D4RL locomotion and Adroit (through Minari), D4RL's kitchen "
     "and robomimic at the authors' budgets, for users with the data and the compute"),
    ("history", "Removed and renamed result folders", "superseded runs that left the tree, and the commit that "
     "still holds each"),
)


def index_page(results: Results, out: Output) -> str:
    lines = ["# Benchmarks", "",
             "Every number on these pages is written by `python -m benchmarks.docs_pages` from the result files "
             "committed under `benchmarks/results/`, and `python -m benchmarks.docs_pages --check` (run by the "
             "tests) fails when a page no longer matches them. Each table names the file it comes from, the "
             "seeds, the budget and the command that produced it.", ""]
    lines += table(["page", "what it measures"], [[f"[{title}]({name}.md)", what] for name, title, what in PAGES])
    lines += ["", "## Commands", "", "```bash",
              "# the standard suite: generate its data, then run it (resumes where it stopped)",
              "python -m benchmarks.run --suite standard --prepare-only --data-dir DIR --zoo ZOO",
              "python -m benchmarks.run --suite standard --data-dir DIR",
              "# an ablation or the quantizer study, into the ablations folder",
              "python -m benchmarks.run --suite ablation-k --data-dir DIR --out benchmarks/results/harness/ablations",
              "# rewrite a report from its finished runs, training nothing",
              "python -m benchmarks.run --suite standard --report-only --data-dir DIR",
              "# rewrite these pages (and the README's results summary) from the committed results",
              "python -m benchmarks.docs_pages", "```", "",
              "## Table fragments", "",
              "The design notes include tables written by the same command into `docs/generated/`, one per "
              f"result file ({len([p for p in out if p.startswith('generated/')])} in all; "
              "`docs/generated/index.txt` lists them).", "",
              "```{toctree}", ":hidden:", ""] + [name for name, _, _ in PAGES] + ["```"]
    return "\n".join(lines)


def micro_page(results: Results) -> str:
    lines = ["# Speed", "",
             "Micro-benchmarks of the library's parts. Each script prints its table and writes "
             "`benchmarks/results/<name>.json` and `.md`; the tables below are those files. Timings compare "
             "within one file (ratios measured side by side in one run), not across machines."]
    for name, title in MICRO_TITLES.items():
        if not results.exists(f"{name}.md"):
            continue
        lines += ["", f"## {title}", "", f"What it measures: {BENCHES[name][1]}.", "", bench_note(results, name), "",
                  bold_headings(results.text(f"{name}.md"))]
        if results.exists(f"{name}.png"):
            lines += ["", image("benchmarks", f"{name}.png", title)]
    return "\n".join(lines)


#: What each kitchen noise setting is, for the real-suites page.
_KITCHEN_NOISE_MEANING = {
    "dataset": "D4RL's, what the demonstrations saw (the default; v1 puts the object amplitudes one slot off, "
               "so close, not identical)",
    "v1": "FrankaKitchen-v1's defaults",
    "none": "no noise",
}


#: What each committed kitchen folder is (a results folder the harness wrote, under harness/).
KITCHEN_FOLDERS = {
    "kitchen-budget": "Where the kitchen's learning curves level off, to choose the suite's budget on this "
                      "machine: BC, SAQ-BC, IQL and SAQ-IQL, seed 0, 40,000 updates, a 5,000-update quantizer, 8 "
                      "curve points of 10 episodes, observation noise `dataset` (the command is in the table's "
                      "source line). One seed: a budget measurement, not a comparison.",
    "kitchen": "The kitchen suite: every pair X / SAQ-X and ARQ on all 19 demonstrations, seeds 0-2, at the "
               "budget measured above (20,000 updates, twice where the curves level off; a 5,000-update "
               "quantizer, a 10,000-update ARQ score model, 8 curve points of 10 episodes), observation noise "
               "`dataset`. The README's kitchen table is this report's. SAQ-IQL's and SAQ-BRAC's seed 0 trained "
               "before the Newton KL solve and the fused Adam of the speed guide, seeds 1 and 2 after them: the "
               "same algorithm, rounded differently.",
}


def real_suites_page(results: Results) -> str:
    committed = sorted({rel.split("/")[1] for suite in real_suites.REAL_SUITES
                        for rel in results.files(f"harness/{suite}/results.json")
                        + results.files(f"harness/{suite}-*/results.json")})
    budgets = real_suites.BUDGETS
    rows = []
    for suite in real_suites.REAL_SUITES:
        b = budgets[suite]
        rows.append([code(suite), commas(b.updates), commas(b.quantizer_updates), commas(b.score_updates),
                     f"{b.arq_learning_rate:g}", f"{b.arq_alpha:g}", str(b.eval_episodes), str(b.curve_points)])
    lines = [
        "# The real-benchmark suites", "",
        "Suites on the benchmarks of the SAQ and ARQ papers, at the authors' budgets, for users with the data "
        "and the compute (a GPU machine or a Ray cluster). They run the same offline pipeline as the standard "
        "suite.", "",
        f"- `d4rl-locomotion`: Minari {', '.join(code(d) for d in real_suites.LOCOMOTION_DATASETS)};",
        f"- `d4rl-adroit`: Minari {', '.join(code(f'D4RL/{t}/human-v2') for t in real_suites.ADROIT_TASKS)} "
        "(gymnasium-robotics, in a virtualenv of its own, below);",
        "- `kitchen`: D4RL's `kitchen-complete-v0` hdf5 file given with `--data` (19 human demonstrations, "
        "3,680 transitions), evaluated in Gymnasium-Robotics' `FrankaKitchen-v1` observed as D4RL's v0 env "
        f"({code(KITCHEN_ENV_ID)}, gymnasium-robotics, below), score `100 * return / 4` (25 per task);",
        "- `robomimic`: the robomimic low-dim hdf5 files given with `--data` (for example lift, can and square "
        "PH), success rate over robomimic's horizons.", "",
        f"Algorithms: {', '.join(real_suites.REAL_ALGOS)}; seeds {', '.join(map(str, real_suites.REAL_SEEDS))}. "
        "Budgets, per suite (`benchmarks/harness/real_suites.py`, from the authors' scripts and appendices):", "",
    ]
    lines += table(["suite", "updates per algorithm", "SAQ quantizer updates", "ARQ score-model updates",
                    "ARQ learning rate", "ARQ policy temperature", "evaluation episodes", "curve points"], rows)
    lines += ["", "## Results", ""]
    if committed:
        lines += ["Committed results: " + ", ".join(code(s) for s in committed) + ".", ""]
        for folder in committed:
            lines += [f"### `{folder}`", "", KITCHEN_FOLDERS.get(folder, ""), "",
                      f"```{{include}} ../generated/harness/{folder}/scores.md", "```", ""]
            for plot, alt in (("learning_curves.png", "learning curves against updates"),
                              ("wall_clock_curves.png", "learning curves against training seconds")):
                if results.exists(f"harness/{folder}/{plot}"):
                    lines += [image("benchmarks", f"harness/{folder}/{plot}", f"{folder}: {alt}"), ""]
    else:
        lines += ["No results of these suites are committed yet (none under `benchmarks/results/harness/`).", ""]
    lines += [
        "The tests run each suite's pipeline end to end, offline, on small datasets written under the exact "
        "Minari ids with the real env specs (`tests/test_real_suites.py`).", "",
        "## Running them", "",
        "Datasets are read from `$MINARI_DATASETS_PATH`; nothing is downloaded unless you pass `--download`. "
        "The evaluation env is rebuilt from each dataset's metadata and scores are normalized with its "
        "reference scores. `--budget-scale` shortens every budget; the scale is part of each run's identity and "
        "of the output folder, so shortened and full results never mix.", "",
        "```bash",
        "python -m benchmarks.run --suite d4rl-locomotion --download",
        "python -m benchmarks.run --suite robomimic --data lift/ph/low_dim_v141.hdf5 --budget-scale 0.01",
        f"{real_suites.ROBOTICS_INSTALL}",
        f"{ROBOTICS_VENV}/bin/python -m benchmarks.run --suite d4rl-adroit --download",
        f"{ROBOTICS_VENV}/bin/python -m benchmarks.run --suite kitchen --data kitchen-complete-v0.hdf5",
        f"{ROBOTICS_VENV}/bin/python -m benchmarks.run --suite kitchen --data kitchen-complete-v0.hdf5 "
        "--first-episodes 5,10",
        "```", "",
        "Adroit and the kitchen need gymnasium-robotics, whose MuJoCo range excludes robosuite's and whose newer "
        f"releases need a newer Gymnasium than d3rlpy pins; hence its own virtualenv, `{ROBOTICS_VENV}`, and "
        "`constraints-robotics.txt` (the `adroit` extra, the former name of `robotics`, still works). The cost "
        "of each suite is estimated in `python -m benchmarks.run --help`'s module documentation "
        "(`benchmarks/run.py`).", "",
        "## The kitchen suite", "",
        "`--data` takes the official file or any copy in its layout (60-D observations, 9-D actions); the file's "
        "SHA-256 only decides what the results say. The official file is named `kitchen-complete-v0` and gets the "
        "SAQ paper's numbers (Table 5) beside ours; any other file is named after itself and its hash, without "
        "them. The data's rewards count the tasks done so far at every step, the env's the tasks newly done, so "
        "an episode's return is at most 4.", "",
        "The env's observation noise is an option, because it changes scores (`--kitchen-noise`, recorded in "
        "every run's dataset spec as `env_kwargs`, and in the dataset and folder names when not the default):", "",
    ]
    lines += table(["setting", "robot noise ratio", "object noise ratio", "what it is"], [
        [code(name), f"{robot:g}", f"{obj:g}", _KITCHEN_NOISE_MEANING[name]]
        for name, (robot, obj) in KITCHEN_NOISE.items()])
    lines += [
        "", "`--first-episodes 5,10` trains the same pairs on the first 5 and the first 10 demonstrations "
        "(datasets `...-first5`, `...-first10`; the paper has no numbers for them).",
    ]
    return "\n".join(lines)


def history_page(results: Results) -> str:
    record = results.json("history.json")
    rows = [[code(e["path"]), e["action"], code(e["replaced_by"]), code(e["last_commit"]), e["last_changed"],
             str(e["tracked_files"]), e["what"]] for e in record["entries"]]
    lines = ["# Removed and renamed result folders", "",
             "`benchmarks/results/` keeps the canonical result folders. Superseded runs, and the standard suite's "
             "first run across two kinds of machine, left the tree; git keeps them. Each row names the last commit "
             f"that changed the folder; every one of them was still in the tree, unchanged, at commit "
             f"{code(record['present_until'])}. To read one back:", "",
             "```bash", "git show COMMIT:PATH/results.md", "git checkout COMMIT -- PATH", "```", "",
             f"Source: {code(results.name('history.json'))}.", ""]
    lines += table(["folder", "what happened", "replaced by, or now at", "last commit", "last changed", "files",
                    "what it held"], rows)
    return "\n".join(lines)
