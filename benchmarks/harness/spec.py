"""What a benchmark run is, and the suites: grids of (dataset, algorithm, seed) with budgets.

A :class:`RunSpec` is plain data (JSON round trip, picklable for the process pool and Ray). Its
:attr:`RunSpec.run_id` names the result file; the full spec is stored in that file, so a
finished run is recognised (and never repeated) only when every setting matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Optional

from saq_wrappers.errors import DataError

#: Continuous d3rlpy baselines (TD3+BC stands in for BRAC, which d3rlpy does not ship).
CONTINUOUS_ALGOS = ("BC", "CQL", "IQL", "TD3+BC")
#: SAQ-X: d3rlpy discrete algorithms (and ours) on the quantizer's codes.
SAQ_ALGOS = ("SAQ-BC", "SAQ-CQL", "SAQ-IQL", "SAQ-BRAC")
#: Every algorithm name the harness knows.
ALGORITHMS = CONTINUOUS_ALGOS + SAQ_ALGOS + ("ARQ",)
#: Dataset kinds.
DATASET_KINDS = ("builtin", "minari", "robomimic", "d4rl")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset and how to evaluate on it.

    Attributes:
        name: short display name and file-name key (``hopper-expert``).
        kind: ``builtin`` (the package's Pendulum expert), ``minari`` (id or folder),
            ``robomimic`` (hdf5 file; scored by success rate) or ``d4rl`` (hdf5 file + ``env_id``).
        source: the id or path (``pendulum-expert`` for ``builtin``).
        env_id: Gymnasium id of the evaluation env (``d4rl`` only).
        ref_min, ref_max: reference returns, overriding the dataset's own.
        paper_key: the paper's dataset this one stands in for (``hopper-expert-v2``,
            ``robomimic-lift-ph``): the report puts the paper's number beside ours.
        episodes: built-in dataset size (episodes).
        horizon: robomimic evaluation horizon (robomimic uses 400 for Lift).
        filter_key: robomimic split to train on (``train``); ``None`` reads every demo.
    """

    name: str
    kind: str
    source: str
    env_id: Optional[str] = None
    ref_min: Optional[float] = None
    ref_max: Optional[float] = None
    paper_key: Optional[str] = None
    episodes: int = 50
    horizon: Optional[int] = None
    filter_key: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise DataError(f"dataset {self.name!r}: kind {self.kind!r} unknown, expected one of {DATASET_KINDS}")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", self.name):
            raise DataError(f"dataset name {self.name!r}: use letters, digits and . _ + - only (it names files)")
        if self.kind == "d4rl" and not self.env_id:
            raise DataError(f"dataset {self.name!r}: a D4RL hdf5 file needs env_id (e.g. d4rl:file.hdf5@Hopper-v5)")

    @property
    def metric(self) -> str:
        """``success`` (robomimic-style tasks, in %) or ``normalized`` (D4RL-style score)."""
        return "success" if self.kind == "robomimic" else "normalized"

    @classmethod
    def parse(cls, text: str) -> "DatasetSpec":
        """``[NAME=]KIND:SOURCE[@ENV_ID]``, e.g. ``builtin:pendulum-expert``,
        ``hopper=minari:mujoco/hopper/expert-v0``, ``lift=robomimic:lift_ph.hdf5``,
        ``d4rl:hopper_expert.hdf5@Hopper-v5``."""
        name, _, rest = text.rpartition("=") if "=" in text.split(":", 1)[0] else ("", "", text)
        kind, sep, source = rest.partition(":")
        if not sep or not source:
            raise DataError(f"dataset {text!r}: expected [NAME=]KIND:SOURCE with KIND in {DATASET_KINDS}")
        env_id = None
        if kind == "d4rl" and "@" in source:
            source, env_id = source.rsplit("@", 1)
        if not name:
            stem = Path(source).stem if kind in ("robomimic", "d4rl") else source
            name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", stem).strip("-") or kind
        return cls(name=name, kind=kind, source=source, env_id=env_id)


@dataclasses.dataclass(frozen=True)
class QuantizerSettings:
    """The SAQ quantizer of a run (shared by every SAQ run with equal settings and seed)."""

    n_codes: int = 64
    state_conditioned: bool = True
    hidden: tuple[int, ...] = (512, 512)
    steps: int = 5000


@dataclasses.dataclass(frozen=True)
class ARQSettings:
    """ARQ's behavior model, candidate table and Q-learning settings.

    Defaults are the authors' (REFERENCE.md) except the sampler's size and training, which a
    suite shrinks to its budget (the candidate table costs ``N`` PF-ODE samples per state).
    """

    n_samples: int = 30
    hidden: int = 256
    n_blocks: int = 3
    ode_steps: int = 10
    fit_steps: int = 100_000
    fit_batch: int = 512
    fit_lr: float = 1e-4
    kth: int = 9
    alpha: float = 1.0
    learning_rate: float = 3e-4


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One (dataset, algorithm, seed) run with its budget and settings.

    Attributes:
        steps: gradient-update budget (the same for X and SAQ-X).
        time_budget: optional wall-clock cap in seconds (training only; evaluation not counted).
        hidden: hidden sizes of every network of the algorithm (Q, policy, value), the same for
            the continuous baseline and its SAQ counterpart; ``None`` keeps each preset's own
            (authors' 512-512 for CQL/BC, 256-256 for IQL/BRAC, d3rlpy's 256-256 for baselines).
        batch_size: minibatch size of every algorithm (256).
        eval_episodes: final evaluation episodes; curve_points x curve_episodes for the curve.
        track_penalty: log CQL's conservative penalty (exact for SAQ-CQL, sampled vs reference
            for CQL) at every curve point (SAQ Figure 2).
        tag: free label (suite name) stored with the result.
    """

    dataset: DatasetSpec
    algo: str
    seed: int = 0
    steps: int = 10_000
    time_budget: Optional[float] = None
    hidden: Optional[tuple[int, ...]] = None
    batch_size: int = 256
    eval_episodes: int = 10
    curve_points: int = 5
    curve_episodes: int = 2
    quantizer: QuantizerSettings = QuantizerSettings()
    arq: ARQSettings = ARQSettings()
    track_penalty: bool = False
    tag: str = ""

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise DataError(f"unknown algorithm {self.algo!r}: expected one of {', '.join(ALGORITHMS)}")
        if self.steps < 1:
            raise DataError(f"steps must be >= 1, got {self.steps}")
        if self.eval_episodes < 1 or self.curve_episodes < 1 or self.curve_points < 1:
            raise DataError("eval_episodes, curve_episodes and curve_points must be >= 1")

    @property
    def is_saq(self) -> bool:
        return self.algo in SAQ_ALGOS

    @property
    def label(self) -> str:
        """Algorithm name with the variant that an ablation changes (K, no-state)."""
        if not self.is_saq:
            return self.algo
        extra = [f"K={self.quantizer.n_codes}"]
        if not self.quantizer.state_conditioned:
            extra.append("no state")
        return f"{self.algo} ({', '.join(extra)})"

    @property
    def run_id(self) -> str:
        """File-name key: dataset, algorithm, variant, seed."""
        algo = self.algo.replace("+", "p")
        variant = ""
        if self.is_saq:
            variant = f"-K{self.quantizer.n_codes}" + ("" if self.quantizer.state_conditioned else "-nostate")
        penalty = "-penalty" if self.track_penalty else ""
        return f"{self.dataset.name}__{algo}{variant}{penalty}__seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        data = dict(data)
        data["dataset"] = DatasetSpec(**data["dataset"])
        q = dict(data.get("quantizer", {}))
        if "hidden" in q:
            q["hidden"] = tuple(q["hidden"])
        data["quantizer"] = QuantizerSettings(**q)
        data["arq"] = ARQSettings(**data.get("arq", {}))
        if data.get("hidden") is not None:
            data["hidden"] = tuple(data["hidden"])
        return cls(**data)

    def fingerprint(self) -> str:
        """SHA-256 of every setting except ``tag``: equal fingerprints mean the same run."""
        data = self.to_dict()
        data.pop("tag", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------- suites
#: Suites ``python -m benchmarks.run --suite`` knows.
SUITES = ("tiny", "small", "paper", "ablation-state", "ablation-k", "ablation-penalty")
MAIN_ALGOS = ("BC", "CQL", "IQL", "SAQ-BC", "SAQ-CQL", "SAQ-IQL", "SAQ-BRAC", "ARQ")


def suite_datasets(suite: str, data_dir: Path) -> list[DatasetSpec]:
    """The datasets of a suite, as ``prepare`` writes them under ``data_dir``."""
    minari = data_dir / "minari"
    # the paper suite's datasets are 10x larger: another Minari namespace, never mixed up
    namespace = "saqbench-full" if suite == "paper" else "saqbench"

    def loco(env: str, recipe: str) -> DatasetSpec:
        name = f"{env}-{recipe}"
        return DatasetSpec(name=name, kind="minari", source=str(minari / namespace / f"{name}-v0"),
                           paper_key=f"{env}-{recipe}-v2")

    if suite == "tiny":
        return [DatasetSpec(name="pendulum-expert", kind="builtin", source="pendulum-expert", episodes=10)]
    if suite == "small":
        return [
            loco("hopper", "expert"),
            loco("hopper", "medium-expert"),
            DatasetSpec(name="lift-ph", kind="robomimic", source=str(data_dir / "lift_ph_100.hdf5"),
                        paper_key="robomimic-lift-ph", horizon=200, filter_key="train"),
        ]
    if suite == "paper":
        sets = [loco(env, recipe) for env in ("hopper", "halfcheetah", "walker2d")
                for recipe in ("expert", "medium-expert", "medium")]
        sets.append(DatasetSpec(name="lift-ph", kind="robomimic", source=str(data_dir / "lift_ph_200.hdf5"),
                                paper_key="robomimic-lift-ph", horizon=400, filter_key="train"))
        return sets
    if suite in ("ablation-k", "ablation-penalty"):
        return [loco("hopper", "expert")]
    if suite == "ablation-state":
        return [loco("hopper", "medium-expert")]
    raise DataError(f"unknown suite {suite!r}: expected one of {', '.join(SUITES)}")


#: Data each suite's ``prepare`` generates: (name, env, recipe, steps, expert model, medium model).
def prepare_plan(suite: str) -> dict[str, Any]:
    """What ``prepare`` must generate for ``suite`` (zoo models are paths relative to ``--zoo``)."""
    small = suite in ("small", "ablation-k", "ablation-state", "ablation-penalty")
    steps = 10_000 if small else 100_000
    plan: list[dict[str, Any]] = []
    envs = {"hopper": "Hopper", "halfcheetah": "HalfCheetah", "walker2d": "Walker2d"}
    for ds in suite_datasets(suite, Path(".")):
        if ds.kind != "minari":
            continue
        env, recipe = ds.name.split("-", 1)
        title = envs[env]
        plan.append(dict(
            name=ds.name, env_id=f"{title}-v5", recipe=recipe,
            dataset_id="/".join(Path(ds.source).parts[-2:]),
            n_steps=2 * steps if recipe == "medium-expert" else steps,
            model=f"tqc/{title}-v3/model.zip", medium_model=f"sac/{title}-v3/model.zip",
        ))
    lift = [ds for ds in suite_datasets(suite, Path(".")) if ds.kind == "robomimic"]
    return {"minari": plan, "lift_demos": (100 if small else 200) if lift else 0}


def build_suite(
    suite: str,
    data_dir: Path,
    seeds: Optional[list[int]] = None,
    algos: Optional[list[str]] = None,
    datasets: Optional[list[DatasetSpec]] = None,
    steps: Optional[int] = None,
    time_budget: Optional[float] = None,
    eval_episodes: Optional[int] = None,
) -> list[RunSpec]:
    """The runs of ``suite``; every keyword overrides the suite's own choice."""
    if suite not in SUITES:
        raise DataError(f"unknown suite {suite!r}: expected one of {', '.join(SUITES)}")
    sets = datasets if datasets else suite_datasets(suite, data_dir)
    if suite == "tiny":
        base = dict(steps=300, hidden=(64, 64), eval_episodes=2, curve_points=2, curve_episodes=1,
                    quantizer=QuantizerSettings(n_codes=8, hidden=(64, 64), steps=200),
                    arq=ARQSettings(n_samples=4, hidden=32, n_blocks=1, ode_steps=2, fit_steps=100,
                                    fit_batch=256, fit_lr=3e-3, kth=2))
        default_algos, default_seeds = ["BC", "SAQ-BC"], [0]
    elif suite == "paper":
        base = dict(steps=200_000, hidden=None, eval_episodes=10, curve_points=10, curve_episodes=5,
                    quantizer=QuantizerSettings(n_codes=64, hidden=(512, 512), steps=20_000),
                    arq=ARQSettings(n_samples=30, fit_steps=100_000))
        default_algos, default_seeds = list(MAIN_ALGOS) + ["TD3+BC"], [0, 1, 2]
    else:
        # small and the ablations: 256-256 networks everywhere (the IQL size of the authors),
        # one short budget, a quick quantizer and a small ARQ sampler.
        base = dict(steps=4000, hidden=(256, 256), eval_episodes=5, curve_points=4, curve_episodes=2,
                    quantizer=QuantizerSettings(n_codes=64, hidden=(256, 256), steps=3000),
                    arq=ARQSettings(n_samples=16, hidden=128, n_blocks=2, ode_steps=6, fit_steps=5000,
                                    fit_batch=512, fit_lr=1e-3, kth=5))
        default_algos, default_seeds = list(MAIN_ALGOS), [0]
    if steps is not None:
        base["steps"] = steps
    if eval_episodes is not None:
        base["eval_episodes"] = eval_episodes
    base["time_budget"] = time_budget
    chosen = algos if algos else default_algos
    chosen_seeds = seeds if seeds else default_seeds
    runs: list[RunSpec] = []
    for ds in sets:
        for algo in chosen:
            for seed in chosen_seeds:
                if suite == "ablation-k" and not algos:
                    if algo not in ("SAQ-CQL", "SAQ-IQL", "SAQ-BRAC"):
                        continue
                    for k in (16, 32, 64, 128):
                        q = dataclasses.replace(base["quantizer"], n_codes=k)
                        runs.append(RunSpec(ds, algo, seed, tag=suite, **{**base, "quantizer": q}))
                    continue
                if suite == "ablation-state" and not algos:
                    if algo not in ("SAQ-CQL", "SAQ-IQL", "SAQ-BRAC"):
                        continue
                    for conditioned in (True, False):
                        q = dataclasses.replace(base["quantizer"], n_codes=16, state_conditioned=conditioned)
                        runs.append(RunSpec(ds, algo, seed, tag=suite, **{**base, "quantizer": q}))
                    continue
                if suite == "ablation-penalty" and not algos:
                    if algo not in ("CQL", "SAQ-CQL"):
                        continue
                    runs.append(RunSpec(ds, algo, seed, tag=suite, track_penalty=True,
                                        **{**base, "curve_points": 8}))
                    continue
                runs.append(RunSpec(ds, algo, seed, tag=suite, **base))
    if not runs:
        raise DataError(f"suite {suite!r} with these filters has no runs")
    return runs
