"""``saq quickstart`` and the ``saq`` command line: outputs, reloadable artifacts, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import d3rlpy
import numpy as np
import pytest

from saq_wrappers import VQVAEQuantizer
from saq_wrappers.cli import main


def test_quickstart_writes_table_curves_and_reloadable_artifacts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["quickstart", "--steps", "60", "--quantizer-steps", "50", "--eval-episodes", "2",
                 "--n-codes", "4", "--output", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| SAQ-CQL |" in printed and "| CQL |" in printed
    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results["runs"]] == ["SAQ-CQL", "CQL"]
    for run in results["runs"]:
        assert run["steps"] == 60 and run["updates_per_second"] > 0
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
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-codes", "1"], "n_codes (K) must be >= 2"),
        (["--output", "/nonexistent-folder/run"], "does not exist"),
        (["--dataset", "no-such/dataset-v0"], "no-such/dataset-v0"),
    ],
)
def test_quickstart_bad_input_exits_with_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = ["quickstart", "--steps", "1", "--quantizer-steps", "1", "--quiet"]
    if "--output" not in argv:
        base += ["--output", str(tmp_path / "run")]
    assert main(base + argv) == 1
    assert message in capsys.readouterr().err


def test_help_documents_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["quickstart", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--dataset", "--algo", "--n-codes", "--steps", "--time-budget", "--seed", "--output"):
        assert option in text
    assert main([]) == 2


def test_data_subcommands_are_wired(capsys: pytest.CaptureFixture[str]) -> None:
    for command, option in ((["data", "generate"], "--recipe"), (["data", "lift-demos"], "--demos"),
                            (["finetune"], "--online-steps")):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert option in capsys.readouterr().out


def test_every_algorithm_maps_to_its_saq_preset_and_continuous_counterpart() -> None:
    import gymnasium as gym

    from saq_wrappers.integrations.d3rlpy import DiscreteBRACConfig, DiscreteIQLConfig
    from saq_wrappers.integrations.d3rlpy.quickstart import continuous_baseline, saq_config

    expected = {"cql": (d3rlpy.algos.DiscreteCQLConfig, "CQL"), "bc": (d3rlpy.algos.DiscreteBCConfig, "BC"),
                "iql": (DiscreteIQLConfig, "IQL"), "brac": (DiscreteBRACConfig, "TD3+BC")}
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    for algo, (config_type, baseline_name) in expected.items():
        config = saq_config(algo, n_steps=500)
        assert isinstance(config, config_type) and config.batch_size == 256
        assert continuous_baseline(algo, space)[0] == baseline_name
    assert saq_config("brac", n_steps=500).behavior_pretrain_steps == 50
