"""The lean core install and its extras.

The core needs numpy, torch, gymnasium, safetensors and tqdm only; every library integration and
the ``saq`` command come with an extra. Without its extra, an integration fails with an
ImportError that names the library and the extra, and ``saq`` prints one line and exits 2.

The libraries are made unimportable in a fresh interpreter by a meta-path finder that refuses
them (as if they were not installed), so these tests run in the full development environment.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from saq_wrappers.app import cli

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]
#: What the core imports (tests/test_layers.py checks that it imports nothing else).
CORE = {"numpy", "torch", "gymnasium", "safetensors", "tqdm"}
#: Every optional library, blocked at once where the core alone must work.
OPTIONAL_LIBRARIES = ("d3rlpy", "minari", "h5py", "matplotlib", "structlog", "stable_baselines3",
                      "sb3_contrib", "robosuite", "mujoco", "ray", "rliable")

#: Run in the child before anything else: the listed top-level modules cannot be found.
_BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
"""


def _run(blocked: tuple[str, ...], code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter in which the ``blocked`` libraries cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER + code, ",".join(blocked)],
        capture_output=True, text=True, timeout=300, cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _failures(blocked: str, imports: list[str]) -> dict[str, list[str]]:
    """Each statement of ``imports`` run with ``blocked`` missing: its exception's type, ``name``
    and message (the run fails if one succeeds)."""
    code = f"""
import json
found = {{}}
for statement in {imports!r}:
    try:
        exec(statement)
    except ImportError as error:
        found[statement] = [type(error).__name__, error.name, str(error)]
print(json.dumps(found))
"""
    run = _run((blocked,), code)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


#: (blocked library, import statement, the module that names it, the extra it names)
GUARDED = [
    ("d3rlpy", "import saq_wrappers.integrations.d3rlpy", "saq_wrappers.integrations.d3rlpy", "d3rlpy"),
    ("d3rlpy", "import saq_wrappers.integrations.d3rlpy.iql", "saq_wrappers.integrations.d3rlpy", "d3rlpy"),
    ("d3rlpy", "import saq_wrappers.integrations.sb3", "saq_wrappers.integrations.sb3", "sb3"),
    ("stable_baselines3", "import saq_wrappers.integrations.sb3", "saq_wrappers.integrations.sb3", "sb3"),
    ("minari", "from saq_wrappers.integrations.minari import load_minari", "saq_wrappers.integrations.minari",
     "minari"),
    ("h5py", "import saq_wrappers.integrations.minari", "saq_wrappers.integrations.minari", "minari"),
    ("h5py", "import saq_wrappers.integrations.d4rl", "saq_wrappers.integrations.d4rl", "d4rl"),
    ("h5py", "import saq_wrappers.integrations._hdf5", "saq_wrappers.integrations._hdf5", "d4rl"),
    ("h5py", "import saq_wrappers.integrations.robomimic", "saq_wrappers.integrations.robomimic", "robomimic"),
    ("robosuite", "from saq_wrappers.integrations.robomimic import lift_env_args; lift_env_args()",
     "saq_wrappers.integrations.robomimic.lift_demos", "robosuite"),
    ("robosuite", "from saq_wrappers.integrations.robomimic import make_robomimic_env; "
     "make_robomimic_env({'env_name': 'Lift', 'type': 1, 'env_kwargs': {}})",
     "saq_wrappers.integrations.robomimic.env", "robosuite"),
    ("gymnasium_robotics", "import saq_wrappers.integrations.gymnasium_robotics._env",
     "saq_wrappers.integrations.gymnasium_robotics._env", "robotics"),
]


@pytest.mark.parametrize("blocked", sorted({case[0] for case in GUARDED}))
def test_an_integration_without_its_extra_names_the_extra(blocked: str) -> None:
    cases = [case for case in GUARDED if case[0] == blocked]
    found = _failures(blocked, [statement for _, statement, _, _ in cases])
    for _, statement, module, extra in cases:
        assert statement in found, f"{statement} worked without {blocked}"
        kind, name, message = found[statement]
        assert (kind, name) == ("MissingExtraError", blocked), found[statement]
        assert message == (f"{module} needs {blocked}, which is not installed: "
                           f"pip install 'saq-wrappers[{extra}]'")


def test_a_broken_library_is_not_reported_as_a_missing_extra(tmp_path: Path) -> None:
    """Only a module that cannot be found is a missing extra; an installed library that fails
    to import passes its own error through unchanged."""
    (tmp_path / "d3rlpy").mkdir()
    (tmp_path / "d3rlpy" / "__init__.py").write_text("raise ImportError('d3rlpy is broken here')\n")
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
try:
    import saq_wrappers.integrations.d3rlpy
except ImportError as error:
    print(type(error).__name__, error)
"""
    run = _run((), code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ImportError d3rlpy is broken here"


def test_the_core_works_without_any_extra() -> None:
    """The core imports, wraps Pendulum-v1 with an untrained quantizer and (after a few updates on
    random data: an unfitted quantizer refuses to decode) steps it, with no optional library."""
    code = """
import gymnasium as gym
import numpy as np
import saq_wrappers, saq_wrappers.integrations, saq_wrappers.score, saq_wrappers.transitions, saq_wrappers.vqvae
from saq_wrappers.errors import NotFittedError
from saq_wrappers.wrappers import SAQActionWrapper

env = gym.make("Pendulum-v1")
quantizer = saq_wrappers.vqvae.VQVAEQuantizer(env.observation_space, env.action_space, n_codes=4,
                                                batch_size=64)
wrapped = SAQActionWrapper(env, quantizer)
assert wrapped.action_space == gym.spaces.Discrete(4), wrapped.action_space
obs, _ = wrapped.reset(seed=0)
try:
    wrapped.step(0)
    raise SystemExit("an unfitted quantizer decoded")
except NotFittedError:
    pass
rng = np.random.default_rng(0)
observations = np.stack([env.observation_space.sample() for _ in range(64)])
actions = rng.uniform(-2.0, 2.0, (64, 1)).astype(np.float32)
quantizer.fit(observations, actions, n_steps=3, progress=False)
obs, reward, terminated, truncated, _ = wrapped.step(1)
assert obs.shape == (3,) and np.isfinite(reward)
print("ok")
"""
    run = _run(OPTIONAL_LIBRARIES, code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["ok"]


def test_saq_without_its_extras_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    """Each command names every extra it needs (one ``pip install`` fixes it), plus the env's
    extra when a dataset's env needs one."""
    work = tmp_path / "work"
    work.mkdir()
    hdf5 = tmp_path / "demo.hdf5"
    hdf5.write_bytes(b"not read: the dataset's kind is told by h5py, which is missing")
    code = """
import sys
from saq_wrappers.app.cli import main
sys.exit(main(sys.argv[2:]))
"""

    def saq(blocked: tuple[str, ...], *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _BLOCKER + code, ",".join(blocked), *arguments],
            capture_output=True, text=True, timeout=300, cwd=work,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    assert saq(OPTIONAL_LIBRARIES, "--help").returncode == 0  # help needs no extra
    cases = [
        (OPTIONAL_LIBRARIES, ["quickstart", "--steps", "1", "--output", "out"], "saq quickstart", "d3rlpy", "cli"),
        (("h5py",), ["quickstart", "--dataset", str(hdf5)], "saq quickstart", "h5py", "cli"),
        (("stable_baselines3",), ["finetune", "--help"], "saq finetune", "stable_baselines3", "cli,sb3"),
        (("d3rlpy",), ["data", "generate", "--help"], "saq data generate", "d3rlpy", "minari,sb3"),
        (("robosuite", "structlog"), ["data", "lift-demos", "--demos", "1", "--output", "demos.hdf5"],
         "saq data lift-demos", "robosuite", "robosuite"),
    ]
    for blocked, arguments, command, library, extras in cases:
        run = saq(blocked, *arguments)
        assert run.returncode == cli.EXIT_MISSING_EXTRA, run.stderr
        assert run.stderr.splitlines() == [
            f"{command}: needs {library}, which is not installed: pip install 'saq-wrappers[{extras}]'"
        ]
    assert list(work.iterdir()) == []  # stopped before writing anything


def test_a_missing_library_is_found_below_the_error_that_wraps_it() -> None:
    """Gymnasium's MuJoCo envs raise DependencyNotInstalled from the ModuleNotFoundError, and a
    dataset may wrap that in a DataError: the CLI still finds ``mujoco`` and adds its extra."""
    import gymnasium as gym

    from saq_wrappers.errors import DataError

    try:
        try:
            try:
                raise ModuleNotFoundError("No module named 'mujoco'", name="mujoco")
            except ImportError as error:
                raise gym.error.DependencyNotInstalled("MuJoCo is not installed") from error
        except gym.error.DependencyNotInstalled as error:
            raise DataError("cannot rebuild env 'Hopper-v5'") from error
    except DataError as error:
        assert cli._missing_library(error) == "mujoco"
    assert cli._extras_hint("quickstart", "mujoco") == "pip install 'saq-wrappers[cli,mujoco]'"
    assert cli._missing_library(DataError("bad file")) is None
    assert cli._missing_library(ModuleNotFoundError("x", name="not_an_optional_library")) is None


# ------------------------------------------------------------------ pyproject covers every import
def _distribution(requirement: str) -> tuple[str, list[str]]:
    """``'saq-wrappers[a,b]'`` -> ``('saq-wrappers', ['a', 'b'])``, names normalized (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", requirement)
    assert match, requirement
    extras = [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), extras


def _installs(extra: str) -> set[str]:
    """The distributions ``pip install 'saq-wrappers[extra]'`` asks for, by name."""
    found: set[str] = set()
    for requirement in OPTIONAL[extra]:
        name, extras = _distribution(requirement)
        if name == "saq-wrappers":
            for inner in extras:
                found |= _installs(inner)
        else:
            found.add(name)
    return found


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of the libraries ``path`` imports anywhere (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in {"saq_wrappers", "__future__"}}


#: Import name -> distribution, for the installed libraries whose two names differ.
_DISTRIBUTIONS = {name: dists[0] for name, dists in importlib.metadata.packages_distributions().items()}
#: Source (file or folder, relative to the root) -> the extras that install what it imports; the
#: longest matching key counts, and a module of integrations/ that no other key names (the
#: package itself, the algorithm names) may import the core's libraries only.
SOURCE_EXTRAS = {
    "integrations": (),
    "integrations/_hdf5.py": ("d4rl",),
    "integrations/d4rl.py": ("d4rl",),
    "integrations/d3rlpy": ("d3rlpy",),
    "integrations/gymnasium_robotics": ("robotics",),
    "integrations/minari": ("minari",),
    "integrations/robomimic": ("robosuite",),
    "integrations/sb3": ("sb3",),
    "app": (*{e for extras in cli.COMMAND_EXTRAS.values() for e in extras}, *cli.ENV_EXTRAS.values()),
}
#: The legacy ``gym``, imported only to silence its notice when d3rlpy has installed it.
_NOT_REQUIRED = {"gym"}


def _sources() -> list[Path]:
    return sorted((ROOT / "integrations").rglob("*.py")) + sorted((ROOT / "app").rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_is_installed_by_an_extra(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    owners = [key for key in SOURCE_EXTRAS if relative == key or relative.startswith(key + "/")]
    extras = SOURCE_EXTRAS[max(owners, key=len)]
    available = {_distribution(r)[0] for r in PYPROJECT["project"]["dependencies"]}
    for extra in extras:
        available |= _installs(extra)
    for name in _third_party_imports(path) - _NOT_REQUIRED:
        distribution = _distribution(_DISTRIBUTIONS.get(name, name))[0]
        assert distribution in available, f"{relative} imports {name}, which none of {extras} installs"


def test_every_library_of_the_saq_command_has_its_extra() -> None:
    """The CLI knows every optional library an app module imports, every command has its
    extras, and each library is installed by the extras of the commands or by its env extra."""
    imported = set().union(*(_third_party_imports(p) for p in (ROOT / "app").rglob("*.py"))) - CORE
    assert imported <= cli.OPTIONAL_LIBRARIES, imported - cli.OPTIONAL_LIBRARIES
    commands = {"quickstart"} | {" ".join(path) for path in cli._RECIPES}
    assert set(cli.COMMAND_EXTRAS) == commands
    installed = set().union(*(_installs(e) for extras in cli.COMMAND_EXTRAS.values() for e in extras))
    for library in cli.OPTIONAL_LIBRARIES:
        assert _distribution(_DISTRIBUTIONS.get(library, library))[0] in installed, library
    for library, extra in cli.ENV_EXTRAS.items():
        assert _distribution(_DISTRIBUTIONS.get(library, library))[0] in _installs(extra), library
    assert "mujoco" in _installs("robosuite")  # robosuite envs run on MuJoCo, in its range


def test_the_core_installs_only_what_it_imports_and_all_holds_every_extra() -> None:
    assert {_distribution(r)[0] for r in PYPROJECT["project"]["dependencies"]} == CORE
    assert "pytest" not in _installs("all") and "sphinx" not in _installs("all")
    every = set(OPTIONAL) - {"all", "robotics", "adroit", "docs", "dev"}
    assert {e for r in OPTIONAL["all"] for e in _distribution(r)[1]} == every
    # gymnasium-robotics needs its own MuJoCo range (a second virtualenv); `adroit` is its old name
    assert "gymnasium-robotics" in _installs("robotics") and _installs("bench") <= _installs("robotics")
    assert _installs("adroit") == _installs("robotics") and "gymnasium-robotics" not in _installs("all")
    assert _installs("all") | {"sphinx", "myst-parser", "furo", "sphinx-mathjax-offline"} == _installs("docs")
    assert _installs("docs") | {"pytest"} == _installs("dev")
