"""The layers: core <- integrations <- application <- benchmarks, checked on every import statement
(top-level or inside a function) of every module, so a lazy upward import cannot hide."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the dotted package it is installed as (see pyproject's package-dir).
PACKAGES = {"saq_wrappers": "saq_wrappers", "integrations": "saq_wrappers.integrations", "app": "saq_wrappers.app"}
#: What the core may import besides the standard library and itself.
CORE_THIRD_PARTY = {"numpy", "torch", "gymnasium", "tqdm", "safetensors"}
#: Libraries each integration wraps: an integration imports its own and no other's.
LIBRARIES = {"d3rlpy", "stable_baselines3", "sb3_contrib", "minari", "h5py", "robosuite", "robomimic", "ray"}


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [PACKAGES[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports, anywhere in the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.append(prefix)
            names += [f"{prefix}.{alias.name}" for alias in node.names]
    return names


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _is(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("path", _sources("saq_wrappers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_only_numpy_torch_gymnasium(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "saq_wrappers":
            assert not _is(name, "saq_wrappers.integrations") and not _is(name, "saq_wrappers.app"), name
        else:
            assert top in sys.stdlib_module_names or top in CORE_THIRD_PARTY or top == "__future__", name


@pytest.mark.parametrize("path", _sources("integrations"), ids=lambda p: str(p.relative_to(ROOT)))
def test_integrations_import_down_and_one_library_each(path: Path) -> None:
    names = _imports(path)
    assert not [n for n in names if _is(n, "saq_wrappers.app") or _is(n, "benchmarks")]
    libraries = {n.split(".")[0] for n in names} & LIBRARIES
    assert len(libraries - {"h5py"}) <= 1 or libraries <= {"stable_baselines3", "sb3_contrib", "d3rlpy"}, libraries


@pytest.mark.parametrize("path", _sources("app"), ids=lambda p: str(p.relative_to(ROOT)))
def test_application_never_imports_benchmarks(path: Path) -> None:
    assert not [n for n in _imports(path) if _is(n, "benchmarks")]


def test_console_script_lives_in_the_application_layer() -> None:
    text = (ROOT / "pyproject.toml").read_text()  # (tomllib is 3.11+; the project supports 3.10)
    assert re.search(r'^saq = "saq_wrappers\.app\.cli:main"$', text, re.MULTILINE)
    listing = re.search(r"^packages = \[(.*?)\]", text, re.MULTILINE | re.DOTALL)
    assert listing is not None
    installed = set(re.findall(r'"([\w.]+)"', listing.group(1)))
    for folder, dotted in PACKAGES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            assert _module_name(init) in installed, f"{init.parent} is not listed in pyproject's packages"
    assert dotted  # every layer is installed


def test_the_check_sees_a_lazy_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: an import inside a function, relative or absolute, is found."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "saq_wrappers").mkdir()
    source = tmp_path / "saq_wrappers" / "core.py"
    source.write_text("def f():\n    from .integrations.d3rlpy import x\n    import d3rlpy\n")
    assert {"saq_wrappers.integrations.d3rlpy.x", "d3rlpy"} <= set(_imports(source))


def test_no_module_prints_the_legacy_gym_notice() -> None:
    """d3rlpy and SB3 import the legacy ``gym``, which prints an "unmaintained" notice; it is
    silenced once, in ``saq_wrappers.integrations``, so every module must import those libraries
    through it. Each module is imported in a fresh interpreter (the notice prints only once)."""
    import subprocess

    modules = ["saq_wrappers.app.finetune", "saq_wrappers.app.generate", "saq_wrappers.app.pipeline",
               "saq_wrappers.integrations.sb3", "saq_wrappers.integrations.d3rlpy"]
    runs = {name: subprocess.Popen([sys.executable, "-c", f"import {name}"], stderr=subprocess.PIPE, text=True)
            for name in modules}
    for name, process in runs.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "unmaintained" not in err, name
