"""Every field of a Minari dataset's metadata that changes what we run is checked when the dataset
is opened: the env spec against the installed registry's (time limit, kwargs, not just the entry
point), the reference scores and the declared sizes as numbers, each refused with the field and
the value named, before any work."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from minari_files import pendulum_dataset, rewrite_metadata

from saq_wrappers import evaluation
from saq_wrappers.app import pipeline
from saq_wrappers.app.cli import main
from saq_wrappers.app.datasets import DatasetSpec, load_dataset
from saq_wrappers.errors import DataError
from saq_wrappers.evaluation import episode_step_limit, evaluate
from saq_wrappers.integrations.minari import load_minari, minari_info, write_minari_dataset

TRUST = r"trust_env_spec=True \(saq: --trust-dataset-env\)"
#: Spec edits that keep Pendulum-v1's registered entry point but change what runs.
REFUSED_SPECS = {
    "no time limit": ({"max_episode_steps": None}, r"max_episode_steps is None.*registered 'Pendulum-v1' has 200"),
    "absurd time limit": ({"max_episode_steps": 10**9}, r"max_episode_steps 1000000000.*from 1 to 100,000"),
    "zero time limit": ({"max_episode_steps": 0}, r"max_episode_steps 0"),
    "fractional time limit": ({"max_episode_steps": 150.5}, r"max_episode_steps 150.5"),
    "boolean time limit": ({"max_episode_steps": True}, r"max_episode_steps True"),
    "other physics": ({"kwargs": {"g": 100.0}}, r"kwargs differ .*'g': 100.0 \(registered: absent\)"),
    "a window": ({"kwargs": {"render_mode": "human"}}, r"'render_mode': 'human' \(registered: absent\)"),
    "kwargs not an object": ({"kwargs": [1]}, r"its kwargs are \[1\], expected a JSON object"),
}


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the pipeline ran although the dataset was bad")


@pytest.mark.parametrize("case", list(REFUSED_SPECS))
def test_a_registered_entry_point_with_other_behaviour_is_refused(case: str, tmp_path: Path) -> None:
    fields, problem = REFUSED_SPECS[case]
    folder = pendulum_dataset(tmp_path)
    rewrite_metadata(folder, fields)
    info = minari_info(folder)
    for refuse in (info.rebuild_spec, info.make_env, lambda: load_dataset(str(folder))):
        with pytest.raises(DataError, match=rf"refusing to rebuild its env.*{problem}.*{TRUST}"):
            refuse()
    assert load_minari(folder).n_episodes == 1  # the data itself stays readable


def test_quickstart_refuses_a_dataset_without_time_limit_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pendulum_dataset(tmp_path)
    rewrite_metadata(folder, {"max_episode_steps": None})
    monkeypatch.setattr(pipeline, "run_experiment", _must_not_run)
    output = tmp_path / "out"
    assert main(["quickstart", "--dataset", str(folder), "--quiet", "--output", str(output)]) == 1
    assert "max_episode_steps is None" in capsys.readouterr().err
    assert not output.exists()


def test_harmless_fields_and_another_time_limit_are_accepted(tmp_path: Path) -> None:
    folder = pendulum_dataset(tmp_path)
    rewrite_metadata(folder, {"max_episode_steps": 500, "reward_threshold": 123.0, "nondeterministic": True,
                              "disable_env_checker": True, "order_enforce": False, "kwargs": {"render_mode": None}})
    env = minari_info(folder).make_env()
    assert env.spec is not None and env.spec.id == "Pendulum-v1"
    assert episode_step_limit(env) == 500
    env.close()


def test_a_trusted_spec_without_time_limit_still_ends_every_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = pendulum_dataset(tmp_path)
    rewrite_metadata(folder, {"max_episode_steps": None})
    env = minari_info(folder, trust_env_spec=True).make_env()
    assert episode_step_limit(env) == evaluation.DEFAULT_MAX_STEPS
    monkeypatch.setattr(evaluation, "DEFAULT_MAX_STEPS", 6)  # Pendulum never ends by itself
    result = evaluate(lambda obs: obs[:, :1] * 0.0, env, n_episodes=1, progress=False)
    assert result.lengths.tolist() == [6]


BAD_METADATA = [
    ("ref_min_score", "abc", r"'ref_min_score' must be a finite number, got 'abc'"),
    ("ref_min_score", math.nan, r"'ref_min_score' must be a finite number, got nan"),
    ("ref_max_score", math.inf, r"'ref_max_score' must be a finite number, got inf"),
    ("ref_max_score", [1.0], r"'ref_max_score' must be a finite number, got \[1.0\]"),
    ("ref_min_score", True, r"'ref_min_score' must be a finite number, got True"),
    ("ref_max_score", -1.0, r"'ref_min_score' and metadata field 'ref_max_score' are equal \(-1\)"),
    ("total_episodes", "abc", r"'total_episodes' must be an integer >= 0, got 'abc'"),
    ("total_episodes", -1, r"'total_episodes' must be an integer >= 0, got -1"),
    ("total_episodes", 10**12, r"'total_episodes' declares 1,000,000,000,000, .*holds only"),
    ("total_steps", 2.5, r"'total_steps' must be an integer >= 0, got 2.5"),
    ("total_steps", -5, r"'total_steps' must be an integer >= 0, got -5"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_METADATA)
def test_bad_metadata_values_are_refused_when_the_dataset_is_opened(
    field: str, value: Any, message: str, tmp_path: Path
) -> None:
    folder = pendulum_dataset(tmp_path, metadata={"ref_min_score": -1.0, "ref_max_score": 0.0})
    rewrite_metadata(folder, **{field: value})
    for read in (minari_info, load_minari, lambda path: load_dataset(str(path))):
        with pytest.raises(DataError, match=rf"saqtest/untrusted-v0.*{message}"):
            read(folder)


def test_reference_scores_are_checked_where_they_enter(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    episode = {"observations": np.zeros((2, 3), np.float32), "actions": np.zeros((1, 1), np.float32),
               "rewards": [0.0], "terminations": [False], "truncations": [True]}
    root = tmp_path / "minari"
    root.mkdir()
    with pytest.raises(DataError, match=r"'ref_max_score' must be a finite number, got nan"):
        write_minari_dataset("saqtest/nan-v0", [episode], env.observation_space, env.action_space,
                             env_spec=env.spec, metadata={"ref_min_score": 0.0, "ref_max_score": math.nan},
                             root=root)
    assert not list(root.rglob("*"))
    for overrides, message in (({"ref_min": math.nan}, "ref_min must be a finite number"),
                               ({"ref_max": "1"}, "ref_max must be a finite number"),
                               ({"ref_min": 5.0, "ref_max": 5.0}, r"'p': ref_min and ref_max are equal \(5\)")):
        with pytest.raises(DataError, match=message):
            DatasetSpec(name="p", kind="d4rl", source="p.hdf5", env_id="Pendulum-v1", **overrides)


DEEP = '{"type": "Tuple", "subspaces": [' * 5000 + '{"type": "Discrete", "n": 2, "start": 0}' + "]}" * 5000
MALFORMED_SPACES = {
    "unknown space type": '{"type": "Pwn"}',
    "a size too large for C": '{"type": "Discrete", "n": 1' + "0" * 30 + ', "start": 0}',
    "nested thousands deep": DEEP,
}


@pytest.mark.parametrize("case", list(MALFORMED_SPACES))
def test_a_malformed_stored_space_gets_the_library_error(case: str, tmp_path: Path) -> None:
    folder = pendulum_dataset(tmp_path)
    rewrite_metadata(folder, observation_space=MALFORMED_SPACES[case])
    for read in (minari_info, load_minari):
        with pytest.raises(DataError, match=r"cannot open Minari dataset at '.*/data'"):
            read(folder)


def test_a_metadata_file_nested_thousands_deep_gets_the_library_error(tmp_path: Path) -> None:
    folder = pendulum_dataset(tmp_path)
    (folder / "data" / "metadata.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"cannot read '.*metadata.json'"):
        minari_info(folder)


@pytest.mark.parametrize("flags", ["terminations", "truncations"])
def test_the_writer_follows_the_one_rule_for_episode_flags(flags: str, tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    episode = {"observations": np.zeros((3, 3), np.float32), "actions": np.zeros((2, 1), np.float32),
               "rewards": [0.0, 0.0], "terminations": [False, False], "truncations": [False, True]}
    episode[flags] = [0.5, 1.0]
    root = tmp_path / "minari"
    root.mkdir()
    with pytest.raises(DataError, match=rf"episode 0: {flags} must hold booleans \(or 0/1 values\), found 0.5"):
        write_minari_dataset("saqtest/flags-v0", [episode], env.observation_space, env.action_space, root=root)
    assert not list(root.rglob("*"))
