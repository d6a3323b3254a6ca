"""The cross-report table of issue 37's twins: which rows it takes, which report wins a duplicate,
and how it reads the issue's bound off each interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.docs_pages.common import Output, Results
from benchmarks.docs_pages.mode_rule import MODE_RULE_FRAGMENT, mode_rule_fragment, twin_entries


def _row(dataset: str, reference: str, variant: str, plain: float, twin: float, ci: tuple[float, float],
         n: int = 3) -> dict[str, Any]:
    return {"dataset": dataset, "reference": reference, "variant": variant, "reference_mean": plain,
            "reference_n": n, "variant_mean": twin, "variant_n": n, "difference": twin - plain,
            "difference_ci": list(ci)}


def _report(root: Path, folder: str, variants: list[dict[str, Any]]) -> None:
    path = root / "harness" / folder / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"variants": variants}))


def test_only_twins_of_the_standard_and_kitchen_suites_are_taken(tmp_path: Path) -> None:
    _report(tmp_path, "standard/mode-averaging", [
        _row("hopper-expert", "SAQ-BC (K=64)", "SAQ-BC (K=64, mode-averaged)", 40.0, 41.0, (-5.0, 7.0)),
        # a variant that is not the rule acting on the same training
        _row("hopper-expert", "SAQ-BC (K=64)", "SAQ-BC (K=64, density policy)", 40.0, 70.0, (10.0, 50.0)),
    ])
    _report(tmp_path, "noise-study/x", [
        _row("hopper-expert50", "SAQ-BC (K=64)", "SAQ-BC (K=64, mode-averaged)", 20.0, 30.0, (1.0, 20.0)),
    ])
    entries = twin_entries(Results(tmp_path))
    assert [(suite, e["variant"]) for suite, _, e in entries] == [("standard", "SAQ-BC (K=64, mode-averaged)")]


def test_a_duplicate_pair_comes_from_the_report_with_more_seeds_then_the_nearer_one(tmp_path: Path) -> None:
    pair = ("walker2d-expert", "SAQ-IQL (K=64, sampled)", "SAQ-IQL (K=64, sampled, mode-averaged)")
    _report(tmp_path, "standard/a/deeper/report", [_row(*pair, 50.0, 60.0, (-1.0, 20.0), n=3)])
    _report(tmp_path, "standard/mode-averaging", [_row(*pair, 50.0, 55.0, (-9.0, 19.0), n=2)])
    _report(tmp_path, "standard/z", [_row(*pair, 50.0, 60.0, (-1.0, 20.0), n=3)])
    [(_, report, entry)] = twin_entries(Results(tmp_path))
    assert report == "harness/standard/z/results.json"
    assert entry["variant_n"] == 3


def test_the_bound_is_read_off_the_intervals_upper_end(tmp_path: Path) -> None:
    _report(tmp_path, "kitchen/mode-averaging", [
        _row("kitchen", "SAQ-BRAC (K=64)", "SAQ-BRAC (K=64, mode-averaged)", 50.0, 40.0, (-20.0, -1.0)),
        _row("kitchen", "SAQ-CQL (K=64)", "SAQ-CQL (K=64, mode-averaged)", 50.0, 50.0, (-20.0, 0.5)),
    ])
    _report(tmp_path, "standard/mode-averaging", [
        _row("lift-mm", "SAQ-BC (K=64)", "SAQ-BC (K=64, mode-averaged)", 100.0, 90.0, (-15.0, -2.0), n=1),
    ])
    out = Output()
    mode_rule_fragment(Results(tmp_path), out)
    lines = out[MODE_RULE_FRAGMENT].splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith("| standard") or line.startswith("| kitchen")]
    # the standard suite first, then by algorithm: SAQ-BC, SAQ-CQL, ..., SAQ-BRAC last
    assert [(r[0], r[2]) for r in rows] == [("| standard", "SAQ-BC (K=64)"), ("| kitchen", "SAQ-CQL (K=64)"),
                                           ("| kitchen", "SAQ-BRAC (K=64)")]
    assert [r[-1] for r in rows] == ["- |", "no |", "yes |"]  # one seed: no interval to read
    assert lines[-1] == ("3 pairs; the twin is below its plain run by more than the interval in 1; by seed means it "
                         "is ahead in 0, level in 1 and behind in 2.")


def test_no_twin_no_fragment(tmp_path: Path) -> None:
    _report(tmp_path, "standard", [])
    out = Output()
    mode_rule_fragment(Results(tmp_path), out)
    assert MODE_RULE_FRAGMENT not in out
