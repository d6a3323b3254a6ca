"""One table fragment per committed result file outside the harness reports, for the pages and the
design notes to include: ``generated/<path under benchmarks/results, .json -> .md>``.

A bench script that writes its own Markdown next to its JSON (``wrapper.md`` beside
``wrapper.json``) wrote it from the same run, so its fragment is that Markdown under a line naming
the files and the command; every other JSON is formatted here. A folder of diagnosis files also
gets one fragment for the whole folder (``generated/acting_diagnosis.md``), and a JSON this module
does not know gets a table of its numbers, so no committed result is left without a fragment.
"""

from __future__ import annotations

from typing import Any, Callable

from .common import Output, Results, bold_headings, code, commands_detail, image, source_note, table

__all__ = ["BENCHES", "bench_note", "diagnosis_fragments", "fragments"]

#: Bench scripts that write ``<name>.json`` and ``<name>.md``: the command and what they measure.
BENCHES: dict[str, tuple[str, str]] = {
    "wrapper": ("OMP_NUM_THREADS=1 python benchmarks/bench_wrapper.py",
                "steps per second of `SAQActionWrapper(Hopper-v5)` against the raw env (single env and a "
                "vector of 16), the cost of one batched decode, and where a wrapped step's time goes"),
    "saq_cql": ("python -m benchmarks.bench_saq_cql",
                "gradient updates per second of SAQ-CQL and SAQ-BC against d3rlpy's continuous CQL and BC"),
    "discrete_algos": ("OMP_NUM_THREADS=1 python -m benchmarks.bench_discrete_algos --data kitchen-complete-v0.hdf5",
                       "gradient updates per second of SAQ-IQL, SAQ-BRAC and ARQ against d3rlpy's IQL in a plain "
                       "d3rlpy script (no pipeline), with and without `torch.set_flush_denormal(True)`, and of "
                       "SAQ-IQL and SAQ-BRAC with d3rlpy's own Adam (the presets' optimizer settings taken out)"),
    "compute_ceiling": ("python -m benchmarks.bench_compute_ceiling",
                        "floating-point work per update of each algorithm of the standard suite, the updates per "
                        "second it reaches and its share of the core's matrix-product ceiling"),
    "quantizer_fit": ("OMP_NUM_THREADS=1 python benchmarks/bench_quantizer_fit.py",
                      "the quantizer's fit speed, its convergence, encode rows per second and decode latency"),
    "arq_sampler": ("OMP_NUM_THREADS=2 python benchmarks/bench_arq_sampler.py",
                    "ARQ's candidate sampler: accepted samples per second with their log-likelihoods, and how "
                    "far the fast likelihoods lie from an RK45 reference"),
    "finetune": ("OMP_NUM_THREADS=1 python benchmarks/finetune.py",
                 "online fine-tuning with SB3 DQN from an offline SAQ-CQL model against DQN from scratch, "
                 "on the built-in Pendulum expert data"),
    "finetune_zoo_pendulum_medium": (
        "saq finetune --zoo-model sb3-zoo/sac/Pendulum-v1/model.zip --env Pendulum-v1 --dataset-steps 20000",
        "the same recipe on a narrow, noisy dataset of the SB3 zoo's SAC Pendulum agent"),
}

#: JSON fields that say where and how a bench ran, shown under its table when present.
_RECORDED = ("date", "machine", "platform", "processor", "cpu_capability", "cpu_count", "torch_threads", "device",
             "torch", "d3rlpy")


def bench_note(results: Results, name: str) -> str:
    """The line above a bench script's table: its files, command and the settings its JSON records."""
    data = results.json(f"{name}.json") if results.exists(f"{name}.json") else {}
    settings = data.get("settings") or data.get("config") or {}
    recorded = [(key, data[key] if key in data else settings.get(key)) for key in _RECORDED]
    shown = [f"{key} {value}" for key, value in recorded if value not in (None, "", {})]
    files = [results.name(f"{name}.{ext}") for ext in ("json", "md") if results.exists(f"{name}.{ext}")]
    quick = " It is a quick (smoke) run, as the file records." if data.get("quick") is True else ""
    return source_note(files, BENCHES[name][0] if name in BENCHES else None,
                       details=[("recorded in the file: " + ", ".join(shown)) if shown else ""]) + quick


def _f(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------- diagnoses
def _acting_rules(docs: list[dict[str, Any]]) -> list[str]:
    """The acting rules the files scored, in the order the diagnosis scores them (it appends new
    rules at the end, so a file from before a rule was added holds a prefix of them); a file that
    lacks a rule shows ``-`` for it."""
    return list(dict.fromkeys(rule for doc in docs for rule in doc["scores"]))


def _acting_rows(doc: dict[str, Any], rules: list[str]) -> list[str]:
    scores = doc["scores"]
    return [f"{scores[r]['score']:.1f} ± {scores[r]['standard_error']:.1f}" if r in scores else "-" for r in rules]


def _acting_table(docs: list[dict[str, Any]]) -> list[str]:
    rules = _acting_rules(sorted(docs, key=lambda d: -len(d["scores"])))
    rows = []
    for dataset in dict.fromkeys(d["dataset"] for d in docs):
        members = sorted((d for d in docs if d["dataset"] == dataset), key=lambda d: d["seed"])
        rows += [[dataset, str(d["seed"])] + _acting_rows(d, rules) + [f"{d['saq_iql_temperature']:.1f}"]
                 for d in members]
        means = []
        for rule in rules:
            values = [d["scores"][rule]["score"] for d in members if rule in d["scores"]]
            if not values:
                means.append("-")
                continue
            partial = "" if len(values) == len(members) else f" ({len(values)} seeds)"
            means.append(f"{sum(values) / len(values):.1f}{partial}")
        rows.append([dataset, "mean"] + means + [""])
    return table(["dataset", "seed"] + rules + ["SAQ-IQL λ at the end"], rows)


def _acting_details(docs: list[dict[str, Any]]) -> list[str]:
    d = docs[0]
    return [f"normalized score ± its standard error over {d['episodes']} fresh episodes per rule (episode seeds "
            f"from {d['episode_seed_offset']}), after {d['steps']:,} updates of the suite's specs"]


def _code_policy_table(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    rows = []
    for name, d in docs:
        for r in d["rows"]:
            agreement = "-" if r.get("code_agreement") is None else f"{100 * r['code_agreement']:.0f}%"
            floor = "-" if r.get("quantizer_floor_rmse") is None else f"{r['quantizer_floor_rmse']:.3f}"
            rows.append([d["dataset"], str(d["n_codes"]), r["states"], r["policy"], f"{r['n_states']:,}",
                         f"{r['action_rmse']:.3f}", agreement, floor])
        rows.append([d["dataset"], str(d["n_codes"]), "final score", " / ".join(
            f"{k} {v:.1f}" for k, v in sorted(d["scores"].items())), "", "", "", ""])
    return table(["dataset", "K", "states", "policy", "states scored", "action RMSE to the expert's mean action",
                  "code = the mean action's code", "quantizer floor RMSE"], rows)


def _ceiling_table(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    rows = []
    for name, d in docs:
        for r in d["rows"]:
            rows.append([d["dataset"], d["quantizer"], r["policy"],
                         f"{r['normalized_mean']:.1f} ± {r['normalized_std']:.1f}", f"{r['action_rmse']:.3f}"])
    return table(["dataset", "quantizer", "policy", "normalized score (mean ± std over episodes)",
                  "action RMSE"], rows)


def _saq_iql_fragment(results: Results, rel: str) -> str:
    d = results.json(rel)
    settings = ", ".join(f"{k} {v}" for k, v in d["settings"].items())
    lines = [source_note([results.name(rel)], d["command"],
                         details=[f"data: {d['dataset']['transitions']:,} transitions, {d['dataset']['episodes']} "
                                  f"episodes", f"settings: {settings}"]), ""]
    lines += table(["statistic of the trained model on the dataset's states", "value"],
                   [[k, f"{v:.3f}"] for k, v in d["states"].items()])
    columns = list(dict.fromkeys(k for rule in d["rules"].values() for k in rule))
    lines += [""] + table(["acting rule"] + columns,
                          [[name] + [_f(rule.get(c), 2) if "score" in c or "return" in c else _f(rule.get(c), 3)
                                     for c in columns] for name, rule in d["rules"].items()])
    return "\n".join(lines)


def _cql_penalty_fragment(results: Results, rel: str) -> str:
    d = results.json(rel)
    args = d["args"]
    cql, saq = d["runs"]["CQL"], d["runs"]["SAQ-CQL"]
    exact = {p["step"]: p["exact_penalty"] for p in saq["penalty"]}
    lines = [source_note([results.name(rel)], "OMP_NUM_THREADS=1 python benchmarks/plot_cql_penalty.py",
                         details=["settings: " + ", ".join(f"{k} {v}" for k, v in args.items() if k != "out"),
                                  f"training seconds: CQL {cql['train_seconds']:.0f}, "
                                  f"SAQ-CQL {saq['train_seconds']:.0f}"]),
             ""]
    lines += table(["update", "CQL penalty, sampled", "CQL penalty, reference", "reference − sampled",
                    "SAQ-CQL penalty, exact"],
                   [[f"{p['step']:,.0f}", f"{p['sampled_penalty']:.3f}", f"{p['reference_penalty']:.3f}",
                     f"{p['reference_penalty'] - p['sampled_penalty']:+.3f}", _f(exact.get(p["step"]), 3)]
                    for p in cql["penalty"]])
    returns = {p["step"]: p["mean_return"] for p in saq["returns"]}
    lines += ["", "Mean return at each evaluation:", ""]
    lines += table(["update", "CQL", "SAQ-CQL"], [[f"{p['step']:,.0f}", f"{p['mean_return']:.1f}",
                                                   _f(returns.get(p["step"]))] for p in cql["returns"]])
    if results.exists("cql_penalty.png"):
        lines += ["", image("generated", "cql_penalty.png", "CQL's sampled penalty against the reference")]
    return "\n".join(lines)


def _variant_fragment(results: Results, folder: str) -> str:
    rows = []
    for rel in results.files(f"{folder}/*/runs/*.json"):
        run = results.json(rel)
        variant = rel[len(folder) + 1:].split("/")[0]
        last = run["training"].get("last_metrics") or {}
        weight = ", ".join(f"{k} {last[k]:.3g}" for k in ("temperature", "kl_weight", "kl") if k in last)
        rows.append([variant, run["dataset"], str(run["seed"]),
                     "greedy" if run["spec"]["evaluation"]["greedy"] else "sampled",
                     f"{run['score']:.1f}", f"{run['training']['steps']:,}", weight or "-"])
    lines = [source_note([results.name(f"{folder}/<variant>/runs/*.json")],
                         "python -m benchmarks.diagnostics.variant --data-dir DIR --algo "
                         f"{folder.split('/')[-1]} [--dataset NAME] [--seed N] [--acting sampled] --set FIELD=VALUE"),
             ""]
    lines += table(["variant (folder)", "dataset", "seed", "acting", "normalized score", "updates",
                    "at the end of training"], rows)
    if results.exists(f"{folder}/README.md"):
        lines += ["", f"The folder's notes ({code(results.name(folder + '/README.md'))}):", "",
                  bold_headings(results.text(f"{folder}/README.md"), drop_title=False)]
    return "\n".join(lines)


def _generic_fragment(results: Results, rel: str) -> str:
    """The scalar leaves of a JSON this module has no table for, by their key path."""
    rows: list[list[str]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key], f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            if len(value) <= 20:
                for i, item in enumerate(value):
                    walk(item, f"{path}[{i}]")
        elif isinstance(value, float):
            rows.append([path, f"{value:.4g}"])
        else:
            rows.append([path, str(value)])

    walk(results.json(rel), "")
    return "\n".join([source_note([results.name(rel)]), ""] + table(["field", "value"], rows))


def diagnosis_fragments(results: Results, out: Output) -> set[str]:
    """The diagnosis folders: one fragment per file and one per folder. Returns the files done."""
    done: set[str] = set()
    # the diagnosis's files of one data draw per folder: the second generation's, then other draws'
    for folder in ["acting_diagnosis"] + [rel.rsplit("/", 1)[0] for rel in results.files("acting_diagnosis/*/README.md")]:
        acting = results.files(f"{folder}/*.json")
        if not acting:
            continue
        docs = [results.json(rel) for rel in acting]
        for rel, doc in zip(acting, docs):
            out.add(f"generated/{rel[:-5]}.md", "\n".join([source_note([results.name(rel)], doc["command"],
                                                                        details=_acting_details([doc])), ""]
                                                           + _acting_table([doc])))
        readme = ([f"The folder's notes ({code(results.name(folder + '/README.md'))}):", "",
                   bold_headings(results.text(f"{folder}/README.md"), drop_title=True), ""]
                  if results.exists(f"{folder}/README.md") else [])
        out.add(f"generated/{folder}.md",
                "\n".join([source_note([results.name(f"{folder}/*.json")],
                                       details=[commands_detail(d["command"] for d in docs)]
                                       + _acting_details(docs)), ""] + readme
                          + _acting_table(docs)),
                f"every dataset and seed of {folder}/: the acting rules, score ± s.e., with means")
        done.update(acting)
    for folder, make, what in (("code_policy", _code_policy_table,
                                "action error and code agreement of SAQ-BC and BC per kind of states"),
                               ("quantizer_ceiling", _ceiling_table,
                                "the zoo expert through the quantizer: expert, its codes, the nearest code")):
        files = results.files(f"{folder}/*.json")
        if not files:
            continue
        docs = [(rel, results.json(rel)) for rel in files]
        for rel, doc in docs:
            out.add(f"generated/{rel[:-5]}.md",
                    "\n".join([source_note([results.name(rel)], doc["command"]), ""] + make([(rel, doc)])))
        out.add(f"generated/{folder}.md",
                "\n".join([source_note([results.name(f"{folder}/*.json")],
                                       details=[commands_detail(d["command"] for _, d in docs)]), ""]
                          + make(docs)), f"all of {folder}/: {what}")
        done.update(files)
    variant_runs = results.files("variant_diagnosis/*/*/runs/*.json")
    for folder in sorted({rel.split("/runs/")[0].rsplit("/", 1)[0] for rel in variant_runs}):
        out.add(f"generated/{folder}.md", _variant_fragment(results, folder),
                f"every run of {folder}/: variant, dataset, seed, acting, score, the multiplier at the end; its README")
    return done


def _reproduce_fragment(results: Results, rel: str) -> str:
    """A ``python -m benchmarks.diagnostics.reproduce --json`` file: committed score, score now."""
    d = results.json(rel)
    lines = [source_note([results.name(rel)], d.get("command"), details=[d.get("what", "")]), ""]
    lines += table(["run", "committed score", "score now", "every evaluation return the same"],
                   [[r["run"], _f(r["committed_score"]), _f(r["score_now"]), "yes" if r["same_returns"] else "no"]
                    for r in d["runs"]])
    finished = [r for r in d["runs"] if r["score_now"] is not None]
    if len(finished) > 1:
        before = sum(r["committed_score"] for r in finished) / len(finished)
        now = sum(r["score_now"] for r in finished) / len(finished)
        lines += ["", f"Mean over these {len(finished)} runs: committed {_f(before)}, now {_f(now)}."]
    return "\n".join(lines)


def _code_spread_fragment(results: Results, rel: str) -> str:
    """``benchmarks.diagnostics.code_spread``: the codes' geometry per noise-study dataset, the mean
    over the quantizer seeds with the seeds' range."""
    d = results.json(rel)
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for row in d["rows"]:
        by_dataset.setdefault(row["dataset"], []).append(row)

    def cell(rows: list[dict[str, Any]], get: Callable[[dict[str, Any]], float], digits: int) -> str:
        values = [get(r) for r in rows]
        mean = sum(values) / len(values)
        return f"{mean:.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"

    columns: list[tuple[str, Callable[[dict[str, Any]], float], int]] = [
        ("label perplexity", lambda r: r["label_perplexity"], 1),
        ("label state spread", lambda r: r["label_state_spread"], 2),
        ("data: spread", lambda r: r["data"]["spread"], 3),
        ("data: nearest", lambda r: r["data"]["nearest"], 3),
        (f"data: within {d['within']}", lambda r: r["data"]["within"], 2),
        ("rollouts: spread", lambda r: r["rollouts"]["spread"], 3),
        ("rollouts: nearest", lambda r: r["rollouts"]["nearest"], 3),
        (f"rollouts: within {d['within']}", lambda r: r["rollouts"]["within"], 2),
    ]
    seeds = sorted({r["seed"] for r in d["rows"]})
    lines = [source_note([results.name(rel)], d["command"], details=[
        f"quantizer seeds {', '.join(map(str, seeds))}: the mean over them [lowest, highest]",
        f"{d['states']:,} data states per dataset; {d['rollout_episodes']} episodes of the stochastic zoo "
        "expert per env"]), ""]
    lines += table(["dataset"] + [name for name, _, _ in columns],
                   [[name] + [cell(rows, get, digits) for _, get, digits in columns]
                    for name, rows in by_dataset.items()])
    return "\n".join(lines)


_SPECIAL: dict[str, tuple[Callable[[Results, str], str], str]] = {
    "code_spread.json": (_code_spread_fragment, "the codes' geometry on the noise study's datasets, on and off "
                         "the data"),
    "reproduce_sweep_always.json": (_reproduce_fragment, "committed runs rerun with the first form of the "
                                    "denormal sweep"),
    "reproduce_speed_changes.json": (_reproduce_fragment, "committed runs rerun with issue 39's speed changes"),
    "reproduce_fast_updates.json": (_reproduce_fragment, "committed runs rerun with the Newton KL solve and the "
                                    "fused Adam (float rounding only)"),
    "reproduce_kl_operations.json": (_reproduce_fragment, "committed runs rerun after the KL solve's "
                                     "operations were cut (float rounding only)"),
    "saq_iql_diagnosis.json": (_saq_iql_fragment, "statistics of the states and each acting rule's score"),
    "cql_penalty.json": (_cql_penalty_fragment,
                         "CQL's sampled vs reference penalty, SAQ-CQL's exact one, returns, plot"),
}


def fragments(results: Results, out: Output) -> None:
    """Every fragment outside the harness reports (:func:`.harness.harness_fragments` does those)."""
    done = diagnosis_fragments(results, out)
    for rel in results.files("**/*.json"):
        if rel in done or rel == "history.json" or rel.startswith("harness/"):
            continue
        name = rel[:-5]
        if rel in _SPECIAL:
            make, what = _SPECIAL[rel]
            out.add(f"generated/{name}.md", make(results, rel), what)
        elif "/" not in rel and results.exists(f"{name}.md"):
            text = bench_note(results, name) + "\n\n" + bold_headings(results.text(f"{name}.md"))
            if results.exists(f"{name}.png"):
                text += "\n\n" + image("generated", f"{name}.png", name.replace("_", " "))
            out.add(f"generated/{name}.md", text,
                    BENCHES[name][1] if name in BENCHES else f"{name}.md as the bench script wrote it")
        else:
            out.add(f"generated/{name}.md", _generic_fragment(results, rel), f"the numbers of {rel}")
