"""The suites on the real benchmarks: ``d4rl-adroit``, ``d4rl-locomotion``, ``kitchen`` and ``robomimic``.

For users with the data and the compute (a GPU machine or a Ray cluster: see
:mod:`benchmarks.run` for the cost). Each is a grid of the offline pipeline's
:class:`~saq_wrappers.app.experiment.ExperimentSpec` like the other suites, at the authors'
budgets unless shortened:

* ``d4rl-adroit``: Minari ``D4RL/{pen,door,hammer,relocate}/human-v2``;
* ``d4rl-locomotion``: Minari ``mujoco/{hopper,walker2d,halfcheetah}/{expert,medium}-v0``;
* ``kitchen``: D4RL's ``kitchen-complete-v0`` hdf5 file given with ``--data`` (19 human
  demonstrations), evaluated in FrankaKitchen-v1 observed as D4RL's v0 env
  (:mod:`saq_wrappers.integrations.gymnasium_robotics`), scores ``100 * return / 4``;
* ``robomimic``: the robomimic low-dim hdf5 files given with ``--data`` (e.g. lift/can/square
  PH), success rate over robomimic's horizons.

**Data.** Minari ids resolve through the one resolver, :func:`saq_wrappers.app.datasets.load_dataset`:
``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``) first; nothing is downloaded unless
``--download`` sets :attr:`DatasetSpec.download`, and then :func:`fetch_and_check` downloads each
missing dataset once, in the harness's own process, before the grid starts (pool workers would
otherwise fetch the same dataset side by side into the same folder). The evaluation env is
rebuilt from the dataset's own metadata and scores are normalized with the dataset's
``ref_min_score`` / ``ref_max_score`` (the specs never override them), so a user's download takes
exactly the path the tests take on small datasets written under the same ids.

**Adroit.** The Adroit envs come from gymnasium-robotics, which registers them with Gymnasium
only when imported; the Minari metadata names their entry point, and the resolver rebuilds only
registered envs (:meth:`~saq_wrappers.integrations.minari.MinariInfo.rebuild_spec`). So every
process that runs a grid registers them where ``gymnasium_robotics`` is installed
(:func:`register_installed_robotics_envs`, called by :func:`.runner.init_worker` in the
spawn-pool, serial and Ray workers, and by :func:`fetch_and_check` in the harness).
gymnasium-robotics 1.3.x needs ``mujoco<3.2`` (robosuite 1.5.1 needs ``>=3.3``) and 1.4.x needs
``gymnasium>=1.2`` (d3rlpy 2.8.1 pins 1.0.0), so it lives in a second virtualenv:
:data:`ROBOTICS_INSTALL`; :func:`require_gymnasium_robotics` says so when it is missing.

**Kitchen.** Any copy of the file is accepted (``--data PATH``) if it has the kitchen's layout
(60-D observations, 9-D actions); its SHA-256 only decides what the results say: the official
D4RL file (:data:`KITCHEN_COMPLETE_SHA256`) is named ``kitchen-complete-v0`` and gets the paper's
numbers beside ours, any other file is named after itself and its hash, with no paper numbers.
The env's observation noise (``--kitchen-noise``, default ``dataset``: D4RL's 0.1, what the
demonstrations saw) is part of every run's dataset spec (``env_kwargs``) and named in the dataset
name and results folder when it is not the default; ``--first-episodes 5,10`` trains on the first
demonstrations of the file instead (the narrowest human data).

**Budgets** (:data:`BUDGETS`, the authors' scripts and appendices): every algorithm 1M updates
(SAQ: 1000 epochs x 1000 updates; ARQ: 1M Q-learning updates at batch 512); SAQ's VQ-VAE 500k
updates (500 epochs x 1000), K = 64, 512-512; ARQ's score model 1M updates on locomotion, 300k on
Adroit, 150k on robomimic PH/MH (1M on MG) (ARQ Table A.1), 30 candidates, the 9th largest
(Table A.2), learning rate 3e-4 on locomotion and 1e-4 elsewhere (Table A.2), implicit-policy
alpha 1 / 10 / 0.1 (Table A.3; kitchen: 300k score-model updates and alpha 1, ARQ's own kitchen
column); the registry's network sizes; a learning-curve evaluation every 50 epochs (20 points).
Seeds 0, 1, 2 (the authors' scripts use 24, 42, 43: ``--seeds 24,42,43``).
``budget_scale`` (``--budget-scale``) multiplies every update budget and the number of curve
points; it is part of every run's spec (the step counts are in the fingerprint), so shortened and
full results never mix. As the authors run them: IQL and SAQ-IQL rescale locomotion rewards
(:func:`~benchmarks.harness.spec.with_authors_reward_scaling`) and SAQ-IQL is evaluated by sampling
its code (:func:`~benchmarks.harness.spec.authors_evaluation`). Not reproduced: ARQ's score-model
ensembles (3 on Adroit and robomimic), ARQ's reward rescaling, SAQ-IQL's separate 2000-epoch pi_beta
on Adroit.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from saq_wrappers.app.datasets import DatasetSpec
from saq_wrappers.app.experiment import ARQSettings, EvaluationSettings, QuantizerSettings
from saq_wrappers.errors import DataError
from saq_wrappers.integrations import gymnasium_robotics as robotics
from saq_wrappers.integrations.gymnasium_robotics import (
    DEFAULT_KITCHEN_NOISE,
    KITCHEN_ENV_ID,
    KITCHEN_REF_MAX,
    KITCHEN_REF_MIN,
    ROBOTICS_EXTRA,
    ROBOTICS_INSTALL,
    kitchen_noise_ratios,
)
from saq_wrappers.io import file_sha256

from .spec import MAIN_ALGOS, RunSpec, authors_evaluation, with_authors_reward_scaling

__all__ = [
    "ADROIT_TASKS", "BUDGETS", "KITCHEN_COMPLETE_SHA256", "LOCOMOTION_DATASETS", "REAL_ALGOS", "REAL_SEEDS",
    "REAL_SUITES", "ROBOTICS_EXTRA", "ROBOTICS_INSTALL", "AuthorsBudget", "build_real_suite", "fetch_and_check",
    "kitchen_dataset", "kitchen_provenance", "real_suite_datasets", "register_installed_robotics_envs",
    "require_gymnasium_robotics", "results_name", "robomimic_dataset",
]

#: Suites on the real benchmarks (``python -m benchmarks.run --suite``).
REAL_SUITES = ("d4rl-adroit", "d4rl-locomotion", "kitchen", "robomimic")
#: Adroit tasks of the ``d4rl-adroit`` suite (Minari ``D4RL/<task>/human-v2``).
ADROIT_TASKS = ("pen", "door", "hammer", "relocate")
#: Minari ids of the ``d4rl-locomotion`` suite.
LOCOMOTION_DATASETS = tuple(f"mujoco/{env}/{recipe}-v0" for env in ("hopper", "walker2d", "halfcheetah")
                            for recipe in ("expert", "medium"))
#: Algorithms and seeds of every real suite (``--algos`` / ``--seeds`` change them).
REAL_ALGOS = tuple(MAIN_ALGOS) + ("TD3+BC",)
REAL_SEEDS = (0, 1, 2)

#: SHA-256 of D4RL's ``kitchen-complete-v0`` file (556,544 bytes, D4RL's
#: ``mini_kitchen_microwave_kettle_light_slider-v0.hdf5``): a file with it is reported as the
#: official one, any other as a copy of its own.
KITCHEN_COMPLETE_SHA256 = "cd797c38cd52dfbe3f960cef73935cc724847abd189e47a703a7a2315ed60a81"
#: The kitchen file's widths: the v0 observation (robot 9 | objects 21 | goal 30), joint velocities.
_KITCHEN_OBS, _KITCHEN_ACT = 60, 9

#: robomimic task folder / file-name words of the dataset types (proficient-human, multi-human,
#: machine-generated, paired).
_ROBOMIMIC_TYPES = ("ph", "mh", "mg", "paired")
#: robomimic env name -> the task's short name (robomimic's folder names).
_ROBOMIMIC_TASKS = {"Lift": "lift", "PickPlaceCan": "can", "NutAssemblySquare": "square",
                    "ToolHang": "tool_hang", "TwoArmTransport": "transport"}


# ---------------------------------------------------------------------------------- budgets
@dataclasses.dataclass(frozen=True)
class AuthorsBudget:
    """The authors' training and evaluation budget on one benchmark family.

    Attributes:
        updates: gradient updates of every algorithm (SAQ: 1000 epochs x 1000 updates; ARQ's
            Q-learning: 1M, ARQ Appendix A.2).
        quantizer_updates: SAQ's VQ-VAE (500 epochs x 1000 updates).
        score_updates: ARQ's score model s_psi (ARQ Table A.1).
        arq_learning_rate: ARQ's critic learning rate (ARQ Table A.2).
        arq_alpha: temperature of ARQ's policy, implicit or AWR (ARQ Table A.3).
        eval_episodes: final evaluation episodes.
        curve_points: learning-curve evaluations (every 50 epochs of 1000 updates).
        curve_episodes: episodes per curve evaluation.
    """

    score_updates: int
    arq_learning_rate: float
    arq_alpha: float
    eval_episodes: int
    curve_episodes: int
    updates: int = 1_000_000
    quantizer_updates: int = 500_000
    curve_points: int = 20


#: Per suite. Evaluation: 10 episodes on locomotion (D4RL's usual protocol), 20 trajectories on
#: Adroit (SAQ's Adroit scripts), 50 rollouts on robomimic (robomimic's protocol; 10 per curve
#: point, as robosuite rollouts of 400-700 steps are the slow part there).
BUDGETS: dict[str, AuthorsBudget] = {
    "d4rl-locomotion": AuthorsBudget(score_updates=1_000_000, arq_learning_rate=3e-4, arq_alpha=1.0,
                                     eval_episodes=10, curve_episodes=10),
    "d4rl-adroit": AuthorsBudget(score_updates=300_000, arq_learning_rate=1e-4, arq_alpha=10.0,
                                 eval_episodes=20, curve_episodes=20),
    "robomimic": AuthorsBudget(score_updates=150_000, arq_learning_rate=1e-4, arq_alpha=0.1,
                               eval_episodes=50, curve_episodes=10),
    # ARQ's kitchen column: score model 300k updates (Table A.1), lr 1e-4 (A.2), alpha 1 (A.3);
    # 10 episodes of 280 steps, D4RL's usual protocol (neither paper gives its kitchen count)
    "kitchen": AuthorsBudget(score_updates=300_000, arq_learning_rate=1e-4, arq_alpha=1.0,
                             eval_episodes=10, curve_episodes=10),
}
#: robomimic's machine-generated (MG) datasets: ARQ's score model 1M updates, alpha 1 (Tables A.1, A.3).
_ROBOMIMIC_MG = dataclasses.replace(BUDGETS["robomimic"], score_updates=1_000_000, arq_alpha=1.0)
#: SAQ's K and the authors' VQ-VAE MLPs.
_QUANTIZER_CODES, _QUANTIZER_HIDDEN = 64, (512, 512)
#: ARQ's minibatch (ARQ Appendix A.2); every other algorithm uses 256 (SAQ's and d3rlpy's).
_ARQ_BATCH, _BATCH = 512, 256


def _scaled(updates: int, scale: float) -> int:
    return max(1, math.ceil(updates * scale))


def _check_scale(scale: float) -> None:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise DataError(f"budget scale must be in (0, 1] (1 = the authors' budgets), got {scale!r}")


def results_name(suite: str, budget_scale: float = 1.0, noise: str = DEFAULT_KITCHEN_NOISE,
                 first_episodes: Sequence[int] = ()) -> str:
    """The default results folder name: the suite, with the kitchen's noise setting when not the
    default, its first-episode cuts and the scale when shortened, so such a grid never lands beside
    (and is never refused by) the full one."""
    name = suite + ("" if noise == DEFAULT_KITCHEN_NOISE else f"-noise-{noise}")
    name += "".join(f"-first{n}" for n in first_episodes)
    return name if budget_scale == 1 else f"{name}-x{budget_scale:g}"


# ---------------------------------------------------------------------------------- datasets
def real_suite_datasets(suite: str, data: Sequence[str | Path] = (), download: bool = False,
                        noise: str = DEFAULT_KITCHEN_NOISE, first_episodes: Sequence[int] = ()) -> list[DatasetSpec]:
    """The datasets of a real suite; ``data`` are the robomimic files or the kitchen file
    (``--data``); ``noise`` and ``first_episodes`` are the kitchen's (see :func:`kitchen_dataset`)."""
    if suite not in REAL_SUITES:
        raise DataError(f"unknown real suite {suite!r}: expected one of {', '.join(REAL_SUITES)}")
    if suite not in ("robomimic", "kitchen") and data:
        raise DataError(f"--data is for --suite robomimic (robomimic hdf5 files) and --suite kitchen (the D4RL "
                        f"kitchen file); suite {suite!r} reads Minari datasets by id")
    if suite != "kitchen" and (noise != DEFAULT_KITCHEN_NOISE or first_episodes):
        raise DataError(f"the kitchen noise and --first-episodes are for --suite kitchen, not {suite!r}")
    if suite == "kitchen":
        if len(data) != 1:
            raise DataError("suite 'kitchen' trains on D4RL's kitchen-complete-v0 hdf5 file: pass one file with "
                            f"--data PATH, got {len(data)}")
        return [kitchen_dataset(data[0], noise, n) for n in first_episodes or [None]]
    if suite == "d4rl-adroit":
        return [_minari(f"D4RL/{task}/human-v2", paper_key=f"{task}-human-v0", download=download)
                for task in ADROIT_TASKS]
    if suite == "d4rl-locomotion":
        specs = []
        for dataset_id in LOCOMOTION_DATASETS:
            _, env, version = dataset_id.split("/")
            specs.append(_minari(dataset_id, paper_key=f"{env}-{version.rsplit('-', 1)[0]}-v2", download=download))
        return specs
    if not data:
        raise DataError("suite 'robomimic' trains on real robomimic low-dim hdf5 files: pass them with --data "
                        "PATH [PATH ...], e.g. --data lift/ph/low_dim_v141.hdf5 can/ph/low_dim_v141.hdf5 "
                        "square/ph/low_dim_v141.hdf5 (robomimic's download layout)")
    specs = [robomimic_dataset(path) for path in data]
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"--data names the same dataset twice ({', '.join(twice)}): give each task/type once")
    return specs


def _minari(dataset_id: str, paper_key: str, download: bool) -> DatasetSpec:
    """A Minari dataset by id, named as ``DatasetSpec.parse`` names a bare id (never one of the
    generated suites' names, so artifacts of the two never share a key). The paper key is the
    D4RL dataset the Minari one stands in for; no reference scores are set, so the dataset's own
    are used."""
    name = dataset_id.replace("/", "-")
    return DatasetSpec(name=name, kind="minari", source=dataset_id, paper_key=paper_key, download=download)


def robomimic_dataset(path: str | Path) -> DatasetSpec:
    """A robomimic low-dim file as a dataset: task and horizon from its ``env_args`` (robomimic's
    400 steps for Lift, Can, Square and 700 for ToolHang, not a guess from the file name, since
    robomimic names every file ``low_dim*.hdf5``), the dataset type from its folder or file name,
    the ``train`` split when the file has one.

    Raises:
        DataError: a missing or unreadable file, no ``env_args``, an env robomimic has no horizon
            for, TwoArmTransport (its second arm's observations are not read), or observation
            keys the file lacks.
    """
    import h5py

    from saq_wrappers.integrations.robomimic import DEFAULT_HORIZONS, DEFAULT_OBS_KEYS, read_env_args, robomimic_layout

    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"robomimic file {str(file)!r} does not exist (expected a robomimic low-dim .hdf5 file)")
    env_name = read_env_args(file).get("env_name")
    if env_name == "TwoArmTransport":
        raise DataError(f"{file}: TwoArmTransport needs the second arm's observations (robot1_*), and the dataset "
                        f"resolver reads the single-arm keys {DEFAULT_OBS_KEYS}: not supported by this suite")
    if env_name not in DEFAULT_HORIZONS or env_name not in _ROBOMIMIC_TASKS:
        raise DataError(f"{file}: env_args names env {env_name!r}, for which robomimic has no evaluation horizon "
                        f"(expected one of {', '.join(sorted(set(DEFAULT_HORIZONS) & set(_ROBOMIMIC_TASKS)))})")
    try:
        with h5py.File(file, "r") as handle:
            filter_key = "train" if "mask/train" in handle else None
    except OSError as error:
        raise DataError(f"{file}: not a readable hdf5 file ({error})") from error
    robomimic_layout(file, DEFAULT_OBS_KEYS, filter_key)  # the keys are there, before any run starts
    task = _ROBOMIMIC_TASKS[env_name]
    words = re.split(r"[^a-z0-9]+", f"{file.parent.name} {file.stem}".lower())
    kind = next((word for word in words if word in _ROBOMIMIC_TYPES), None)
    suffix = kind or re.sub(r"[^A-Za-z0-9_.+-]+", "-", file.stem).strip("-")
    return DatasetSpec(name=f"robomimic-{task}-{suffix}", kind="robomimic", source=str(file),
                       paper_key=f"robomimic-{task}-{kind}" if kind else None,
                       horizon=DEFAULT_HORIZONS[env_name], filter_key=filter_key)


def kitchen_dataset(path: str | Path, noise: str = DEFAULT_KITCHEN_NOISE,
                    first_episodes: Optional[int] = None) -> DatasetSpec:
    """D4RL's kitchen file as a dataset, evaluated in ``saq_wrappers/KitchenComplete-v0``.

    Named ``kitchen-complete-v0`` (with the paper's key) when its SHA-256 is the official file's,
    else ``kitchen-<file>-<hash>`` (no paper numbers: another file); ``-first<N>`` and
    ``-noise-<setting>`` are added for a first-episodes cut and a noise other than the default.
    Reference returns 0 and 4 (D4RL's), so the normalized score is D4RL's ``100 * return / 4``.

    Raises:
        DataError: a missing file, one the D4RL reader refuses, one without the kitchen's widths
            (60-D observations, 9-D actions), fewer episodes than ``first_episodes``, or an
            unknown ``noise``.
    """
    from saq_wrappers.integrations.d4rl import load_d4rl_hdf5

    kitchen_noise_ratios(noise)
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"kitchen file {str(file)!r} does not exist (expected D4RL's kitchen-complete-v0.hdf5)")
    data = load_d4rl_hdf5(file)  # the reader's checks: an hdf5 file in the D4RL layout
    if data.observations.shape[1:] != (_KITCHEN_OBS,) or data.actions.shape[1:] != (_KITCHEN_ACT,):
        raise DataError(f"{file}: not D4RL's kitchen file: expected {_KITCHEN_OBS}-D observations (robot 9, objects "
                        f"21, goal 30) and {_KITCHEN_ACT}-D actions, got observations {data.observations.shape[1:]} "
                        f"and actions {data.actions.shape[1:]}")
    if first_episodes is not None and first_episodes > data.n_episodes:
        raise DataError(f"{file}: --first-episodes {first_episodes}, but the file holds {data.n_episodes} episodes")
    digest = file_sha256(file)
    official = digest == KITCHEN_COMPLETE_SHA256
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "-", file.stem).strip("-").removeprefix("kitchen-")
    name = "kitchen-complete-v0" if official else f"kitchen-{stem or 'file'}-{digest[:8]}"
    name += (f"-first{first_episodes}" if first_episodes is not None else "") + (
        "" if noise == DEFAULT_KITCHEN_NOISE else f"-noise-{noise}")
    return DatasetSpec(name=name, kind="d4rl", source=str(file), env_id=KITCHEN_ENV_ID, env_kwargs={"noise": noise},
                       ref_min=KITCHEN_REF_MIN, ref_max=KITCHEN_REF_MAX, first_episodes=first_episodes,
                       paper_key="kitchen-complete-v0" if official and first_episodes is None else None)


def kitchen_provenance(dataset: DatasetSpec) -> str:
    """Whether ``dataset``'s file is D4RL's official ``kitchen-complete-v0``, in words (a file that
    cannot be read says so; :meth:`DatasetSpec.check` refuses it before any run)."""
    try:
        digest = file_sha256(dataset.source)
    except OSError as error:
        return f"file not readable ({error.strerror or error})"
    if digest == KITCHEN_COMPLETE_SHA256:
        return "the official D4RL kitchen-complete-v0 file"
    return (f"not the official D4RL file (SHA-256 {digest[:16]}..., the official one is "
            f"{KITCHEN_COMPLETE_SHA256[:16]}...)")


# ---------------------------------------------------------------------------------- suites
def _budget(suite: str, dataset: DatasetSpec) -> AuthorsBudget:
    if suite == "robomimic" and dataset.name.endswith("-mg"):
        return _ROBOMIMIC_MG
    return BUDGETS[suite]


def build_real_suite(
    suite: str,
    data: Sequence[str | Path] = (),
    seeds: Optional[list[int]] = None,
    algos: Optional[list[str]] = None,
    datasets: Optional[list[DatasetSpec]] = None,
    steps: Optional[int] = None,
    time_budget: Optional[float] = None,
    eval_episodes: Optional[int] = None,
    budget_scale: float = 1.0,
    download: bool = False,
    noise: str = DEFAULT_KITCHEN_NOISE,
    first_episodes: Sequence[int] = (),
    quantizer_steps: Optional[int] = None,
    score_steps: Optional[int] = None,
    curve_points: Optional[int] = None,
) -> list[RunSpec]:
    """The runs of a real suite at the authors' budgets times ``budget_scale``.

    Args:
        suite: one of :data:`REAL_SUITES`.
        data: robomimic files (``robomimic``) or the kitchen file (``kitchen``); required there
            unless ``datasets`` is given.
        seeds, algos: default :data:`REAL_SEEDS`, :data:`REAL_ALGOS`.
        datasets: replace the suite's datasets (budgets stay the suite's).
        steps: override every algorithm's updates (the VQ-VAE and score model keep theirs).
        time_budget: wall-clock cap per run's training, seconds.
        eval_episodes: override the final evaluation episodes.
        budget_scale: in (0, 1]; multiplies the algorithm, VQ-VAE and score-model updates and the
            number of learning-curve points (at least one of each).
        download: let the resolver download Minari datasets that are not local.
        noise, first_episodes: the kitchen's observation noise and first-episode cuts
            (:func:`kitchen_dataset`).
        quantizer_steps, score_steps, curve_points: override the VQ-VAE's updates, ARQ's
            score-model updates and the number of learning-curve points (for measuring where a
            dataset's learning curves level off without the authors' budgets).
    """
    _check_scale(budget_scale)
    if datasets:
        sets = [dataclasses.replace(ds, download=download) if ds.kind == "minari" else ds for ds in datasets]
    else:
        sets = real_suite_datasets(suite, data, download, noise, first_episodes)
    chosen_algos = algos if algos else list(REAL_ALGOS)
    chosen_seeds = seeds if seeds else list(REAL_SEEDS)
    tag = suite if budget_scale == 1 else f"{suite} (budgets x{budget_scale:g})"
    runs: list[RunSpec] = []
    for ds in sets:
        budget = _budget(suite, ds)
        ds_tag = f"{tag}; {kitchen_provenance(ds)}" if ds.env_id == KITCHEN_ENV_ID else tag
        updates = steps if steps is not None else _scaled(budget.updates, budget_scale)
        points = curve_points if curve_points is not None else max(1, round(budget.curve_points * budget_scale))
        evaluation = EvaluationSettings(
            episodes=eval_episodes if eval_episodes is not None else budget.eval_episodes,
            curve_points=points, curve_episodes=budget.curve_episodes,
        )
        vqvae_steps = quantizer_steps if quantizer_steps is not None else _scaled(budget.quantizer_updates, budget_scale)
        quantizer = QuantizerSettings(n_codes=_QUANTIZER_CODES, hidden=_QUANTIZER_HIDDEN, steps=vqvae_steps)
        # ARQ acts with its AWR policy, as the paper reports it on D4RL locomotion and Adroit
        score = score_steps if score_steps is not None else _scaled(budget.score_updates, budget_scale)
        arq = ARQSettings(n_samples=30, kth=9, fit_steps=score,
                          alpha=budget.arq_alpha, learning_rate=budget.arq_learning_rate, policy="awr")
        for algo in chosen_algos:
            for seed in chosen_seeds:
                runs.append(with_authors_reward_scaling(RunSpec(
                    ds, algo, seed, steps=updates, time_budget=time_budget, hidden=None,
                    batch_size=_ARQ_BATCH if algo == "ARQ" else _BATCH, quantizer=quantizer,
                    arq=arq, evaluation=authors_evaluation(algo, evaluation), tag=ds_tag)))
    if not runs:
        raise DataError(f"suite {suite!r} with these filters has no runs")
    return runs


# ---------------------------------------------------------------------------------- before a grid
def require_gymnasium_robotics(what: str = "the d4rl-adroit suite", suite: str = "d4rl-adroit") -> None:
    """Import ``gymnasium_robotics`` (registering its envs), or say exactly what to install and
    how to run ``suite`` then
    (:func:`saq_wrappers.integrations.gymnasium_robotics.require_gymnasium_robotics`).

    Raises:
        DataError: gymnasium-robotics is not importable; the message has the install line.
    """
    robotics.require_gymnasium_robotics(what, command=f"python -m benchmarks.run --suite {suite}")


def register_installed_robotics_envs() -> None:
    """Register gymnasium-robotics' envs in this process when the package is installed (the
    second virtualenv); without it nothing happens, and an installed but broken one is reported,
    with the install line, by :func:`require_gymnasium_robotics` when a suite needs it."""
    try:
        if importlib.util.find_spec("gymnasium_robotics") is None:
            return
        importlib.import_module("gymnasium_robotics")
    except Exception:  # noqa: BLE001 - see the docstring: reported where it matters
        return


def _names_robotics(entry_point: Any) -> bool:
    return isinstance(entry_point, str) and entry_point.split(".", 1)[0].split(":", 1)[0] == "gymnasium_robotics"


def fetch_and_check(datasets: Sequence[DatasetSpec]) -> list[str]:
    """Ready a real suite's datasets before its grid, in this process; one line per dataset.

    Minari datasets: downloaded when missing and ``download`` is set (once, here); then their
    metadata is read, the evaluation env rebuilt once (gymnasium-robotics imported first when the
    env is one of its own: a missing package is named with its install line before any training)
    and the reference scores required. robomimic files: robosuite must be importable. The kitchen
    file: gymnasium-robotics must be importable, the env is made once, and the line says whether
    the file is the official one and which noise the env has. A dataset that is missing and may
    not be downloaded is skipped: :func:`.data.check_available` names it.

    Raises:
        DataError: a download that failed, an env that cannot be rebuilt (with what to install),
            a Minari dataset without reference scores.
    """
    from saq_wrappers.integrations.minari import is_dataset_path, local_dataset_path, minari_info, open_minari

    lines: list[str] = []
    for ds in datasets:
        try:
            ds.check()
        except DataError:
            continue
        if ds.kind == "robomimic":
            if importlib.util.find_spec("robosuite") is None:
                raise DataError(f"dataset {ds.name!r}: robomimic envs are rebuilt with robosuite 1.5.1, which is not "
                                "installed: pip install -e \".[robosuite]\" -c constraints.txt")
            lines.append(f"found {ds.name}: {ds.source} (horizon {ds.horizon}, filter key {ds.filter_key})")
            continue
        if ds.env_id == KITCHEN_ENV_ID:
            import gymnasium as gym

            require_gymnasium_robotics(f"dataset {ds.name!r} (env {ds.env_id})", suite="kitchen")
            gym.make(ds.env_id, **dict(ds.env_kwargs)).close()
            noise = dict(ds.env_kwargs).get("noise", DEFAULT_KITCHEN_NOISE)
            robot, obj = kitchen_noise_ratios(noise)
            lines.append(f"found {ds.name}: {ds.source} ({kitchen_provenance(ds)}; env {ds.env_id}, observation "
                         f"noise {noise!r} (robot {robot:g}, objects {obj:g}), reference returns "
                         f"{ds.ref_min:g} / {ds.ref_max:g})")
            continue
        if ds.kind != "minari":
            continue
        fetched = False
        if not is_dataset_path(ds.source) and local_dataset_path(ds.source) is None:
            open_minari(ds.source, download=True)  # check() passed: download is set
            fetched = True
        info = minari_info(ds.source, trust_env_spec=ds.trust_env_spec)
        spec = info.eval_env_spec or info.env_spec
        if spec is not None and _names_robotics(spec.entry_point):
            require_gymnasium_robotics(f"dataset {ds.name!r} (env {spec.id})")
        info.make_env().close()
        if info.ref_min_score is None or info.ref_max_score is None:
            raise DataError(f"Minari dataset {info.dataset_id!r} stores no ref_min_score / ref_max_score in its "
                            "metadata: expected both, the real suites report normalized scores")
        lines.append(f"{'downloaded' if fetched else 'found'} {ds.name}: {info.data_path} (env "
                     f"{spec.id if spec is not None else None}, reference returns {info.ref_min_score:g} / "
                     f"{info.ref_max_score:g})")
    return lines
