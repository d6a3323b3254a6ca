"""What every generated page and fragment shares: reading the committed result files, naming them,
and writing Markdown tables with fixed number formats.

Pages never print a path of the machine that generated them: a result file is named by its path
in the repository (``benchmarks/results/...``, :data:`RESULTS_NAME`) and an image by its path
relative to the page, so the output depends on the files' contents only and ``--check`` is stable
from any checkout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Optional, Sequence

__all__ = ["REPO", "RESULTS_NAME", "Output", "Results", "bold_headings", "code", "commands_detail", "commas", "image",
           "join_seeds",
           "rerun_command", "source_note", "table"]

#: The repository root (this package lives in ``benchmarks/docs_pages/``).
REPO = Path(__file__).resolve().parents[2]
#: How pages name the results folder: its path in the repository.
RESULTS_NAME = "benchmarks/results"


class Output(dict):
    """Generated files: path relative to the docs root -> text. ``describe`` keeps one line per
    fragment for ``docs/generated/index.txt``."""

    def __init__(self) -> None:
        super().__init__()
        self.descriptions: dict[str, str] = {}

    def add(self, path: str, text: str, description: Optional[str] = None) -> None:
        if path in self:
            raise ValueError(f"{path} generated twice")
        self[path] = text.rstrip("\n") + "\n"
        if description is not None:
            self.descriptions[path] = description


class Results:
    """The committed result files under one root (``benchmarks/results`` or a copy of it)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._json: dict[str, Any] = {}

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def json(self, rel: str) -> Any:
        if rel not in self._json:
            self._json[rel] = json.loads((self.root / rel).read_text())
        return self._json[rel]

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def files(self, pattern: str) -> list[str]:
        """Relative POSIX paths matching the glob ``pattern``, sorted; files of ``runs/`` folders
        (one harness run each) only when the pattern names ``runs``. Smoke runs' files
        (``*_quick.*``, which git ignores) are never results."""
        found = [p.relative_to(self.root).as_posix() for p in self.root.glob(pattern)
                 if p.is_file() and "_quick." not in p.name]
        if "runs" not in pattern.split("/"):
            found = [f for f in found if "runs" not in f.split("/")[:-1]]
        return sorted(found)

    def name(self, rel: str) -> str:
        """How a page names a result file: its path in the repository."""
        return f"{RESULTS_NAME}/{rel}"


def code(text: str) -> str:
    """Inline code, safe in a table cell."""
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table; cells are already formatted strings (``|`` escaped here)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def commas(value: float) -> str:
    """An integer count with thousands separators (``20,000``)."""
    return f"{int(round(value)):,}"


def join_seeds(seeds: Iterable[int]) -> str:
    """``0-2``, ``0-4``, or ``0, 3`` when not consecutive."""
    values = sorted(set(int(s) for s in seeds))
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


def image(from_dir: str, results_rel: str, alt: str) -> str:
    """A Markdown image of a committed result file, by its path relative to ``from_dir`` (a folder
    of the docs, e.g. ``benchmarks`` or ``generated/harness/standard``); the docs root is
    ``docs/`` in the repository, so the results are at ``../benchmarks/results`` from it."""
    depth = len(PurePosixPath(from_dir).parts) + 1
    return f"![{alt}]({'../' * depth}{RESULTS_NAME}/{results_rel})"


_OLD_SCRIPT = re.compile(r"^python benchmarks/diagnose_(\w+)\.py")


def rerun_command(recorded: str) -> Optional[str]:
    """The command to rerun a diagnosis recorded under its old script name
    (``python benchmarks/diagnose_acting.py ...``): the scripts now run as modules of
    ``benchmarks.diagnostics``. ``None`` when the recorded command is still current."""
    match = _OLD_SCRIPT.match(recorded)
    if match is None:
        return None
    return _OLD_SCRIPT.sub(f"python -m benchmarks.diagnostics.{match.group(1)}", recorded)


def commands_detail(commands: Iterable[str]) -> str:
    """``commands: `a`; `b``` for the distinct recorded commands of a folder's files, with today's
    script name when they ran under an old one (:func:`rerun_command`)."""
    distinct = list(dict.fromkeys(commands))
    text = "commands: " + "; ".join(code(c) for c in distinct)
    renamed = list(dict.fromkeys(_OLD_SCRIPT.match(c).group(1) for c in distinct if _OLD_SCRIPT.match(c)))
    if renamed:
        modules = ", ".join(code(f"python -m benchmarks.diagnostics.{name}") for name in renamed)
        text += f" (to run them today: {modules})"
    return text


def source_note(files: Sequence[str], command: Optional[str] = None, *, details: Sequence[str] = ()) -> str:
    """The paragraph above a table: its source file(s), the command that wrote them (and today's
    form of it, :func:`rerun_command`), then ``details`` (seeds, budget, machine...)."""
    parts = ["Source: " + ", ".join(code(f) for f in files) + "."]
    if command:
        parts.append(f"Command: {code(command)}.")
        current = rerun_command(command)
        if current:
            parts.append(f"To run it today: {code(current)}.")
    parts += [d[0].upper() + d[1:].rstrip(".") + "." for d in details if d]
    return " ".join(parts)


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def bold_headings(markdown: str, drop_title: bool = True) -> str:
    """A bench script's or report's Markdown made fit to sit inside a page: its ``# title`` dropped
    (``drop_title``) and every other heading turned into a bold line, so the page's own heading
    levels stay consistent wherever it is placed."""
    lines = []
    for line in markdown.strip("\n").split("\n"):
        match = _HEADING.match(line)
        if match is None:
            lines.append(line)
        elif drop_title and match.group(1) == "#":
            continue
        else:
            lines.append(f"**{match.group(2)}**")
    return "\n".join(lines).strip("\n")
