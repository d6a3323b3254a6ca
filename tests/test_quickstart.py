"""``saq quickstart`` and the ``saq`` command line: the main job from an empty folder, outputs,
reloadable artifacts, bad input refused before any work, nothing left behind by failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from saq_wrappers import VQVAEQuantizer
from saq_wrappers.app import pipeline
from saq_wrappers.app.cli import EXIT_INTERRUPTED, main

SMALL = ["--steps", "12", "--quantizer-steps", "50", "--eval-episodes", "2", "--n-codes", "4", "--quiet"]


def test_quickstart_in_an_empty_folder_writes_only_its_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import d3rlpy

    monkeypatch.chdir(tmp_path)
    assert main(["quickstart", *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "| SAQ-CQL |" in printed and "| CQL |" in printed
    assert [p.name for p in tmp_path.iterdir()] == ["saq_runs"]  # parents created, nothing else written
    (out,) = list((tmp_path / "saq_runs").iterdir())
    assert out.name.startswith("quickstart-cql-")
    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results["runs"]] == ["SAQ-CQL", "CQL"]
    for run in results["runs"]:
        assert run["steps"] == 12 and run["updates_per_second"] > 0
        assert len(run["evaluation"]["returns"]) == 2 and run["curve"]
        expected = 100 * (run["evaluation"]["mean_return"] - results["dataset"]["random_return"]) / (
            results["dataset"]["expert_return"] - results["dataset"]["random_return"])
        assert run["normalized_score"] == pytest.approx(expected)
    assert results["runs"][0]["codes_used"] <= 4
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "results.md").read_text().startswith("| method |")
    quantizer = VQVAEQuantizer.load(out / "quantizer.safetensors")
    assert quantizer.n == 4
    saq = d3rlpy.load_learnable(str(out / "saq_cql.d3"))
    obs = np.zeros((3, 3), np.float32)
    assert saq.predict(obs).shape == (3,) and saq.predict(obs).max() < 4
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "-5"], "steps must be an integer >= 1"),
        (["--steps", "0"], "steps must be an integer >= 1"),
        (["--time-budget", "-1"], "time budget must be a finite number > 0"),
        (["--quantizer-steps", "0"], "quantizer steps must be an integer >= 1"),
        (["--eval-episodes", "0"], "eval episodes must be an integer >= 1"),
    ],
)
def test_bad_budgets_are_refused_before_any_work(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "run_experiment", _must_not_run)
    assert main(["quickstart", *argv]) == 1
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit) as exit_info:  # what is not a number at all is a usage error
        main(["quickstart", argv[0], "many"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-codes", "1"], "n_codes (K) must be an integer >= 2"),
        (["--dataset", "no-such/dataset-v0"], "minari download no-such/dataset-v0"),
        (["--dataset", "missing.hdf5"], "does not exist"),
        (["--dataset", "builtin:nothing"], "unknown built-in"),
        (["--output", "occupied"], "already holds files"),
        (["--output", "afile/run"], "is a file"),
    ],
)
def test_bad_input_fails_before_any_work_and_leaves_nothing(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "old.json").write_text("{}")
    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(pipeline, "run_experiment", _must_not_run)
    assert main(["quickstart", *SMALL, *argv]) == 1
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "occupied"]
    assert [p.name for p in (tmp_path / "occupied").iterdir()] == ["old.json"]


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the pipeline ran although the input was bad")


@pytest.mark.parametrize("error, code", [(KeyboardInterrupt(), EXIT_INTERRUPTED), (OSError("disk full"), 1)])
def test_a_stopped_run_leaves_no_folder_behind(
    error: BaseException, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C (or a failure) in the middle of a run: one line, its exit code, no run folder,
    not even the quantizer already written to the staging folder."""

    def fit_then_stop(spec: object, store: pipeline.ArtifactStore, **kwargs: object) -> None:
        store.quantizer_path(spec).write_bytes(b"half a run")  # type: ignore[arg-type]
        raise error

    monkeypatch.setattr(pipeline, "run_experiment", fit_then_stop)
    assert main(["quickstart", *SMALL, "--output", str(tmp_path / "a" / "b" / "run")]) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("saq quickstart: ")
    assert not list((tmp_path / "a" / "b").iterdir())  # parents may exist; no run, no staging folder


def test_help_is_fast_to_import_and_documents_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    # `saq --help` must not import torch or d3rlpy (a fresh interpreter shows what it imports)
    probe = ("import sys\nfrom saq_wrappers.app.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'd3rlpy', 'gym', 'minari') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "unmaintained" not in done.stderr
    with pytest.raises(SystemExit) as exit_info:
        main(["quickstart", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dataset", "--algo", "--n-codes", "--steps", "--time-budget", "--seed", "--output"):
        assert option in text
    assert main([]) == 2


def test_recipe_subcommands_are_wired(capsys: pytest.CaptureFixture[str]) -> None:
    for command, option in ((["data", "generate"], "--recipe"), (["data", "lift-demos"], "--demos"),
                            (["finetune"], "--online-steps")):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert option in capsys.readouterr().out
