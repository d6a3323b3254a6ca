"""robomimic hdf5: exact reads in a stated key order, relabeled copies unchanged but for the codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from robomimic_env_args import LIFT_ENV_ARGS_V14

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.robomimic import (
    DEFAULT_OBS_KEYS,
    convert_env_args,
    load_robomimic,
    read_env_args,
    robomimic_layout,
    write_relabeled_robomimic,
)

# Shapes of the low-dim keys in robomimic's Lift data, plus an image key that is never default.
OBS_SHAPES = {
    "robot0_eef_pos": (3,),
    "robot0_eef_quat": (4,),
    "robot0_gripper_qpos": (2,),
    "object": (10,),
    "agentview_image": (4, 4, 3),
}
# demo name -> (length, dones[-1]); demo_10 checks numeric (not lexicographic) order.
DEMOS = {"demo_0": (5, True), "demo_1": (3, False), "demo_2": (4, True), "demo_10": (2, True)}
ORDER = ["demo_0", "demo_1", "demo_2", "demo_10"]


def _value(demo: int, key: str, t: int, shape: tuple[int, ...], next_: bool = False) -> np.ndarray:
    base = 1000 * demo + 100 * list(OBS_SHAPES).index(key) + t + (0.5 if next_ else 0.0)
    return (base + 0.001 * np.arange(int(np.prod(shape)))).reshape(shape)


def _make_file(path: Path, next_obs: bool = True, **drop: Any) -> Path:
    with h5py.File(path, "w") as handle:
        data = handle.create_group("data")
        total = 0
        for name, (steps, done) in DEMOS.items():
            index = int(name.split("_")[1])
            demo = data.create_group(name)
            demo.attrs["num_samples"] = steps
            demo.attrs["model_file"] = f"<mujoco model='{name}'/>"
            demo.create_dataset("actions", data=np.stack([np.full(7, index + 0.01 * t) for t in range(steps)]))
            demo.create_dataset("rewards", data=np.array([float(done and t == steps - 1) for t in range(steps)]))
            dones = np.zeros(steps, dtype=np.int64)
            dones[-1] = int(done)
            demo.create_dataset("dones", data=dones)
            demo.create_dataset("states", data=np.arange(steps * 5, dtype=np.float64).reshape(steps, 5))
            for group, is_next in (("obs", False), ("next_obs", True)):
                if group == "next_obs" and not next_obs:
                    continue
                sub = demo.create_group(group)
                for key, shape in OBS_SHAPES.items():
                    values = np.stack([_value(index, key, t, shape, is_next) for t in range(steps)])
                    dtype = np.uint8 if key.endswith("image") else np.float64
                    sub.create_dataset(key, data=(values % 256 if dtype == np.uint8 else values).astype(dtype))
            total += steps
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(LIFT_ENV_ARGS_V14)
        mask = handle.create_group("mask")
        mask.create_dataset("train", data=np.array([b"demo_0", b"demo_2", b"demo_10"]))
        mask.create_dataset("valid", data=np.array([b"demo_1"]))
    return path


def _flat(demo: int, keys: tuple[str, ...], t: int, next_: bool = False) -> np.ndarray:
    return np.concatenate([_value(demo, k, t, OBS_SHAPES[k], next_).reshape(-1) for k in keys])


def test_load_default_keys_in_order_exact(tmp_path: Path) -> None:
    path = _make_file(tmp_path / "lift.hdf5")
    data = load_robomimic(path)
    layout = robomimic_layout(path)
    assert layout.obs_keys == DEFAULT_OBS_KEYS
    assert layout.obs_slices == {
        "robot0_eef_pos": (0, 3), "robot0_eef_quat": (3, 7), "robot0_gripper_qpos": (7, 9), "object": (9, 19)
    }
    assert layout.demos == tuple(ORDER) and layout.env_args == LIFT_ENV_ARGS_V14
    assert data.observation_shape == (19,) and data.action_dim == 7
    slices = list(data.episode_slices())
    assert [s.stop - s.start for s in slices] == [DEMOS[n][0] for n in ORDER]
    for sl, name in zip(slices, ORDER):
        index = int(name.split("_")[1])
        steps, done = DEMOS[name]
        for t in range(steps):
            np.testing.assert_allclose(data.observations[sl.start + t], _flat(index, DEFAULT_OBS_KEYS, t), rtol=1e-6)
            np.testing.assert_allclose(data.next_observations[sl.start + t], _flat(index, DEFAULT_OBS_KEYS, t, True), rtol=1e-6)
            np.testing.assert_allclose(data.actions[sl.start + t], index + 0.01 * t, rtol=1e-6)
        assert data.terminals[sl.stop - 1] == done and data.timeouts[sl.stop - 1] == (not done)


def test_chosen_keys_and_filter_key(tmp_path: Path) -> None:
    path = _make_file(tmp_path / "lift.hdf5")
    keys = ("object", "agentview_image", "robot0_eef_pos")
    train = load_robomimic(path, obs_keys=keys, filter_key="train")
    layout = robomimic_layout(path, keys, filter_key="train")
    assert layout.demos == ("demo_0", "demo_2", "demo_10")
    assert layout.obs_slices["agentview_image"] == (10, 58) and layout.obs_dim == 61
    assert train.n_episodes == 3 and len(train) == 5 + 4 + 2
    first_of_demo_2 = train.observations[5]
    np.testing.assert_allclose(first_of_demo_2[:10], _value(2, "object", 0, (10,)), rtol=1e-6)
    np.testing.assert_allclose(first_of_demo_2[58:], _value(2, "robot0_eef_pos", 0, (3,)), rtol=1e-6)
    valid = load_robomimic(path, filter_key="valid")
    assert valid.n_episodes == 1 and len(valid) == 3 and valid.timeouts[-1]


def test_without_next_obs_keeps_terminal_and_drops_cut_last_step(tmp_path: Path) -> None:
    path = _make_file(tmp_path / "no_next.hdf5", next_obs=False)
    data = load_robomimic(path)
    # demo_1 (not done) loses its last step; the done demos keep theirs.
    assert [s.stop - s.start for s in data.episode_slices()] == [5, 2, 4, 2]
    sl = list(data.episode_slices())[1]
    np.testing.assert_allclose(data.next_observations[sl.stop - 1], _flat(1, DEFAULT_OBS_KEYS, 2), rtol=1e-6)
    assert data.timeouts[sl.stop - 1]


def _edit(path: Path, action) -> Path:  # type: ignore[no-untyped-def]
    with h5py.File(path, "r+") as handle:
        action(handle)
    return path


def test_bad_inputs_name_file_key_and_expectation(tmp_path: Path) -> None:
    path = _make_file(tmp_path / "a.hdf5")
    with pytest.raises(DataError, match=r"a.hdf5.*observation key 'robot0_joint_pos' not in /data/demo_0/obs.*available"):
        load_robomimic(path, obs_keys=("robot0_joint_pos",))
    with pytest.raises(DataError, match=r"a.hdf5.*missing filter key 'mask/test'.*train"):
        load_robomimic(path, filter_key="test")

    path = _edit(_make_file(tmp_path / "b.hdf5"), lambda h: h.__delitem__("data/demo_2/rewards"))
    with pytest.raises(DataError, match=r"b.hdf5.*missing dataset /data/demo_2/rewards"):
        load_robomimic(path)

    def shorten(handle: h5py.File) -> None:
        del handle["data/demo_1/obs/object"]
        handle["data/demo_1/obs"].create_dataset("object", data=np.zeros((2, 10)))

    path = _edit(_make_file(tmp_path / "c.hdf5"), shorten)
    with pytest.raises(DataError, match=r"c.hdf5.*/data/demo_1/obs/object has 2 rows, expected 3"):
        load_robomimic(path)

    path = _edit(_make_file(tmp_path / "d.hdf5"), lambda h: h.__delitem__("data"))
    with pytest.raises(DataError, match=r"d.hdf5.*missing group 'data'"):
        load_robomimic(path)

    path = _edit(_make_file(tmp_path / "e.hdf5"), lambda h: h.__delitem__("data/demo_0/obs"))
    with pytest.raises(DataError, match=r"e.hdf5.*missing group /data/demo_0/obs"):
        load_robomimic(path)


class SumQuantizer:
    """Deterministic stand-in: code from the observation's first column and the action."""

    n = 5

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        assert obs.shape[1] == 19 and actions.shape[1] == 7
        return (obs[:, 0].astype(np.int64) + np.round(actions[:, 0] * 100).astype(np.int64)) % self.n


def _all_items(handle: h5py.File) -> dict[str, Any]:
    """Every group/dataset path with its attrs, and every dataset's dtype, shape and values."""
    items: dict[str, Any] = {"/": dict(handle.attrs)}

    def visit(name: str, obj: Any) -> None:
        entry: dict[str, Any] = {"attrs": dict(obj.attrs)}
        if isinstance(obj, h5py.Dataset):
            entry.update(dtype=obj.dtype, shape=obj.shape, value=obj[()])
        items[name] = entry

    handle.visititems(visit)
    return items


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return bool(a == b)


def test_relabeled_copy_is_unchanged_apart_from_the_codes(tmp_path: Path) -> None:
    src = _make_file(tmp_path / "lift.hdf5")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dst = write_relabeled_robomimic(src, tmp_path / "lift_codes.hdf5", SumQuantizer())
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest  # input untouched
    with h5py.File(src, "r") as a, h5py.File(dst, "r") as b:
        original, copy = _all_items(a), _all_items(b)
        for name, entry in original.items():
            assert name in copy, name
            if name == "data":
                added = {k: v for k, v in copy[name]["attrs"].items() if k not in entry["attrs"]}
                assert set(added) == {"saq_quantizer", "saq_obs_keys", "saq_n_codes", "saq_codes_key"}
                assert _same(entry["attrs"], {k: copy[name]["attrs"][k] for k in entry["attrs"]})
            else:
                assert _same(entry, copy[name]), name
        extra = set(copy) - set(original)
        assert extra == {f"data/{n}/action_codes" for n in DEMOS}
        identity = json.loads(b["data"].attrs["saq_quantizer"])
        assert identity["n_codes"] == 5 and identity["class"].endswith("SumQuantizer")
        assert json.loads(b["data"].attrs["saq_obs_keys"]) == list(DEFAULT_OBS_KEYS)
    data = load_robomimic(src)
    expected = SumQuantizer().encode(np.asarray(data.observations), np.asarray(data.actions))
    with h5py.File(dst, "r") as b:
        codes = np.concatenate([b[f"data/{n}/action_codes"][()] for n in ORDER])
        assert b["data/demo_0/action_codes"].dtype == np.int64
        assert b["data/demo_0/action_codes"].attrs["n_codes"] == 5
    np.testing.assert_array_equal(codes, expected)
    # The copy still loads like the original.
    again = load_robomimic(dst)
    np.testing.assert_array_equal(again.observations, data.observations)
    with pytest.raises(DataError, match="already exists"):
        write_relabeled_robomimic(dst, tmp_path / "twice.hdf5", SumQuantizer())
    with pytest.raises(DataError, match="never modified"):
        write_relabeled_robomimic(src, src, SumQuantizer())


def test_failed_relabel_leaves_no_output(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DataError, match=r"corrupt.hdf5.*not a readable hdf5"):
        write_relabeled_robomimic(corrupt, tmp_path / "out.hdf5", SumQuantizer())

    class Crashes(SumQuantizer):
        calls = 0

        def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
            Crashes.calls += 1
            if Crashes.calls == 3:
                raise RuntimeError("encoder crashed")
            return super().encode(obs, actions)

    src = _make_file(tmp_path / "lift.hdf5")
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_relabeled_robomimic(src, tmp_path / "out.hdf5", Crashes())
    with pytest.raises(DataError, match=r"observation key 'joint'"):
        write_relabeled_robomimic(src, tmp_path / "out.hdf5", SumQuantizer(), obs_keys=("joint",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.hdf5", "lift.hdf5"]


def test_v14_controller_config_converted_to_composite() -> None:
    converted = convert_env_args(LIFT_ENV_ARGS_V14)
    assert LIFT_ENV_ARGS_V14["env_kwargs"]["controller_configs"]["type"] == "OSC_POSE"  # input unchanged
    config = converted["env_kwargs"]["controller_configs"]
    assert config["type"] == "BASIC" and set(config["body_parts"]) == {"right"}
    arm = config["body_parts"]["right"]
    assert arm["type"] == "OSC_POSE" and arm["damping_ratio"] == 1 and "damping" not in arm
    assert arm["damping_ratio_limits"] == [0, 10] and arm["input_type"] == "delta"
    assert arm["input_ref_frame"] == "world" and arm["gripper"] == {"type": "GRIP"}
    assert converted["env_kwargs"]["lite_physics"] is False
    # A robosuite 1.5 composite config passes through.
    again = convert_env_args({**converted, "env_version": "1.5.1"})
    assert again["env_kwargs"]["controller_configs"] == config
    with pytest.raises(DataError, match="controller_configs type 'MAGIC'"):
        convert_env_args({"env_name": "Lift", "env_kwargs": {"controller_configs": {"type": "MAGIC"}}})


def test_env_args_text_nested_thousands_deep_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"neither a file nor a JSON object.*nested 10,000 levels deep"):
        read_env_args("[" * 10_000 + "]" * 10_000)


def test_observation_layout_is_recorded_with_the_quantizer(tmp_path: Path) -> None:
    """The key order a quantizer was fitted on travels in its checkpoint and rebuilds the same
    observation vectors."""
    import gymnasium as gym

    from saq_wrappers import VQVAEQuantizer
    from saq_wrappers.integrations.robomimic import robomimic_layout

    src = _make_file(tmp_path / "lift.hdf5")
    keys = ("object", "robot0_eef_pos")  # not the default order
    layout = robomimic_layout(src, obs_keys=keys)
    data = load_robomimic(src, obs_keys=keys)
    quantizer = VQVAEQuantizer(gym.spaces.Box(-np.inf, np.inf, (layout.obs_dim,), np.float32),
                               gym.spaces.Box(-11, 11, (data.action_dim,), np.float32), n_codes=4,
                               hidden_sizes=(8,), embedding_dim=4, n_steps=5)
    quantizer.fit(data, progress=False)
    quantizer.metadata["observation_layout"] = layout.to_json()
    quantizer.save(tmp_path / "q.safetensors")
    recorded = VQVAEQuantizer.load(tmp_path / "q.safetensors").metadata["observation_layout"]
    assert recorded["obs_keys"] == list(keys)
    again = load_robomimic(src, obs_keys=recorded["obs_keys"])
    np.testing.assert_array_equal(again.observations, data.observations)
