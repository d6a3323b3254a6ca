"""Write the documentation's benchmark pages, table fragments and the README's results summary from
the committed result files: ``python -m benchmarks.docs_pages``.

No number on a benchmark page is typed by hand. This command reads ``benchmarks/results/`` and
writes:

* ``docs/benchmarks/{index,standard,ablations,micro,real-suites,history}.md``;
* ``docs/generated/<path of a result file under benchmarks/results, .json -> .md>``: one table
  fragment per result file, for the design notes to ``{include}``; ``docs/generated/index.txt``
  lists them;
* the blocks of ``README.md`` between ``<!-- BEGIN GENERATED: NAME -->`` and
  ``<!-- END GENERATED: NAME -->``, for NAME in ``results`` (the standard suite's summary),
  ``kitchen`` (the kitchen suite's) and ``quickstart`` (the committed ``saq quickstart`` run).

``--check`` writes nothing: it exits 1 and names every file that differs from what the results
would generate (or that nothing generates any more). The output depends on the files' contents
only (fixed number formats, file order sorted), so the check is stable.

Usage::

    python -m benchmarks.docs_pages            # write
    python -m benchmarks.docs_pages --check    # the tests run this
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from saq_wrappers.io import atomic_output

from .ablations import ablations_page
from .common import REPO, Output, Results
from .fragments import fragments
from .harness import harness_fragments
from .kitchen import kitchen_block
from .mode_rule import mode_rule_fragment
from .pages import history_page, index_page, micro_page, real_suites_page
from .quickstart import quickstart_block
from .standard import readme_block, standard_page

__all__ = ["README_BEGIN", "README_BLOCKS", "README_END", "build", "main", "splice_readme"]

README_BEGIN = "<!-- BEGIN GENERATED: results -->"
README_END = "<!-- END GENERATED: results -->"
#: The README's generated blocks: name -> what writes it.
README_BLOCKS = {"results": readme_block, "kitchen": kitchen_block, "quickstart": quickstart_block}
#: The folders this command owns under the docs root: whatever else is there was generated once and
#: is stale now.
OWNED = ("benchmarks", "generated")


def build(results_root: Path) -> Output:
    """Every page and fragment, keyed by its path under the docs root."""
    results = Results(results_root)
    out = Output()
    harness_fragments(results, out)
    mode_rule_fragment(results, out)
    fragments(results, out)
    out.add("benchmarks/standard.md", standard_page(results))
    out.add("benchmarks/ablations.md", ablations_page(results))
    out.add("benchmarks/micro.md", micro_page(results))
    out.add("benchmarks/real-suites.md", real_suites_page(results))
    out.add("benchmarks/history.md", history_page(results))
    out.add("benchmarks/index.md", index_page(results, out))
    out.add("generated/index.txt", _fragment_index(out))
    return out


def _fragment_index(out: Output) -> str:
    names = sorted(path for path in out if path.startswith("generated/"))
    width = max(len(n) for n in names) - len("generated/") + 2
    lines = ["Table fragments written by `python -m benchmarks.docs_pages` from the committed files under",
             "benchmarks/results/ (do not edit them: rerun the command). Each starts with a line naming its",
             "source file and command, then its table(s), with no headings. Include one in a page (paths",
             "relative to the including page; `:relative-images:` resolves a fragment's image from its folder):",
             "", "    ```{include} ../generated/acting_diagnosis.md", "    :relative-images:", "    ```", ""]
    lines += [f"{name[len('generated/'):]:<{width}}{out.descriptions.get(name, '')}".rstrip() for name in names]
    return "\n".join(lines)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"


def splice_readme(readme: str, block: str, name: str = "results") -> Optional[str]:
    """``readme`` with the text between its ``name`` markers replaced by ``block``; ``None`` when
    the markers are missing, repeated or out of order."""
    begin, end = _markers(name)
    if readme.count(begin) != 1 or readme.count(end) != 1:
        return None
    if readme.index(end) < readme.index(begin):
        return None
    head, rest = readme.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{block.strip()}\n{end}{tail}"


def _spliced_readme(readme: str, results: Results) -> tuple[Optional[str], list[str]]:
    """``readme`` with every generated block rewritten, and the names of the blocks whose markers
    are missing (``None`` then: the README is left as it is)."""
    missing = []
    for name, write in README_BLOCKS.items():
        spliced = splice_readme(readme, write(results), name)
        if spliced is None:
            missing.append(name)
        else:
            readme = spliced
    return (None if missing else readme), missing


def _stale(docs_root: Path, out: Output) -> tuple[list[str], list[str]]:
    """Generated paths whose file differs, and files in the owned folders that nothing generates."""
    changed = [path for path in sorted(out) if not (docs_root / path).is_file()
               or (docs_root / path).read_text() != out[path]]
    extra = sorted(p.relative_to(docs_root).as_posix() for folder in OWNED if (docs_root / folder).is_dir()
                   for p in (docs_root / folder).rglob("*") if p.is_file()
                   and p.relative_to(docs_root).as_posix() not in out)
    return changed, extra


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.docs_pages", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and name every stale file")
    parser.add_argument("--results-root", type=Path, default=REPO / "benchmarks" / "results",
                        help="the result files to read")
    parser.add_argument("--docs-root", type=Path, default=REPO / "docs",
                        help="the documentation folder (pages go to benchmarks/, fragments to generated/)")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md",
                        help="the README whose results block is generated")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out = build(args.results_root)
    changed, extra = _stale(args.docs_root, out)
    readme = args.readme.read_text() if args.readme.is_file() else ""
    spliced, missing = _spliced_readme(readme, Results(args.results_root))
    problems = 0
    for name in missing:
        begin, end = _markers(name)
        print(f"{args.readme}: no {name} block: add one line {begin} and, below it, one line "
              f"{end}; the README was left untouched", file=sys.stderr)
        problems += 1
    if args.check:
        stale = [str(args.docs_root / p) for p in changed] + [f"{args.docs_root / p} (nothing generates it)"
                                                               for p in extra]
        if spliced is not None and spliced != readme:
            stale.append(f"{args.readme} (its generated blocks)")
        for line in stale:
            print(f"stale: {line}", file=sys.stderr)
        if stale:
            print("run `python -m benchmarks.docs_pages` to rewrite them from benchmarks/results/", file=sys.stderr)
        return 1 if stale or problems else 0
    for path in changed:
        target = args.docs_root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target) as tmp:
            tmp.write_text(out[path])
    for path in extra:
        (args.docs_root / path).unlink()
    if spliced is not None and spliced != readme:
        with atomic_output(args.readme) as tmp:
            tmp.write_text(spliced)
    print(f"{len(changed)} of {len(out)} generated files rewritten, {len(extra)} removed"
          + ("" if spliced is None else ", README blocks " + ("rewritten" if spliced != readme else "current")))
    return 1 if problems else 0
