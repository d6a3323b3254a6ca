"""Dataset files are untrusted input: a Minari folder cannot make us run the code its metadata
names, a damaged episode file or a missing folder gets an error naming it, and ``saq quickstart``
refuses all of them before any work, leaving nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from minari_files import pendulum_dataset, rewrite_metadata

from saq_wrappers.app import pipeline
from saq_wrappers.app import quickstart as quickstart_module
from saq_wrappers.app.cli import main
from saq_wrappers.app.datasets import DatasetSpec, load_dataset
from saq_wrappers.errors import DataError
from saq_wrappers.integrations.minari import load_minari, minari_info, open_minari

#: A small quickstart that would run in seconds if the dataset were accepted.
TINY = ["--steps", "1", "--quantizer-steps", "1", "--eval-episodes", "1", "--n-codes", "2", "--quiet"]
#: Another env's entry point: harmless, but not what the registry has for Pendulum-v1.
MOUNTAIN_CAR = "gymnasium.envs.classic_control.continuous_mountain_car:Continuous_MountainCarEnv"


def _shell(marker: Path) -> dict[str, Any]:
    """``subprocess.call`` kwargs that create ``marker`` if anything ever calls them."""
    return {"args": f"touch {marker}", "shell": True}


def _malicious_specs(marker: Path) -> dict[str, dict[str, Any]]:
    pendulum = gym.registry["Pendulum-v1"].entry_point
    return {
        "entry point": {"entry_point": "subprocess:call", "kwargs": _shell(marker)},
        "unregistered id": {"id": "Pwn-v0", "entry_point": "subprocess:call", "kwargs": _shell(marker)},
        "vector entry point": {"vector_entry_point": "subprocess:call"},
        "entry point in kwargs": {"entry_point": pendulum, "kwargs": {"entry_point": "subprocess:call"}},
        "wrapper": {"additional_wrappers": [{"name": "Pwn", "entry_point": "subprocess:call",
                                             "kwargs": _shell(marker)}]},
    }


@pytest.mark.parametrize("case", ["entry point", "unregistered id", "vector entry point", "entry point in kwargs",
                                  "wrapper"])
def test_an_env_spec_naming_other_code_is_refused_and_never_run(case: str, tmp_path: Path) -> None:
    folder = pendulum_dataset(tmp_path)
    marker = tmp_path / "MARKER"
    rewrite_metadata(folder, _malicious_specs(marker)[case])
    info = minari_info(folder)  # reading the metadata runs nothing
    with pytest.raises(DataError, match=r"refusing to rebuild its env.*entry point '[^']+'.*trust_env_spec=True "
                                        r"\(saq: --trust-dataset-env\)") as error:
        info.make_env()
    assert "subprocess:call" in str(error.value)
    with pytest.raises(DataError, match="refusing to rebuild its env"):
        load_dataset(str(folder))  # the resolver refuses before reading the episodes
    assert load_minari(folder).n_episodes == 1  # the data itself stays readable
    assert not marker.exists()


def test_quickstart_refuses_the_dataset_env_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pendulum_dataset(tmp_path)
    marker = tmp_path / "MARKER"
    rewrite_metadata(folder, {"entry_point": "subprocess:call", "kwargs": _shell(marker)})
    monkeypatch.setattr(pipeline, "run_experiment", _must_not_run)
    output = tmp_path / "out"
    assert main(["quickstart", "--dataset", str(folder), *TINY, "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert "'subprocess:call'" in err and "--trust-dataset-env" in err
    assert not marker.exists() and not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["minari"]  # no staging folder either


def test_a_dataset_without_stored_spaces_is_refused_before_minari_builds_its_env(tmp_path: Path) -> None:
    """Minari 0.5.4 calls gym.make(env_spec) on opening a dataset whose metadata lacks a space."""
    folder = pendulum_dataset(tmp_path)
    marker = tmp_path / "MARKER"
    rewrite_metadata(folder, {"entry_point": "subprocess:call", "kwargs": _shell(marker)},
                      drop=("observation_space",))
    for read in (minari_info, load_minari):
        with pytest.raises(DataError, match=r"metadata.json' stores no observation_space"):
            read(folder)
    assert not marker.exists()


def test_a_registered_env_rebuilds_and_other_code_needs_an_explicit_opt_in(tmp_path: Path) -> None:
    folder = pendulum_dataset(tmp_path)
    for env in (minari_info(folder).make_env(), load_dataset(str(folder)).make_env()):
        assert env.spec is not None and env.spec.id == "Pendulum-v1"
        env.close()

    rewrite_metadata(folder, {"entry_point": MOUNTAIN_CAR})
    with pytest.raises(DataError, match=f"names entry point '{MOUNTAIN_CAR}'"):
        minari_info(folder).make_env()
    trusted = DatasetSpec(name="pendulum", kind="minari", source=str(folder), trust_env_spec=True)
    for env in (minari_info(folder).make_env(trust_env_spec=True),
                minari_info(folder, trust_env_spec=True).make_env(),
                load_dataset(trusted).make_env()):
        assert type(env.unwrapped).__name__ == "Continuous_MountainCarEnv"
        env.close()


def test_the_trust_flag_reaches_the_dataset_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[quickstart_module.QuickstartConfig] = []
    monkeypatch.setattr(quickstart_module, "run_quickstart", lambda config: seen.append(config))
    for flags, trusted in (([], False), (["--trust-dataset-env"], True)):
        assert main(["quickstart", *flags]) == 0
        assert seen[-1].trust_env_spec is trusted
        assert seen[-1].experiments()[0].dataset.trust_env_spec is trusted


def _damage(file: Path, how: str) -> None:
    data = file.read_bytes()
    file.write_bytes({"truncated": data[: len(data) // 2], "empty": b"",
                      "random": np.random.default_rng(0).bytes(len(data))}[how])


@pytest.mark.parametrize("how", ["truncated", "empty", "random"])
def test_a_damaged_episode_file_is_named(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pendulum_dataset(tmp_path)
    file = folder / "data" / "main_data.hdf5"
    _damage(file, how)
    with pytest.raises(DataError, match=f"{file}: cannot read the episodes of Minari dataset"):
        load_minari(folder)
    monkeypatch.setattr(pipeline, "run_experiment", _must_not_run)
    output = tmp_path / "out"
    assert main(["quickstart", "--dataset", str(folder), *TINY, "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("saq quickstart: error: ") and str(file) in err
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["minari"]


def test_a_missing_folder_is_not_told_to_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for path in ("./data/hopper", str(tmp_path / "x" / "y"), "data/hopper", "~/no-such-saq-folder/y"):
        for read in (open_minari, load_minari):
            with pytest.raises(DataError, match=f"Minari dataset folder '{path}' does not exist") as error:
                read(path)
            assert "download" not in str(error.value)
        for download in (False, True):
            spec = DatasetSpec(name="d", kind="minari", source=path, download=download)
            with pytest.raises(DataError, match=f"folder '{path}' does not exist") as error:
                spec.check()
            assert "download" not in str(error.value)
    assert main(["quickstart", "--dataset", "./data/hopper", *TINY]) == 1
    err = capsys.readouterr().err
    assert "folder './data/hopper' does not exist" in err and "download" not in err
    assert not list(tmp_path.iterdir())
    with pytest.raises(DataError, match="minari download saqtest/not-here-v0"):
        open_minari("saqtest/not-here-v0")  # an id is still told how to download it


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the pipeline ran although the input was bad")


def test_the_marker_command_really_runs_when_called(tmp_path: Path) -> None:
    """The refusals above prove something only if the stored spec would run the command."""
    marker = tmp_path / "MARKER"
    subprocess.call(**_shell(marker))
    assert marker.exists()
