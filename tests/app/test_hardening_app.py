"""Hardening of the application layer (issue 38): no finished run loses its work, a stopped run
leaves nothing, every number from a flag is bounded, a broken cache is rebuilt, and a dataset
path or env id that cannot work is refused for what it is, before any work."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from saq_wrappers.app import pipeline
from saq_wrappers.app.cli import main
from saq_wrappers.app.datasets import DatasetSpec
from saq_wrappers.app.experiment import ARQSettings, EvaluationSettings, ExperimentSpec, QuantizerSettings
from saq_wrappers.app.outputs import run_folder
from saq_wrappers.app.quickstart import QuickstartConfig
from saq_wrappers.errors import DataError, OutputPathError
from saq_wrappers.validation import MAX_SEED
from d4rl_files import d4rl_file

SMALL = ["--steps", "12", "--quantizer-steps", "50", "--eval-episodes", "2", "--n-codes", "4", "--quiet"]


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("work started although the input was bad")


# --------------------------------------------------------------------------- output folders
def test_a_symlink_to_an_empty_folder_receives_the_results(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty")
    with run_folder(link) as staging:
        (staging / "results.json").write_text("{}")
    assert link.is_symlink() and (link / "results.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "link"]


def test_a_broken_symlink_is_refused_at_once(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(OutputPathError, match="broken symbolic link"):
        with run_folder(link):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["link"]


@pytest.mark.parametrize("given", [".", "new/..", "new/../../work"])
def test_the_current_folder_is_refused_before_any_work(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(pipeline, "run_experiment", _must_not_run)
    monkeypatch.setattr("saq_wrappers.app.datasets.load_dataset", _must_not_run)
    assert main(["quickstart", *SMALL, "--output", given]) == 1
    err = capsys.readouterr().err
    assert "is the current folder" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("new")) and not list(work.iterdir())


def test_a_second_run_into_the_same_folder_is_refused_at_once(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with run_folder(target) as first:
        with pytest.raises(OutputPathError, match="another run is writing"):
            with run_folder(target):
                pytest.fail("a second run entered a folder a running run had reserved")
        with pytest.raises(OutputPathError, match="another run is writing"):
            with run_folder(tmp_path / "." / "run"):  # the same folder, spelled otherwise
                pytest.fail("a second run entered a folder a running run had reserved")
        (first / "results.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in target.iterdir()] == ["results.json"]


def test_a_finished_run_that_cannot_take_its_name_keeps_its_results_and_says_where(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with pytest.raises(OutputPathError) as error:
        with run_folder(target) as staging:
            (staging / "results.json").write_text("{}")
            target.mkdir()  # meanwhile, something else wrote there
            (target / "other.json").write_text("{}")
    kept = [p for p in tmp_path.iterdir() if p.name != "run"]
    assert len(kept) == 1 and not kept[0].name.startswith(".")
    assert [p.name for p in kept[0].iterdir()] == ["results.json"]
    assert str(kept[0]) in str(error.value) and "kept" in str(error.value)
    assert [p.name for p in target.iterdir()] == ["other.json"]


def test_a_long_valid_folder_name_is_accepted(tmp_path: Path) -> None:
    target = tmp_path / ("r" * 250)
    with run_folder(target) as staging:
        (staging / "x").write_text("")
    assert (target / "x").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


# --------------------------------------------------------------------------- SIGTERM
def test_sigterm_removes_the_staging_folder_and_exits_143(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "saq_wrappers.app.cli", "quickstart", "--time-budget", "600",
               "--quantizer-steps", "50", "--eval-episodes", "1", "--n-codes", "4", "--quiet",
               "--output", str(tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".run.incomplete-*")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never made its staging folder"
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == "saq quickstart: terminated"
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- numbers from flags
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--time-budget", "inf"], "time budget must be a finite number"),
        (["--time-budget", "nan"], "time budget must be a finite number"),
        (["--time-budget", "-1"], "time budget must be a finite number > 0"),
        (["--time-budget", "1e12"], "time budget must be a finite number > 0 and <= "),
        (["--steps", "0"], "steps must be an integer >= 1"),
        (["--steps", str(10**12)], "steps must be an integer >= 1 and <= "),
        (["--quantizer-steps", str(10**12)], "quantizer steps must be an integer >= 1 and <= "),
        (["--eval-episodes", "0"], "eval episodes must be an integer >= 1"),
        (["--eval-episodes", str(10**9)], "eval episodes must be an integer >= 1 and <= "),
        (["--n-codes", str(10**7)], "n_codes (K) must be an integer >= 2 and <= 65,536"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--seed", str(2**32)], f"seed must be an integer >= 0 and <= {MAX_SEED:,}"),
    ],
)
def test_quickstart_numbers_are_bounded_before_any_work(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "run_experiment", _must_not_run)
    monkeypatch.setattr("saq_wrappers.app.datasets.load_dataset", _must_not_run)
    steps = ["--time-budget", "5"] if argv[0] == "--time-budget" else []
    small = [a for a in SMALL if a not in ("--steps", "12")] if steps else SMALL
    assert main(["quickstart", *small, *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_spec_numbers_follow_one_rule() -> None:
    data = DatasetSpec(name="pendulum-expert", kind="builtin", source="pendulum-expert", episodes=3)
    for bad in (2.9, True, -1, MAX_SEED + 1):
        with pytest.raises(DataError, match="seed"):
            ExperimentSpec(data, "SAQ-CQL", seed=bad)
        with pytest.raises(DataError, match="seed"):
            QuickstartConfig(seed=bad).experiments()
    for field, bad in (("fit_lr", float("nan")), ("fit_lr", 0.0), ("alpha", float("inf")),
                       ("learning_rate", -1.0), ("n_samples", 2.5), ("fit_steps", 10**12)):
        with pytest.raises(DataError, match=field.replace("_", " ") if field != "fit_lr" else "fit lr"):
            ARQSettings(**{field: bad})
    with pytest.raises(DataError, match="eval episodes"):
        EvaluationSettings(episodes=2.5)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="quantizer steps"):
        QuantizerSettings(steps=3.0)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="alpha"):
        ExperimentSpec(data, "SAQ-CQL", options=(("alpha", float("nan")),))
    with pytest.raises(DataError, match="ref_min"):
        DatasetSpec(name="x", kind="builtin", source="pendulum-expert", ref_min=float("nan"))
    with pytest.raises(DataError, match="episodes"):
        DatasetSpec(name="x", kind="builtin", source="pendulum-expert", episodes=10**9)
    with pytest.raises(DataError, match="time budget"):
        ExperimentSpec(data, "CQL", steps=None, time_budget=float("inf"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cql-alpha", "nan"], "cql_alpha must be a finite number >= 0"),
        (["--cql-alpha", "-1"], "cql_alpha must be a finite number >= 0"),
        (["--conservative-alpha", "inf"], "conservative_alpha must be a finite number >= 0"),
        (["--noise-std", "nan"], "noise_std must be a finite number >= 0"),
        (["--online-steps", str(10**12)], "online_steps must be an integer >= 1 and <= "),
        (["--dataset-steps", str(10**12)], "dataset_steps must be an integer >= 1 and <= "),
        (["--eval-every", "0"], "eval_every must be an integer >= 1"),
        (["--seed", "-3"], "seed must be an integer >= 0"),
        (["--name", "../escape"], "name '../escape'"),
        (["--arms", "scratch,scratch"], "arms"),
    ],
)
def test_finetune_options_are_checked_before_any_work(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from saq_wrappers.app import finetune

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(finetune, "load_dataset", _must_not_run)
    monkeypatch.setattr(finetune, "run_experiment", _must_not_run)
    assert main(["finetune", "--quick", "--quiet", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_generate_numbers_are_checked_before_any_rollout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from saq_wrappers.app import generate

    monkeypatch.setattr(generate, "rollout", _must_not_run)
    monkeypatch.setattr(generate, "mean_return", _must_not_run)
    common = dict(recipe="random", ref_max_score=1.0, root=tmp_path, progress=False)
    for kwargs, message in ((dict(n_steps=10**12), "n_steps"), (dict(n_steps=0), "n_steps"),
                            (dict(n_episodes=-1), "n_episodes"), (dict(n_steps=10, seed=-1), "seed"),
                            (dict(n_steps=10, ref_min_score=float("nan")), "ref_min_score"),
                            (dict(n_steps=10, ref_episodes=0), "ref_episodes"),
                            (dict(n_steps=10, env_id="NoSuchEnv-v0"), "NoSuchEnv-v0")):
        arguments = {**common, "env_id": "Pendulum-v1", **kwargs}
        with pytest.raises(DataError, match=message):
            generate.generate_dataset(None, arguments.pop("env_id"), "pend/random-v0", **arguments)
    with pytest.raises(OutputPathError, match="does not exist"):
        generate.generate_dataset(None, "Pendulum-v1", "pend/random-v0", n_steps=10,
                                  **{**common, "root": tmp_path / "no"})
    (tmp_path / "pend" / "random-v0").mkdir(parents=True)
    with pytest.raises(OutputPathError, match="already exists"):
        generate.generate_dataset(None, "Pendulum-v1", "pend/random-v0", n_steps=10, **common)


def test_generate_refuses_what_the_writer_would_before_any_rollout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dataset id, the default root's existing folder and the reference scores are those the
    writer checks: each is refused before the first rollout, not after all of them."""
    from saq_wrappers.app import generate

    monkeypatch.setattr(generate, "rollout", _must_not_run)
    monkeypatch.setattr(generate, "mean_return", _must_not_run)
    common = dict(recipe="random", n_steps=10, ref_min_score=0.0, ref_max_score=1.0, progress=False)
    for dataset_id in ("hopper", "../escape-v0"):
        with pytest.raises(DataError, match=rf"invalid Minari dataset id '{re.escape(dataset_id)}'"):
            generate.generate_dataset(None, "Pendulum-v1", dataset_id, root=tmp_path, **common)
    assert main(["data", "generate", "--env", "Pendulum-v1", "--dataset-id", "hopper", "--steps", "10",
                 "--ref-min", "0", "--ref-max", "1", "--recipe", "random", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "invalid Minari dataset id 'hopper'" in err and len(err.strip().splitlines()) == 1
    default_root = Path(os.environ["MINARI_DATASETS_PATH"])
    (default_root / "pend" / "partial-v0").mkdir(parents=True)  # no data/metadata.json: still taken
    with pytest.raises(OutputPathError, match="already exists"):
        generate.generate_dataset(None, "Pendulum-v1", "pend/partial-v0", **common)
    with pytest.raises(DataError, match=r"are equal \(5\)"):
        generate.generate_dataset(None, "Pendulum-v1", "pend/equal-v0", root=tmp_path,
                                  **{**common, "ref_min_score": 5.0, "ref_max_score": 5.0})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--demos", "0"], "demos must be an integer >= 1"),
        (["--demos", str(10**9)], "demos must be an integer >= 1 and <= "),
        (["--max-steps", "0"], "max steps must be an integer >= 1"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--output", "missing/demos.hdf5"], "does not exist"),
        (["--output", "."], "it is a folder"),
    ],
)
def test_lift_demos_options_and_output_are_checked_before_any_demo(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from saq_wrappers.app import lift_demos

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lift_demos, "generate_lift_demos", _must_not_run)
    output = [] if "--output" in argv else ["--output", "demos.hdf5"]
    assert main(["data", "lift-demos", "--quiet", *output, *argv]) == 1
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- the quickstart cache
def test_a_corrupt_cache_entry_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    from saq_wrappers.experts import quickstart_dataset

    first, meta = quickstart_dataset(tmp_path, n_episodes=2, progress=False)
    (arrays,) = tmp_path.glob("*.npz")
    (metadata,) = tmp_path.glob("*.json")
    for broken, content in ((arrays, arrays.read_bytes()[:100]), (metadata, metadata.read_bytes()[:10])):
        broken.write_bytes(content)
        with pytest.warns(UserWarning, match="rebuilding it"):
            again, meta_again = quickstart_dataset(tmp_path, n_episodes=2, progress=False)
        assert again.content_sha256() == first.content_sha256() and meta_again == meta
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whole again: read without a warning
        quickstart_dataset(tmp_path, n_episodes=2, progress=False)


def test_an_unwritable_cache_still_gives_the_data(tmp_path: Path) -> None:
    from saq_wrappers.experts import quickstart_dataset

    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="cannot cache"):
        transitions, meta = quickstart_dataset(tmp_path / "cache", n_episodes=2, progress=False)
    assert len(transitions) == 400 and meta["env_id"] == "Pendulum-v1"


# --------------------------------------------------------------------------- dataset paths and env ids
def test_a_dataset_path_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.hdf5"
    os.mkfifo(fifo)
    (tmp_path / "x.hdf5").mkdir()
    cases = [
        (f"{fifo}@Pendulum-v1", "is a FIFO"),
        (f"d4rl:{fifo}@Pendulum-v1", "is a FIFO"),
        (f"robomimic:{fifo}", "is a FIFO"),
        ("d4rl:/dev/zero@Pendulum-v1", "is a character device"),
        ("/dev/zero", "is a character device, expected a Minari dataset folder"),
        (str(tmp_path / "x.hdf5"), "is a folder, expected an hdf5 file"),
        (f"{tmp_path / 'x.hdf5'}@Pendulum-v1", "is a folder, expected an hdf5 file"),
        (str(d4rl_file(tmp_path / "d.hdf5")), "needs its env id"),
        (str(tmp_path / "none.hdf5"), "does not exist"),
    ]
    for text, message in cases:
        with pytest.raises(DataError, match=message):
            DatasetSpec.parse(text).check()


def test_an_unknown_env_id_is_refused_when_the_spec_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = d4rl_file(tmp_path / "pend.hdf5")
    with pytest.raises(DataError, match="'NoSuchEnv-v0' is not a registered Gymnasium env"):
        DatasetSpec.parse(f"{path}@NoSuchEnv-v0")
    with pytest.raises(DataError, match="Pendulum-v1"):  # the close registered id is suggested
        DatasetSpec.parse(f"{path}@Pendulum-v9")
    with pytest.raises(DataError, match="not a registered Gymnasium env"):
        DatasetSpec.parse(f"{path}@json:JSONDecoder")  # gymnasium's module:Env form imports nothing here
    monkeypatch.setattr("saq_wrappers.app.datasets.load_dataset", _must_not_run)
    monkeypatch.setattr(pipeline, "run_experiment", _must_not_run)
    monkeypatch.chdir(tmp_path)
    assert main(["quickstart", *SMALL, "--dataset", f"{path}@NoSuchEnv-v0"]) == 1
    err = capsys.readouterr().err
    assert "NoSuchEnv-v0" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pend.hdf5"]


def test_finetune_zoo_model_and_env_are_checked_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from saq_wrappers.app import finetune

    monkeypatch.setattr(finetune, "generate_dataset", _must_not_run)
    with pytest.raises(DataError, match="'NoSuchEnv-v0' is not a registered Gymnasium env"):
        finetune.FinetuneConfig(zoo_model="agent.zip", env_id="NoSuchEnv-v0")
    fifo = tmp_path / "agent.zip"
    os.mkfifo(fifo)  # hashing it would block forever
    config = finetune.FinetuneConfig.quick(zoo_model=str(fifo), env_id="Pendulum-v1",
                                           output_dir=str(tmp_path / "run"), progress=False)
    with pytest.raises(DataError, match="is a FIFO"):
        finetune.run_finetune(config)
    assert [p.name for p in tmp_path.iterdir()] == ["agent.zip"]


def test_a_seed_whose_evaluation_seeds_overflow_is_refused_before_training() -> None:
    data = DatasetSpec(name="pendulum-expert", kind="builtin", source="pendulum-expert", episodes=3)
    ExperimentSpec(data, "CQL", seed=MAX_SEED - 10_002, evaluation=EvaluationSettings(episodes=2, curve_episodes=2))
    with pytest.raises(DataError, match="seed 4,294,957,295 is too large"):
        ExperimentSpec(data, "CQL", seed=MAX_SEED - 10_000, evaluation=EvaluationSettings(episodes=2, curve_episodes=2))
