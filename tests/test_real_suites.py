"""The suites on the real benchmarks (``d4rl-adroit``, ``d4rl-locomotion``, ``robomimic``), offline
(the ``kitchen`` suite: ``tests/test_kitchen_suite.py``).

The tests write small datasets under the real Minari ids (``mujoco/hopper/expert-v0``,
``D4RL/pen/human-v2``) with the real env specs and reference scores in their metadata, into a
temporary ``$MINARI_DATASETS_PATH``, and small robomimic-format files; so a user's download takes
the same path. Minari's download function fails the test if anything calls it unasked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.harness.backends import run_grid  # noqa: E402
from benchmarks.harness.real_suites import (  # noqa: E402
    ROBOTICS_INSTALL,
    build_real_suite,
    fetch_and_check,
    real_suite_datasets,
)
from benchmarks.harness.runner import result_path  # noqa: E402
from benchmarks.run import main  # noqa: E402
from saq_wrappers.app.datasets import DatasetSpec, load_dataset  # noqa: E402
from saq_wrappers.app.experiment import EvaluationSettings  # noqa: E402
from saq_wrappers.errors import DataError  # noqa: E402
from saq_wrappers.integrations.minari import load_minari, minari_info, write_minari_dataset  # noqa: E402
from saq_wrappers.integrations.robomimic import DEFAULT_OBS_KEYS, write_robomimic  # noqa: E402

#: D4RL's reference returns (random, expert) of Hopper and of the Adroit pen task.
HOPPER_REF = (-20.272305, 3234.3)
PEN_REF = (96.262799, 3076.8331017)
PEN_ENTRY_POINT = "gymnasium_robotics.envs.adroit_hand.adroit_pen:AdroitHandPenEnv"
PEN_SPEC = EnvSpec(id="AdroitHandPen-v1", entry_point=PEN_ENTRY_POINT, max_episode_steps=100,
                   kwargs={"reward_type": "dense"})
PEN_OBS = gym.spaces.Box(-np.inf, np.inf, (45,), np.float64)
PEN_ACT = gym.spaces.Box(-1.0, 1.0, (24,), np.float32)
LOCOMOTION_IDS = [f"mujoco/{env}/{recipe}-v0" for env in ("hopper", "walker2d", "halfcheetah")
                  for recipe in ("expert", "medium")]
ADROIT_IDS = [f"D4RL/{task}/human-v2" for task in ("pen", "door", "hammer", "relocate")]


@pytest.fixture()
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty local Minari folder, and a Minari that fails the test if asked to download."""
    root = tmp_path / "minari"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))

    def no_download(dataset_id: str, *args: Any, **kwargs: Any) -> None:
        pytest.fail(f"Minari was asked to download {dataset_id!r}")

    monkeypatch.setattr(minari, "download_dataset", no_download)
    return root


def _random_episodes(n: int, steps: int, obs: gym.spaces.Box, act: gym.spaces.Box, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"observations": rng.normal(size=(steps + 1,) + obs.shape).astype(obs.dtype),
             "actions": rng.uniform(act.low, act.high, size=(steps,) + act.shape).astype(act.dtype),
             "rewards": rng.normal(size=steps), "terminations": [False] * steps,
             "truncations": [False] * (steps - 1) + [True]} for _ in range(n)]


def _write_locomotion(root: Path, dataset_id: str, rollouts: bool = False) -> Path:
    """A small dataset under a real ``mujoco/<env>/<recipe>-v0`` id, with that env's v5 spec and
    reference scores in its metadata; ``rollouts``: real random-policy episodes of the env."""
    title = {"hopper": "Hopper", "walker2d": "Walker2d", "halfcheetah": "HalfCheetah"}[dataset_id.split("/")[1]]
    spec = gym.spec(f"{title}-v5")
    env = gym.make(spec)
    if rollouts:
        episodes = []
        for seed in range(4):
            obs, _ = env.reset(seed=seed)
            observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
            for t in range(60):
                action = env.action_space.sample()
                obs, reward, terminated, truncated, _ = env.step(action)
                observations.append(obs)
                actions.append(action)
                rewards.append(reward)
                terminations.append(terminated)
                truncations.append(truncated or (t == 59 and not terminated))
                if terminated:
                    break
            episodes.append({"observations": np.array(observations), "actions": np.array(actions),
                             "rewards": rewards, "terminations": terminations, "truncations": truncations})
    else:
        episodes = _random_episodes(2, 5, env.observation_space, env.action_space, seed=0)
    metadata = {"ref_min_score": HOPPER_REF[0], "ref_max_score": HOPPER_REF[1], "num_episodes_average_score": 100,
                "algorithm_name": "SB3/SAC", "description": "test stand-in"}
    folder = write_minari_dataset(dataset_id, episodes, env.observation_space, env.action_space, env_spec=spec,
                                  metadata=metadata, root=root)
    env.close()
    return folder


def _write_pen(root: Path) -> Path:
    """``D4RL/pen/human-v2`` as Minari stores it: AdroitHandPen-v1 from gymnasium-robotics."""
    metadata = {"ref_min_score": PEN_REF[0], "ref_max_score": PEN_REF[1], "num_episodes_average_score": 100,
                "description": "test stand-in"}
    return write_minari_dataset("D4RL/pen/human-v2", _random_episodes(3, 20, PEN_OBS, PEN_ACT, seed=1), PEN_OBS,
                                PEN_ACT, env_spec=PEN_SPEC, metadata=metadata, root=root)


# ---------------------------------------------------------------------------------- budgets
def test_locomotion_suite_ids_budgets_and_shortening() -> None:
    runs = build_real_suite("d4rl-locomotion")
    assert sorted({r.dataset.source for r in runs}) == sorted(LOCOMOTION_IDS)
    assert len(runs) == 6 * 9 * 3 and {r.seed for r in runs} == {0, 1, 2}
    assert {r.algo for r in runs} == {"BC", "CQL", "IQL", "TD3+BC", "SAQ-BC", "SAQ-CQL", "SAQ-IQL", "SAQ-BRAC", "ARQ"}
    for run in runs:
        assert run.dataset.kind == "minari" and not run.dataset.download
        assert run.dataset.ref_min is None and run.dataset.ref_max is None  # the dataset's own scores
        assert run.steps == 1_000_000 and run.hidden is None
        assert (run.quantizer.n_codes, run.quantizer.hidden, run.quantizer.steps) == (64, (512, 512), 500_000)
        # SAQ-IQL acts by sampling its code, as the authors' scripts evaluate it; the rest greedily
        greedy = run.algo != "SAQ-IQL"
        assert run.evaluation == EvaluationSettings(episodes=10, curve_points=20, curve_episodes=10, greedy=greedy)
        assert run.batch_size == (512 if run.algo == "ARQ" else 256)
    arq = next(r.arq for r in runs if r.algo == "ARQ")
    assert (arq.n_samples, arq.kth, arq.fit_steps, arq.learning_rate, arq.alpha) == (30, 9, 1_000_000, 3e-4, 1.0)
    assert (arq.policy, arq.ode_steps) == ("awr", 28)  # the paper's D4RL policy; the validated solver
    hopper = next(r for r in runs if r.dataset.source == "mujoco/hopper/expert-v0")
    assert hopper.dataset.paper_key == "hopper-expert-v2" and hopper.dataset.name == "mujoco-hopper-expert-v0"

    short = build_real_suite("d4rl-locomotion", budget_scale=0.01)
    # the same runs; SAQ run ids name the quantizer budget, which the scale changes
    assert [re.sub(r"-q\d+(-sampled)?__", r"\1__", r.run_id) for r in short] == [
        re.sub(r"-q\d+(-sampled)?__", r"\1__", r.run_id) for r in runs]
    assert any("-q500000__" in r.run_id for r in runs) and not any("-q" in r.run_id for r in short)
    for full, cut in zip(runs, short):
        assert (cut.steps, cut.quantizer.steps, cut.arq.fit_steps) == (10_000, 5_000, 10_000)
        assert cut.evaluation.curve_points == 1 and cut.evaluation.episodes == 10
        assert cut.fingerprint() != full.fingerprint()  # a short result is never taken for a full one
        assert "x0.01" in cut.tag
    half = build_real_suite("d4rl-locomotion", budget_scale=0.5, algos=["BC"], seeds=[0])
    assert half[0].steps == 500_000 and half[0].evaluation.curve_points == 10
    for bad in (0, 1.5, -0.1):
        with pytest.raises(DataError, match="budget scale"):
            build_real_suite("d4rl-locomotion", budget_scale=bad)

    fetching = build_real_suite("d4rl-locomotion", download=True)
    assert all(r.dataset.download for r in fetching)
    assert [r.fingerprint() for r in fetching] == [r.fingerprint() for r in runs]  # how data is fetched is no setting
    given = build_real_suite("d4rl-locomotion", datasets=[DatasetSpec.parse("minari:mujoco/hopper/medium-v0")],
                             download=True, algos=["BC"], seeds=[0])
    assert given[0].dataset.download and given[0].steps == 1_000_000  # --dataset keeps --download and the budgets


def test_every_process_reading_a_run_registers_installed_gymnasium_robotics(tmp_path: Path) -> None:
    """Pool and Ray workers start with ``init_worker``, never the suite code itself: it registers
    gymnasium-robotics' envs where that package is installed (here a stand-in on PYTHONPATH), so
    the resolver can rebuild the Adroit env in a worker."""
    package = tmp_path / "site" / "gymnasium_robotics"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from gymnasium.envs.registration import register\n"
        f"register(id='AdroitHandPen-v1', entry_point={PEN_ENTRY_POINT!r}, max_episode_steps=100)\n")
    code = ("import gymnasium, benchmarks.harness.runner as runner; before = 'AdroitHandPen-v1' in gymnasium.registry; "
            "runner.init_worker(); print(before, 'AdroitHandPen-v1' in gymnasium.registry)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["False", "True"]


# ---------------------------------------------------------------------------------- adroit
def test_adroit_reads_the_local_dataset_and_names_the_install_line(
    minari_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_pen(minari_root)
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # not importable, even where installed
    monkeypatch.delitem(gym.registry, "AdroitHandPen-v1", raising=False)  # nor registered by an earlier import

    runs = build_real_suite("d4rl-adroit")
    assert sorted({r.dataset.source for r in runs}) == sorted(ADROIT_IDS) and len(runs) == 4 * 9 * 3
    for run in runs:
        assert not run.dataset.download and run.steps == 1_000_000
        assert run.evaluation == EvaluationSettings(episodes=20, curve_points=20, curve_episodes=20,
                                                    greedy=run.algo != "SAQ-IQL")
    arq = next(r.arq for r in runs if r.algo == "ARQ")
    assert (arq.fit_steps, arq.learning_rate, arq.alpha, arq.kth) == (300_000, 1e-4, 10.0, 9)

    pen, door = (next(r.dataset for r in runs if r.dataset.source == f"D4RL/{t}/human-v2") for t in ("pen", "door"))
    pen.check()  # found in $MINARI_DATASETS_PATH
    with pytest.raises(DataError, match="minari download D4RL/door/human-v2"):
        door.check()
    data = load_minari(pen.source)
    info = minari_info(pen.source)
    assert len(data) == 3 * 20 and data.observations.shape[1] == 45
    assert (info.ref_min_score, info.ref_max_score) == PEN_REF
    assert info.env_spec is not None and info.env_spec.entry_point == PEN_ENTRY_POINT

    with pytest.raises(DataError) as raised:
        fetch_and_check([pen, door])
    message = str(raised.value)
    assert ROBOTICS_INSTALL in message and "gymnasium-robotics" in message and "second virtualenv" in message
    # the resolver alone refuses the unregistered env (issue 11), before any training
    with pytest.raises(DataError, match="not in the installed Gymnasium registry"):
        load_dataset(pen)

    code = main(["--suite", "d4rl-adroit", "--algos", "BC", "--seeds", "0", "--backend", "serial",
                 "--out", str(tmp_path / "out")])
    assert code == 2 and ROBOTICS_INSTALL in capsys.readouterr().err


def test_adroit_env_is_rebuilt_once_gymnasium_robotics_registers_it(
    minari_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With gymnasium-robotics present (here a stand-in registering AdroitHandPen-v1 under its
    real entry point), the same dataset passes the check and its env is rebuilt from metadata."""

    class FakePen(gym.Env[np.ndarray, np.ndarray]):
        observation_space = PEN_OBS
        action_space = PEN_ACT

        def __init__(self, reward_type: str = "dense") -> None:
            self.reward_type = reward_type

        def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
            super().reset(seed=seed)
            return np.zeros(45), {}

        def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
            return np.zeros(45), 0.0, False, False, {}

    names = ["gymnasium_robotics", "gymnasium_robotics.envs", "gymnasium_robotics.envs.adroit_hand",
             "gymnasium_robotics.envs.adroit_hand.adroit_pen"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(sys.modules[names[-1]], "AdroitHandPenEnv", FakePen, raising=False)
    monkeypatch.setitem(gym.registry, "AdroitHandPen-v1", PEN_SPEC)
    _write_pen(minari_root)

    pen = real_suite_datasets("d4rl-adroit")[0]
    lines = fetch_and_check([pen])
    assert lines == [f"found D4RL-pen-human-v2: {minari_root / 'D4RL/pen/human-v2' / 'data'} (env AdroitHandPen-v1, "
                     f"reference returns {PEN_REF[0]:g} / {PEN_REF[1]:g})"]
    loaded = load_dataset(pen)
    env = loaded.make_env()
    assert isinstance(env.unwrapped, FakePen) and env.spec is not None and env.spec.max_episode_steps == 100
    env.close()
    assert (loaded.random_return, loaded.expert_return) == PEN_REF


# ---------------------------------------------------------------------------------- downloads
def test_download_only_when_asked_and_once_in_the_harness(
    minari_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--algos", "BC", "--seeds", "0", "--backend", "serial", "--out", str(tmp_path / "out")]
    assert main(["--suite", "d4rl-locomotion", *out]) == 2  # nothing local, nothing downloaded
    err = capsys.readouterr().err
    assert "missing datasets (pass --download" in err and "minari download mujoco/hopper/expert-v0" in err

    asked: list[str] = []

    def fake_download(dataset_id: str, *args: Any, **kwargs: Any) -> None:
        """Minari's download, offline: the dataset appears under $MINARI_DATASETS_PATH."""
        asked.append(dataset_id)
        _write_locomotion(minari_root, dataset_id)

    monkeypatch.setattr(minari, "download_dataset", fake_download)
    assert main(["--suite", "d4rl-locomotion", "--download", "--prepare-only", *out]) == 0
    assert sorted(asked) == sorted(LOCOMOTION_IDS)
    printed = capsys.readouterr().out
    assert printed.count("downloaded ") == 6 and "reference returns -20.2723 / 3234.3" in printed
    assert main(["--suite", "d4rl-locomotion", "--download", "--prepare-only", *out]) == 0
    assert len(asked) == 6 and capsys.readouterr().out.count("found ") == 6  # local now: read, not fetched again


# ---------------------------------------------------------------------------------- end to end
def test_locomotion_run_end_to_end_scores_with_the_metadata_reference(minari_root: Path, tmp_path: Path) -> None:
    _write_locomotion(minari_root, "mujoco/hopper/expert-v0", rollouts=True)
    runs = build_real_suite("d4rl-locomotion", algos=["SAQ-BC"], seeds=[0], budget_scale=3e-5, eval_episodes=1)
    run = next(r for r in runs if r.dataset.source == "mujoco/hopper/expert-v0")
    assert (run.steps, run.quantizer.steps, run.evaluation.episodes, run.evaluation.curve_points) == (30, 15, 1, 1)
    # tiny networks and a one-episode curve point keep the test short; the budgets are the suite's
    run = dataclasses.replace(run, hidden=(32, 32), evaluation=dataclasses.replace(run.evaluation, curve_episodes=1),
                              quantizer=dataclasses.replace(run.quantizer, n_codes=8, hidden=(32, 32)))
    assert fetch_and_check([run.dataset])[0].startswith("found mujoco-hopper-expert-v0")

    summary = run_grid([run], tmp_path / "out", backend="serial", log=lambda _: None)
    assert summary.executed == [run.run_id] and not summary.failed
    record = json.loads(result_path(tmp_path / "out", run).read_text())
    assert record["training"]["steps"] >= 30 and len(record["evaluation"]["returns"]) == 1
    assert (record["data"]["random_return"], record["data"]["expert_return"]) == HOPPER_REF
    low, high = HOPPER_REF
    mean_return = record["evaluation"]["mean_return"]
    assert record["metric"] == "normalized"
    assert record["score"] == pytest.approx(100.0 * (mean_return - low) / (high - low))
    assert record["spec"]["steps"] == 30 and record["spec"]["quantizer"]["steps"] == 15


# ---------------------------------------------------------------------------------- robomimic
ROBOMIMIC_SHAPES = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "object": 10}


def _write_robomimic(path: Path, env_name: str, train_mask: bool = True) -> Path:
    rng = np.random.default_rng(0)
    demos = []
    for _ in range(3):
        steps = 4
        obs = {key: rng.normal(size=(steps, width)) for key, width in ROBOMIMIC_SHAPES.items()}
        demos.append({"obs": obs, "next_obs": {k: v + 1 for k, v in obs.items()},
                      "actions": rng.uniform(-1, 1, (steps, 7)), "rewards": np.array([0, 0, 0, 1.0]),
                      "dones": np.array([0, 0, 0, 1])})
    path.parent.mkdir(parents=True, exist_ok=True)
    masks = {"train": ["demo_0", "demo_2"], "valid": ["demo_1"]} if train_mask else None
    return write_robomimic(path, demos, {"env_name": env_name, "type": 1, "env_kwargs": {"robots": ["Panda"]}},
                           masks=masks)


def test_robomimic_suite_from_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lift = _write_robomimic(tmp_path / "lift" / "ph" / "low_dim_v141.hdf5", "Lift")
    hang = _write_robomimic(tmp_path / "tool_hang" / "ph" / "low_dim_v141.hdf5", "ToolHang", train_mask=False)
    can_mg = _write_robomimic(tmp_path / "can_mg_low_dim.hdf5", "PickPlaceCan")
    runs = build_real_suite("robomimic", data=[lift, hang, can_mg])
    by_name = {r.dataset.name: r for r in runs}
    assert sorted(by_name) == ["robomimic-can-mg", "robomimic-lift-ph", "robomimic-tool_hang-ph"]
    assert len(runs) == 3 * 9 * 3
    expected = {"robomimic-lift-ph": (400, "train", "robomimic-lift-ph"),
                "robomimic-tool_hang-ph": (700, None, "robomimic-tool_hang-ph"),
                "robomimic-can-mg": (400, "train", "robomimic-can-mg")}
    for name, (horizon, filter_key, paper_key) in expected.items():
        ds = by_name[name].dataset
        assert (ds.kind, ds.horizon, ds.filter_key, ds.paper_key, ds.metric) == ("robomimic", horizon, filter_key,
                                                                                 paper_key, "success")
    for run in runs:
        assert run.evaluation.episodes == 50 and run.steps == 1_000_000
    arq = {r.dataset.name: r.arq for r in runs if r.algo == "ARQ"}
    assert (arq["robomimic-lift-ph"].fit_steps, arq["robomimic-lift-ph"].alpha) == (150_000, 0.1)
    assert (arq["robomimic-can-mg"].fit_steps, arq["robomimic-can-mg"].alpha) == (1_000_000, 1.0)
    # the resolver reads the train split (2 of 3 demos), without building robosuite
    data = load_dataset(by_name["robomimic-lift-ph"].dataset)
    assert len(data.transitions) == 2 * 4 and data.transitions.observations.shape[1] == sum(ROBOMIMIC_SHAPES.values())
    assert data.metadata["obs_keys"] == list(DEFAULT_OBS_KEYS)

    transport = _write_robomimic(tmp_path / "transport" / "ph" / "low_dim.hdf5", "TwoArmTransport")
    with pytest.raises(DataError, match="TwoArmTransport needs the second arm"):
        build_real_suite("robomimic", data=[transport])
    with pytest.raises(DataError, match="same dataset twice"):
        build_real_suite("robomimic", data=[lift, lift])
    with pytest.raises(DataError, match="does not exist"):
        build_real_suite("robomimic", data=[tmp_path / "nothing.hdf5"])
    with pytest.raises(DataError, match="pass them with --data"):
        build_real_suite("robomimic")
    with pytest.raises(DataError, match="--data is for --suite robomimic"):
        build_real_suite("d4rl-locomotion", data=[lift])

    assert main(["--suite", "robomimic", "--list"]) == 2
    assert "pass them with --data PATH" in capsys.readouterr().err
    assert main(["--suite", "robomimic", "--data", str(lift), "--data", str(hang), str(can_mg), "--algos", "BC",
                 "--seeds", "0", "--list"]) == 0  # --data takes several files, and repeats
    listed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [f"robomimic-{name}__BC__seed0" for name in ("lift-ph", "tool_hang-ph", "can-mg")]


def test_real_options_are_refused_for_the_generated_suites(capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["--download"], ["--budget-scale", "0.1"], ["--data", "x.hdf5"]):
        assert main(["--suite", "small", "--list", *extra]) == 2
        assert "for the real-benchmark suites" in capsys.readouterr().err
