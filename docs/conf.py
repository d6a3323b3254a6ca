"""Sphinx configuration of the saq-wrappers documentation site.

Build it strictly, as CI does (a warning fails the build)::

    pip install -e ".[docs]" -c constraints.txt
    sphinx-build -W --keep-going -b html docs docs/_build/html

Pages are MyST Markdown; the API reference is generated from the docstrings (Google style, read
by napoleon) with autodoc, so the package must be importable from the environment the build runs
in. Nothing is fetched at build time (no intersphinx), and MathJax is served from the site.
"""

from __future__ import annotations

import saq_wrappers

project = "saq-wrappers"
author = "saq-wrappers contributors"
copyright = "saq-wrappers contributors"  # noqa: A001 - Sphinx's name for it
release = saq_wrappers.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
# MathJax 3 served from the site itself (the `docs` extra installs sphinx-mathjax-offline, whose
# module name has hyphens), so equations render without network.
extensions.append("sphinx-mathjax-offline")

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# generated/ holds table fragments that the benchmark pages include; they are not pages.
exclude_patterns = ["_build", "generated", "Thumbs.db", ".DS_Store"]

# MyST: $...$ and $$...$$ math, \begin{align} environments, and ::: fences for admonitions.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
# Headings get anchors so pages can link to a section: [text](page.md#a-heading).
myst_heading_anchors = 3

# autodoc: members in source order, signatures with their type hints; names are shown without
# their module path (each API page says what to import from).
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
add_module_names = False
python_use_unqualified_type_names = True
toc_object_entries_show_parents = "hide"

# napoleon: the code's docstrings are Google style.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True



def _protocol_without_signature(app, what, name, obj, options, signature, return_annotation):
    """A ``typing.Protocol`` is not instantiated: show ``class ActionSet``, not the
    ``(*args, **kwargs)`` that typing gives every protocol's ``__init__``."""
    if what == "class" and getattr(obj, "_is_protocol", False):
        return "", return_annotation
    return None


def setup(app):
    app.connect("autodoc-process-signature", _protocol_without_signature)


html_theme = "furo"
html_title = f"saq-wrappers {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
pygments_style = "friendly"
pygments_dark_style = "monokai"
