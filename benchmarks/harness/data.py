"""Datasets of the harness: loading every kind, and ``prepare`` (generating the suites' data).

Loading reuses the library: the built-in Pendulum expert (:mod:`saq_wrappers.experts`), Minari
ids or folders (:mod:`saq_wrappers.integrations.minari`, reference scores from the metadata),
robomimic hdf5 files (:mod:`saq_wrappers.integrations.robomimic`, scored by success rate, env
rebuilt with robosuite) and D4RL-style hdf5 files (:mod:`saq_wrappers.integrations.d4rl`).

``prepare`` writes the locomotion datasets from SB3 zoo agents with
:func:`saq_wrappers.integrations.generate.generate_dataset` (expert: the TQC agent; medium: the
weaker SAC agent; medium-expert: half of each, D4RL's recipe) and the Lift demos with
:func:`saq_wrappers.integrations.robosuite_demos.generate_lift_demos`. Datasets already there
are kept, so ``prepare`` can be re-run after an interruption (both writers are atomic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy.quickstart import LoadedDataset

from .spec import DatasetSpec, prepare_plan


def load_data(spec: DatasetSpec) -> LoadedDataset:
    """The transitions, an env factory and the reference returns of ``spec``.

    For robomimic data the reference returns are ``None``: the score is the success rate.
    """
    if spec.kind == "builtin":
        if spec.source != "pendulum-expert":
            raise DataError(
                f"dataset {spec.name!r}: the only built-in dataset is 'pendulum-expert', got {spec.source!r}"
            )
        from saq_wrappers.experts import quickstart_dataset

        transitions, meta = quickstart_dataset(n_episodes=spec.episodes, progress=False)
        return LoadedDataset(spec.name, transitions, lambda: gym.make(meta["env_id"]),
                             _ref(spec.ref_min, meta["random_return"]), _ref(spec.ref_max, meta["expert_return"]))
    if spec.kind == "minari":
        from saq_wrappers.integrations.minari import load_minari, minari_info

        info = minari_info(spec.source)
        return LoadedDataset(spec.name, load_minari(spec.source), info.make_env,
                             _ref(spec.ref_min, info.ref_min_score), _ref(spec.ref_max, info.ref_max_score))
    if spec.kind == "robomimic":
        from saq_wrappers.integrations.robomimic import DEFAULT_OBS_KEYS, load_robomimic, make_robomimic_env

        path = _existing(spec)
        transitions = load_robomimic(path, DEFAULT_OBS_KEYS, filter_key=spec.filter_key)
        horizon = spec.horizon

        def make_env() -> gym.Env[Any, Any]:
            return make_robomimic_env(path, DEFAULT_OBS_KEYS, horizon=horizon)

        return LoadedDataset(spec.name, transitions, make_env, None, None)
    if spec.kind == "d4rl":
        from saq_wrappers.integrations.d4rl import load_d4rl_hdf5

        env_id = spec.env_id
        assert env_id is not None  # checked by DatasetSpec
        return LoadedDataset(spec.name, load_d4rl_hdf5(_existing(spec)), lambda: gym.make(env_id),
                             spec.ref_min, spec.ref_max)
    raise DataError(f"dataset {spec.name!r}: unknown kind {spec.kind!r}")


def _ref(override: float | None, stored: float | None) -> float | None:
    return override if override is not None else stored


def _existing(spec: DatasetSpec) -> str:
    if not Path(spec.source).is_file():
        raise DataError(
            f"dataset {spec.name!r}: file {spec.source!r} does not exist (run `python -m benchmarks.run "
            "--prepare ...` to generate the suite's data, or pass --data-dir)"
        )
    return spec.source


def check_available(datasets: list[DatasetSpec]) -> list[str]:
    """Messages for the datasets that are missing (empty when all are there)."""
    missing = []
    for ds in datasets:
        if ds.kind in ("robomimic", "d4rl") and not Path(ds.source).is_file():
            missing.append(f"{ds.name}: {ds.source} (file not found)")
        elif ds.kind == "minari" and Path(ds.source).is_absolute() and not Path(ds.source).exists():
            missing.append(f"{ds.name}: {ds.source} (Minari folder not found)")
    return missing


def prepare(suite: str, data_dir: Path, zoo: Path | None, progress: bool = True) -> list[str]:
    """Generate the datasets of ``suite`` under ``data_dir`` (skipping those already there).

    Args:
        suite: a suite name (see :data:`~.spec.SUITES`).
        data_dir: output folder (created).
        zoo: folder of SB3 zoo agents laid out as ``<algo>/<Env>-v3/model.zip``; needed for the
            locomotion datasets only.
        progress: progress bars.

    Returns:
        One line per dataset: what was written or kept.
    """
    plan = prepare_plan(suite)
    data_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    root = data_dir / "minari"
    for item in plan["minari"]:
        dataset_id = item["dataset_id"]
        folder = root / dataset_id
        if (folder / "data" / "metadata.json").is_file():
            lines.append(f"kept {item['name']}: {folder}")
            continue
        if zoo is None:
            raise DataError(f"dataset {item['name']!r} is missing and no --zoo folder of SB3 agents was given")
        model = zoo / item["model"]
        medium = zoo / item["medium_model"]
        for path in (model,) + ((medium,) if item["recipe"] != "expert" else ()):
            if not path.is_file():
                raise DataError(f"SB3 agent {str(path)!r} not found (expected <zoo>/<algo>/<Env>-v3/model.zip)")
        root.mkdir(parents=True, exist_ok=True)
        from saq_wrappers.integrations.generate import generate_dataset

        generate_dataset(
            str(model), item["env_id"], dataset_id, item["recipe"], n_steps=item["n_steps"],
            medium_model=str(medium) if item["recipe"] != "expert" else None,
            seed=0, root=root, progress=progress,
        )
        lines.append(f"wrote {item['name']}: {folder}")
    if plan["lift_demos"]:
        path = data_dir / f"lift_ph_{plan['lift_demos']}.hdf5"
        if path.is_file():
            lines.append(f"kept lift-ph: {path}")
        else:
            from saq_wrappers.integrations.robosuite_demos import generate_lift_demos

            stats = generate_lift_demos(path, plan["lift_demos"], seed=0, progress=progress)
            lines.append(f"wrote lift-ph: {path} ({stats['n_demos']} demos, mean length {stats['mean_length']:.0f})")
    return lines
