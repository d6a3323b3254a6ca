"""The generated benchmark pages: current on the committed tree, and stale as soon as a result file
changes (``python -m benchmarks.docs_pages --check``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.docs_pages import README_BEGIN, README_END, main, splice_readme

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
QUICKSTART_BEGIN, QUICKSTART_END = "<!-- BEGIN GENERATED: quickstart -->", "<!-- END GENERATED: quickstart -->"
KITCHEN_BEGIN, KITCHEN_END = "<!-- BEGIN GENERATED: kitchen -->", "<!-- END GENERATED: kitchen -->"


def test_committed_pages_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    """Every page, fragment and the README's results block match the committed result files."""
    code = main(["--check"])
    assert code == 0, capsys.readouterr().err


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A copy of the results, and pages and a README written from it into a temporary folder."""
    root = tmp_path_factory.mktemp("docs_pages")
    results = root / "results"
    shutil.copytree(RESULTS, results)
    readme = root / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{README_BEGIN}\nold text\n{README_END}\n\n{KITCHEN_BEGIN}\nold kitchen\n"
                      f"{KITCHEN_END}\n\n{QUICKSTART_BEGIN}\nold quickstart\n{QUICKSTART_END}\n\nafter\n")
    args = ["--results-root", str(results), "--docs-root", str(root / "docs"), "--readme", str(readme)]
    assert main(args) == 0
    return {"root": root, "results": results, "docs": root / "docs", "readme": readme}


def _args(paths: dict[str, Path], results: Path) -> list[str]:
    return ["--check", "--results-root", str(results), "--docs-root", str(paths["docs"]),
            "--readme", str(paths["readme"])]


def test_written_pages_check_clean_and_readme_keeps_its_text(written: dict[str, Path]) -> None:
    """What the writer writes is what the check expects (the output is deterministic), and the
    README changes only between its markers."""
    assert main(_args(written, written["results"])) == 0
    text = written["readme"].read_text()
    assert text.startswith("# title\n\nbefore\n\n" + README_BEGIN + "\n") and text.endswith(QUICKSTART_END + "\n\nafter\n")
    assert "old text" not in text and "SAQ-X − X" in text
    assert "old quickstart" not in text and "| SAQ-CQL |" in text
    names = (written["docs"] / "generated" / "index.txt").read_text()
    assert "harness/standard/pairs.md" in names and "acting_diagnosis.md" in names


def test_changing_one_number_makes_its_pages_stale(written: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """One SAQ-X − X difference moved by 1.0 in a copy of the standard suite's report: the check
    names the standard page, the pairs fragment and the README, and not the pages that do not
    show it."""
    results = tmp_path / "results"
    shutil.copytree(written["results"], results)
    report = results / "harness" / "standard" / "results.json"
    doc = json.loads(report.read_text())
    before = doc["pairs"][0]["difference"]
    doc["pairs"][0]["difference"] = before + 1.0
    report.write_text(json.dumps(doc))
    assert main(_args(written, results)) == 1
    err = capsys.readouterr().err
    stale = {line.split("stale: ", 1)[1].split(" (")[0] for line in err.splitlines() if line.startswith("stale: ")}
    docs = written["docs"]
    assert str(docs / "benchmarks" / "standard.md") in stale
    assert str(docs / "generated" / "harness" / "standard" / "pairs.md") in stale
    assert str(written["readme"]) in stale
    assert str(docs / "benchmarks" / "micro.md") not in stale
    assert str(docs / "benchmarks" / "ablations.md") not in stale


def test_a_removed_result_leaves_a_stale_fragment(written: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    shutil.copytree(written["results"], results)
    (results / "saq_cql.json").unlink()
    (results / "saq_cql.md").unlink()
    assert main(_args(written, results)) == 1
    err = capsys.readouterr().err
    assert f"{written['docs'] / 'generated' / 'saq_cql.md'} (nothing generates it)" in err


def test_a_readme_without_markers_fails_the_check_and_is_left_untouched(written: dict[str, Path], tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nno markers\n")
    args = ["--results-root", str(written["results"]), "--docs-root", str(written["docs"]), "--readme", str(readme)]
    assert main(["--check"] + args) == 1
    assert "no results block" in capsys.readouterr().err
    assert main(args) == 1
    assert readme.read_text() == "# title\n\nno markers\n"


def test_splice_readme_refuses_repeated_or_reversed_markers() -> None:
    assert splice_readme(f"{README_BEGIN}\n{README_END}\n{README_BEGIN}\n{README_END}\n", "x") is None
    assert splice_readme(f"{README_END}\n{README_BEGIN}\n", "x") is None
    spliced = splice_readme(f"a\n{README_BEGIN}\nold\n{README_END}\nb\n", "new")
    assert spliced == f"a\n{README_BEGIN}\nnew\n{README_END}\nb\n"


def test_the_quickstart_block_follows_its_committed_run(written: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The README's quickstart table is the committed run's own: another total time in its
    results.json makes the README stale (and the run's own fragment), and no benchmark page."""
    results = tmp_path / "results"
    shutil.copytree(written["results"], results)
    record = results / "quickstart" / "results.json"
    doc = json.loads(record.read_text())
    doc["total_seconds"] += 100.0
    record.write_text(json.dumps(doc))
    assert main(_args(written, results)) == 1
    stale = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stale: ")]
    assert f"stale: {written['readme']} (its generated blocks)" in stale
    assert not [line for line in stale if "/docs/benchmarks/" in line]


def test_the_kitchen_block_shows_the_kitchen_suites_pairs_beside_the_paper(written: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    """With a kitchen report, the README's kitchen block has one row per pair with our means, the
    difference and the paper's X -> SAQ-X (SAQ Table 5); without one it says none is committed."""
    from benchmarks.docs_pages.common import Results
    from benchmarks.docs_pages.kitchen import kitchen_block

    results = tmp_path / "results"
    (results / "harness").mkdir(parents=True)
    assert "no results committed yet" in kitchen_block(Results(results))
    shutil.copytree(written["results"] / "harness" / "kitchen-budget", results / "harness" / "kitchen")
    doc = json.loads((results / "harness" / "kitchen" / "results.json").read_text())
    block = kitchen_block(Results(results))
    for pair in doc["pairs"]:
        row = next(line for line in block.splitlines() if line.startswith(f"| {pair['x']} → {pair['saq_x']} |"))
        assert f"{pair['x_mean']:.1f} → {pair['saq_mean']:.1f}" in row and f"{pair['difference']:+.1f}" in row
    assert "| 39.1 → 90.3 |" in block and "| 66.0 → 76.8 |" in block  # BC, IQL pairs of SAQ Table 5


def test_the_kitchen_reading_goes_by_the_interval_not_the_mean() -> None:
    from benchmarks.docs_pages.kitchen import reading

    def pair(x: str, difference: float, ci: tuple[float, float], n: int, paper: float | None) -> dict[str, Any]:
        return {"x": x, "saq_x": f"SAQ-{x}", "x_n": n, "saq_n": n, "difference": difference,
                "difference_ci": list(ci), "paper_difference": paper}

    text = reading([pair("BC", 20.0, (5.0, 35.0), 3, 51.2), pair("CQL", 10.0, (-2.5, 25.0), 3, 33.7),
                    pair("IQL", -12.0, (-20.0, -4.0), 3, 10.8), pair("TD3+BC", 7.5, (7.5, 7.5), 1, -21.7)], "95%")
    assert "SAQ-BC against BC: ahead; the paper: ahead by 51.2" in text
    assert "SAQ-CQL against CQL: level (the 95% interval of the difference spans 0)" in text  # a positive mean
    assert "SAQ-IQL against IQL: behind; the paper: ahead by 10.8" in text
    assert "SAQ-TD3+BC against TD3+BC: +7.5 with one seed of TD3+BC, no interval yet; the paper: behind by 21.7" in text
    assert reading([], "95%") == "Reading: no pair has both runs yet."
