"""The one dataset resolver: every kind parsed, inferred from a bare path, and checked before work."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from saq_wrappers.app.datasets import DatasetSpec, load_dataset
from saq_wrappers.errors import DataError
from d4rl_files import d4rl_file


def _robomimic_file(path: Path) -> Path:
    with h5py.File(path, "w") as handle:
        handle.create_group("data").create_group("demo_0")
    return path


def test_explicit_and_bare_forms_resolve_to_the_right_kind(tmp_path: Path) -> None:
    lift = _robomimic_file(tmp_path / "lift_ph.hdf5")
    hopper = d4rl_file(tmp_path / "hopper.hdf5")
    assert DatasetSpec.parse("builtin:pendulum-expert").kind == "builtin"
    assert DatasetSpec.parse(str(lift)).kind == "robomimic"  # a `data` group of demos
    bare = DatasetSpec.parse(f"{hopper}@Pendulum-v1")
    assert (bare.kind, bare.env_id, bare.name) == ("d4rl", "Pendulum-v1", "hopper")
    assert DatasetSpec.parse("mujoco/hopper/expert-v0").kind == "minari"
    named = DatasetSpec.parse("hop=minari:mujoco/hopper/expert-v0")
    assert (named.name, named.kind, named.source) == ("hop", "minari", "mujoco/hopper/expert-v0")
    with pytest.raises(DataError, match="needs its env id"):
        DatasetSpec.parse(str(hopper))  # a D4RL-style file without its env


def test_a_d4rl_file_loads_with_its_env(tmp_path: Path) -> None:
    data = load_dataset(f"{d4rl_file(tmp_path / 'pend.hdf5')}@Pendulum-v1")
    assert len(data.transitions) == 18 and data.transitions.n_episodes == 2  # the timeout rows pair up
    env = data.make_env()
    assert env.observation_space.shape == (3,)
    env.close()


@pytest.mark.parametrize(
    "text, message",
    [
        ("robomimic:{tmp}/none.hdf5", "does not exist"),
        ("robomimic:{tmp}", "is a folder"),
        ("minari:{tmp}/no-folder", "does not exist"),
        ("nobody/nothing-v0", "minari download nobody/nothing-v0"),
        ("builtin:nothing", "unknown built-in"),
    ],
)
def test_check_fails_fast_naming_what_is_missing(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=message):
        DatasetSpec.parse(text.format(tmp=tmp_path)).check()
