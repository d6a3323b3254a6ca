"""The suites' data: checking it is there, and ``prepare`` (generating it).

Loading is the library's one resolver, :func:`saq_wrappers.app.datasets.load_dataset`.

``prepare`` writes the locomotion datasets from SB3 zoo agents with
:func:`saq_wrappers.app.generate.generate_dataset` (expert: the TQC agent; expert-mean: its
mean actions; medium: the weaker SAC agent; medium-expert: half of each, D4RL's recipe) and
the Lift demos with
:func:`saq_wrappers.integrations.robomimic.generate_lift_demos`. Datasets already there
are kept, so ``prepare`` can be re-run after an interruption (both writers are atomic).
"""

from __future__ import annotations

from pathlib import Path

from saq_wrappers.app.datasets import DatasetSpec
from saq_wrappers.errors import DataError

from .spec import prepare_plan


def check_available(datasets: list[DatasetSpec]) -> list[str]:
    """Messages for the datasets that are missing (empty when all are there)."""
    missing = []
    for ds in datasets:
        try:
            ds.check()
        except DataError as error:
            missing.append(str(error))
    return missing


def zoo_expert(suite: str, dataset: str, zoo: Path) -> Path:
    """The SB3 zoo agent that ``prepare`` generates ``dataset``'s expert episodes with."""
    item = next((i for i in prepare_plan(suite)["minari"] if i["name"] == dataset), None)
    if item is None:
        raise DataError(f"suite {suite!r} generates no locomotion dataset {dataset!r}")
    return zoo / item["model"]


def prepare(suite: str, data_dir: Path, zoo: Path | None, progress: bool = True,
            agent_seed: str = "seed") -> list[str]:
    """Generate the datasets of ``suite`` under ``data_dir`` (skipping those already there).

    Args:
        suite: a suite name (see :data:`~.spec.SUITES`).
        data_dir: output folder (created).
        zoo: folder of SB3 zoo agents laid out as ``<algo>/<Env>-v3/model.zip``; needed for the
            locomotion datasets only.
        progress: progress bars.
        agent_seed: ``"seed"`` (default) or ``"model"``: the zoo agents' sampled actions start
            from the seed stored in their files, the recipe of the ``standard`` suite's first data
            generation (see :func:`~saq_wrappers.app.generate.generate_dataset`); write it into a
            folder of its own, since datasets already there are kept.

    Returns:
        One line per dataset: what was written or kept.
    """
    plan = prepare_plan(suite)
    data_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    root = data_dir / "minari"
    folders = {item["name"]: root / item["dataset_id"] for item in plan["minari"]}
    for item in plan["minari"]:
        folder = folders[item["name"]]
        if (folder / "data" / "metadata.json").is_file():
            lines.append(f"kept {item['name']}: {folder}")
            continue
        if zoo is None:
            raise DataError(f"dataset {item['name']!r} is missing and no --zoo folder of SB3 agents was given")
        model = zoo / item["model"]
        medium = zoo / item["medium_model"] if item["medium_model"] else None
        for path in (model, medium):
            if path is not None and not path.is_file():
                raise DataError(f"SB3 agent {str(path)!r} not found (expected <zoo>/<algo>/<Env>-v3/model.zip)")
        # a dataset sharing another's reference returns (the plan lists that one first)
        ref_min = ref_max = None
        if item["ref_scores_from"]:
            from saq_wrappers.integrations.minari import minari_info

            info = minari_info(folders[item["ref_scores_from"]])
            ref_min, ref_max = info.ref_min_score, info.ref_max_score
        root.mkdir(parents=True, exist_ok=True)
        from saq_wrappers.app.generate import generate_dataset

        generate_dataset(
            str(model), item["env_id"], item["dataset_id"], item["recipe"], n_steps=item["n_steps"],
            n_episodes=item["n_episodes"], medium_model=str(medium) if medium else None,
            seed=0, ref_min_score=ref_min, ref_max_score=ref_max, root=root, progress=progress,
            agent_seed=agent_seed,
        )
        lines.append(f"wrote {item['name']}: {folder}")
    if plan["lift_demos"]:
        path = data_dir / plan["lift_file"]
        if path.is_file():
            lines.append(f"kept {path.stem}: {path}")
        else:
            from saq_wrappers.integrations.robomimic import generate_lift_demos

            stats = generate_lift_demos(path, plan["lift_demos"], seed=0, progress=progress)
            lines.append(f"wrote {path.stem}: {path} ({stats['n_demos']} demos, mean length {stats['mean_length']:.0f})")
    return lines
