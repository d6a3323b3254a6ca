"""robosuite 1.5.1: robomimic envs rebuilt from env_args, scripted Lift demos that replay to success."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from saq_wrappers.errors import DataError

robosuite = pytest.importorskip("robosuite")

from saq_wrappers.app import lift_demos as lift_demos_cli  # noqa: E402
from saq_wrappers.integrations.robomimic import (  # noqa: E402
    DEFAULT_OBS_KEYS,
    LIFT_OBS_KEYS,
    generate_lift_demos,
    load_robomimic,
    make_robomimic_env,
    replay_demo,
)
from robomimic_env_args import LIFT_ENV_ARGS_V14 as V14_ARGS  # noqa: E402


@pytest.fixture(scope="module")
def lift_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("lift") / "lift_demos.hdf5"
    stats = generate_lift_demos(path, n_demos=2, seed=3, progress=False, valid_fraction=0.5)
    return path, stats


def test_v14_env_args_rebuild_lift() -> None:
    env = make_robomimic_env(V14_ARGS)
    try:
        observation, _ = env.reset(seed=0)
        assert observation.shape == (19,) == env.observation_space.shape
        assert env.action_space.shape == (7,)
        controller = env.env_args["env_kwargs"]["controller_configs"]
        assert controller["type"] == "BASIC" and controller["body_parts"]["right"]["type"] == "OSC_POSE"
        assert env.horizon == 400
        raw = env.observation_dict()
        np.testing.assert_allclose(observation[:3], raw["robot0_eef_pos"], rtol=1e-6)
        np.testing.assert_allclose(observation[9:19], raw["object"], rtol=1e-6)
        again, _ = env.reset(seed=0)
        np.testing.assert_array_equal(again, observation)  # seeded resets are reproducible
        _, reward, terminated, truncated, info = env.step(np.zeros(7))
        assert info["is_success"] is False and not terminated and not truncated and reward == 0.0
    finally:
        env.close()


def test_env_args_robosuite_does_not_know() -> None:
    with pytest.raises(DataError, match=r"'env_name' is 'LiftTheMoon'.*does not know.*Lift"):
        make_robomimic_env({**V14_ARGS, "env_name": "LiftTheMoon"})
    with pytest.raises(DataError, match=r"'type' is 2, expected 1"):
        make_robomimic_env({**V14_ARGS, "type": 2})


def test_env_args_from_a_file_without_them(tmp_path: Path) -> None:
    path = tmp_path / "no_args.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_group("data")
    with pytest.raises(DataError, match=r"no_args.hdf5.*missing data.attrs\['env_args'\]"):
        make_robomimic_env(path)


def test_generated_lift_demos_load_and_replay_to_success(lift_file: tuple[Path, dict]) -> None:
    path, stats = lift_file
    assert stats["n_demos"] == 2 and stats["attempts"] >= 2
    data = load_robomimic(path)
    assert data.n_episodes == 2 and data.terminals.sum() == 2 and not data.timeouts.any()
    for episode in data.episode_slices():
        assert data.rewards[episode.stop - 1] == 1.0
        assert (data.rewards[episode.start : episode.stop - 1] == 0.0).all()
    assert load_robomimic(path, filter_key="train").n_episodes == 1
    with h5py.File(path, "r") as handle:
        env_args = json.loads(handle["data"].attrs["env_args"])
        assert env_args["env_name"] == "Lift" and env_args["type"] == 1
        assert set(LIFT_OBS_KEYS) <= set(handle["data/demo_0/obs"].keys())
        assert handle["data/demo_0/states"].shape[0] == handle["data/demo_0/actions"].shape[0]
        actions = np.concatenate([handle[f"data/demo_{i}/actions"][()] for i in range(2)])
    assert np.abs(actions).max() <= 1.0 and actions[:, :3].std() > 0.05  # noisy, not constant

    env = make_robomimic_env(path, DEFAULT_OBS_KEYS)
    try:
        for demo in ("demo_0", "demo_1"):
            by_seed = replay_demo(path, demo, env=env)
            assert by_seed["success"] and by_seed["success_step"] == by_seed["steps"] - 1
            assert by_seed["initial_state_error"] == 0.0 and by_seed["max_state_error"] == 0.0
        by_state = replay_demo(path, "demo_0", env=env, from_states=True)  # robomimic's way
        assert by_state["initial_state_error"] == 0.0 and by_state["success"]
    finally:
        env.close()


def test_lift_demos_command_writes_what_the_library_writes(
    lift_file: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library_path, _ = lift_file
    path = tmp_path / "cli.hdf5"
    args = lift_demos_cli.build_parser().parse_args(
        ["--output", str(path), "--demos", "1", "--seed", "3", "--quiet"]
    )
    assert lift_demos_cli.run(args) == 0
    assert capsys.readouterr().out.startswith(f"wrote 1 demos to {path} (")
    assert load_robomimic(path).n_episodes == 1
    # The same seed replays the same attempts: the command's one demo is the library's first.
    with h5py.File(path, "r") as cli, h5py.File(library_path, "r") as library:
        assert cli["data"].attrs["generator_seed"] == 3
        assert cli["data/demo_0"].attrs["seed"] == library["data/demo_0"].attrs["seed"]
        np.testing.assert_array_equal(cli["data/demo_0/actions"][()], library["data/demo_0/actions"][()])
