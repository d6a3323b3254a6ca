"""Every ```` ```python ```` block of README.md and docs/**/*.md runs and exits 0.

The documentation promises that its examples run; this test keeps the promise. Each block whose
fence's info string is exactly ``python`` runs as its own script (``python -c``) in a fresh
process, in an empty temporary folder, with ``OMP_NUM_THREADS=1`` and the saq and Minari caches
pointed into that folder. Blocks fenced as ``text``, ``bash``, ``console`` or anything else are
not run.

Blocks run independently, even on the same page: a block cannot use a name, a file or a trained
model that an earlier block made, so every block must be self-contained (make its own data, import
what it uses, train for a few hundred steps at most). The test's id is ``file:line`` of the
block's opening fence. ``docs/_build`` and ``docs/generated`` (table fragments written by
``python -m benchmarks.docs_pages``) are not searched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folders under docs/ whose Markdown is not a documentation page.
SKIPPED_DOCS = ("_build", "generated")
#: Seconds one block may run.
TIMEOUT_S = 120

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block: where it starts (``path:line`` of the fence) and its source."""

    where: str
    code: str


def markdown_files() -> list[Path]:
    pages = [ROOT / "README.md"]
    for page in sorted((ROOT / "docs").rglob("*.md")):
        if not any(part in SKIPPED_DOCS for part in page.relative_to(ROOT / "docs").parts[:-1]):
            pages.append(page)
    return pages


def python_blocks(path: Path) -> list[CodeBlock]:
    """The blocks of ``path`` fenced as ```` ```python ```` (CommonMark fences: a closing fence
    uses the opening's character, at least as many of them, and nothing else on its line)."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        label = path.relative_to(ROOT)
    except ValueError:
        label = path
    start = 0
    while start < len(lines):
        opening = _FENCE.match(lines[start])
        start += 1
        if not opening:
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body = []
        while start < len(lines):
            line = lines[start]
            start += 1
            closing = _FENCE.match(line)
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence) and not closing["info"].strip():
                break
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
        if opening["info"].strip() == "python":
            blocks.append(CodeBlock(f"{label}:{start - len(body) - 1}", "\n".join(body) + "\n"))
    return blocks


def run_block(block: CodeBlock, workdir: Path) -> None:
    """Run ``block`` in a fresh interpreter inside ``workdir``; fail with its output if it fails."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        SAQ_CACHE_DIR=str(workdir / "saq_cache"),
        MINARI_DATASETS_PATH=str(workdir / "minari"),
        MPLBACKEND="Agg",
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", block.code],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: the example ran longer than {TIMEOUT_S} s")
    assert result.returncode == 0, (
        f"{block.where}: the example exited with {result.returncode}\n"
        f"--- stdout (tail)\n{result.stdout[-3000:]}\n--- stderr (tail)\n{result.stderr[-3000:]}"
    )


BLOCKS = [block for page in markdown_files() for block in python_blocks(page)]


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_example_runs(block: CodeBlock, tmp_path: Path) -> None:
    run_block(block, tmp_path)


def test_runner_fails_on_a_failing_block(tmp_path: Path) -> None:
    """The collector finds only the ``python`` blocks, and a failing one fails the runner."""
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n"
        "```python\nimport os\nassert os.environ['OMP_NUM_THREADS'] == '1'\n```\n\n"
        "```bash\nexit 1\n```\n\n"
        "- a list item with an indented example:\n\n"
        "  ````python\n  x = 1\n  ```\n  raise SystemExit('boom')\n  ````\n",
        encoding="utf-8",
    )
    passing, failing = python_blocks(page)
    assert passing.where.endswith("page.md:3") and failing.where.endswith("page.md:14")
    assert failing.code == "x = 1\n```\nraise SystemExit('boom')\n"
    run_block(passing, tmp_path)
    with pytest.raises(AssertionError, match="boom"):
        run_block(failing, tmp_path)
