"""HDF5 dataset files are untrusted input, read by three readers (D4RL-style, robomimic, Minari's
episode file): none of them reads another file than the one given (external storage, virtual
datasets, external links), allocates memory for data the file does not hold, or answers odd data
(strings, compound types, scalars, empty demos, flags other than 0/1) with a raw traceback; and
every reader and :meth:`Transitions.from_episodes` applies the same rule to episode flags."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from pathlib import Path
from typing import Any, Callable, Iterator

import gymnasium as gym
import h5py
import numpy as np
import pytest

from saq_wrappers import Transitions
from saq_wrappers.errors import DataError, OutputPathError
from saq_wrappers.integrations.d4rl import load_d4rl_hdf5, write_d4rl_hdf5
from saq_wrappers.integrations.minari import load_minari, write_minari_dataset
from saq_wrappers.integrations.robomimic import (
    DEFAULT_OBS_KEYS,
    load_robomimic,
    robomimic_layout,
    write_relabeled_robomimic,
    write_robomimic,
)

STEPS = 4
OBS_DIM = 3
#: Values another local file holds: they must never come back as observations.
SECRET = np.arange(100, 100 + 64 * OBS_DIM, dtype=np.float32)


def _episode() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "observations": rng.standard_normal((STEPS + 1, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (STEPS, 1)).astype(np.float32),
        "rewards": np.arange(STEPS, dtype=np.float32),
        "terminations": np.zeros(STEPS, bool),
        "truncations": np.arange(STEPS) == STEPS - 1,
    }


def _d4rl(tmp_path: Path) -> Path:
    episode = _episode()
    data = Transitions.from_episodes([episode])
    return write_d4rl_hdf5(data, tmp_path / "d4rl.hdf5", compression=None)


def _robomimic(tmp_path: Path) -> Path:
    episode = _episode()
    obs = {"object": episode["observations"][:-1]}
    next_obs = {"object": episode["observations"][1:]}
    demo = {"obs": obs, "next_obs": next_obs, "actions": episode["actions"], "rewards": episode["rewards"],
            "dones": np.zeros(STEPS, np.int64)}
    return write_robomimic(tmp_path / "robomimic.hdf5", [demo], {"env_name": "Lift", "type": 1, "env_kwargs": {}},
                           compression=None)


def _minari(tmp_path: Path) -> Path:
    space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    root = tmp_path / "minari"
    root.mkdir()
    return write_minari_dataset("saqtest/hdf5-v0", [_episode()], space, gym.spaces.Box(-1, 1, (1,), np.float32),
                                root=root)


class Reader:
    """One hdf5 reader under test: how to build a valid dataset, which hdf5 file and keys to edit,
    and how to load it."""

    def __init__(self, name: str, build: Callable[[Path], Path], hdf5: Callable[[Path], Path],
                 keys: dict[str, str], load: Callable[[Path], Transitions]) -> None:
        self.name, self.build, self.hdf5, self.keys, self.load = name, build, hdf5, keys, load

    def __repr__(self) -> str:
        return self.name


READERS = [
    Reader("d4rl", _d4rl, lambda p: p,
           {"observations": "observations", "actions": "actions", "terminals": "terminals"}, load_d4rl_hdf5),
    Reader("robomimic", _robomimic, lambda p: p,
           {"observations": "data/demo_0/obs/object", "actions": "data/demo_0/actions",
            "terminals": "data/demo_0/dones"},
           lambda p: load_robomimic(p, obs_keys=("object",))),
    Reader("minari", _minari, lambda p: p / "data" / "main_data.hdf5",
           {"observations": "episode_0/observations", "actions": "episode_0/actions",
            "terminals": "episode_0/terminations"}, load_minari),
]


@pytest.fixture(params=READERS, ids=repr)
def reader(request: pytest.FixtureRequest) -> Reader:
    return request.param


def _replace(file: Path, key: str, make: Callable[[h5py.File, str], Any]) -> None:
    """Delete dataset ``key`` of ``file`` and let ``make(handle, key)`` put something in its place."""
    with h5py.File(file, "r+") as handle:
        del handle[key]
        make(handle, key)


def _secret_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET.tobytes())
    return secret


def _other_hdf5(tmp_path: Path) -> Path:
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as handle:
        handle.create_dataset("data", data=SECRET.reshape(-1, OBS_DIM))
    return other


def _rows(handle: h5py.File, key: str) -> int:
    return STEPS + 1 if key.startswith("episode_") else STEPS


# ------------------------------------------------------------- reading another file: refused
def test_external_storage_is_refused_and_never_read(reader: Reader, tmp_path: Path) -> None:
    folder = reader.build(tmp_path)
    secret = _secret_file(tmp_path)

    def external(handle: h5py.File, key: str) -> None:
        rows = _rows(handle, key)
        handle.create_dataset(key, shape=(rows, OBS_DIM), dtype=np.float32,
                              external=[(str(secret), 0, rows * OBS_DIM * 4)])

    _replace(reader.hdf5(folder), reader.keys["observations"], external)
    with pytest.raises(DataError, match=rf"external storage.*{secret}.*would read another file than"):
        reader.load(folder)


def test_external_storage_on_a_fifo_does_not_block(reader: Reader, tmp_path: Path) -> None:
    folder = reader.build(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def external(handle: h5py.File, key: str) -> None:
        handle.create_dataset(key, shape=(_rows(handle, key), OBS_DIM), dtype=np.float32,
                              external=[(str(fifo), 0, h5py.h5f.UNLIMITED)])

    _replace(reader.hdf5(folder), reader.keys["observations"], external)
    with _alarm(20), pytest.raises(DataError, match="external storage"):
        reader.load(folder)


def test_an_external_link_is_refused_and_never_followed(reader: Reader, tmp_path: Path) -> None:
    folder = reader.build(tmp_path)
    other = _other_hdf5(tmp_path)
    _replace(reader.hdf5(folder), reader.keys["observations"],
             lambda handle, key: handle.__setitem__(key, h5py.ExternalLink(str(other), "/data")))
    with pytest.raises(DataError, match=rf"external link to {other}.*would read another file than"):
        reader.load(folder)


def test_an_external_link_to_a_group_is_refused(reader: Reader, tmp_path: Path) -> None:
    """A whole demo or episode group in another file: refused before its members are listed."""
    folder = reader.build(tmp_path)
    other = _other_hdf5(tmp_path)
    key = reader.keys["actions"].rsplit("/", 1)[0] if "/" in reader.keys["actions"] else "infos"
    with h5py.File(reader.hdf5(folder), "r+") as handle:
        if key in handle:
            del handle[key]
        handle[key] = h5py.ExternalLink(str(other), "/")
    with pytest.raises(DataError, match="external link"):
        reader.load(folder)


def test_a_virtual_dataset_is_refused(reader: Reader, tmp_path: Path) -> None:
    folder = reader.build(tmp_path)
    other = _other_hdf5(tmp_path)

    def virtual(handle: h5py.File, key: str) -> None:
        rows = _rows(handle, key)
        layout = h5py.VirtualLayout(shape=(rows, OBS_DIM), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(other), "data", shape=(len(SECRET) // OBS_DIM, OBS_DIM))[:rows]
        handle.create_virtual_dataset(key, layout)

    _replace(reader.hdf5(folder), reader.keys["observations"], virtual)
    with pytest.raises(DataError, match=rf"virtual dataset.*would read another file than"):
        reader.load(folder)


@pytest.mark.parametrize("target", ["/nowhere", "cycle"])
def test_a_broken_soft_link_is_a_data_error(target: str, reader: Reader, tmp_path: Path) -> None:
    folder = reader.build(tmp_path)
    key = reader.keys["observations"]

    def soft(handle: h5py.File, key: str) -> None:
        if target == "cycle":
            handle["loop_b"] = h5py.SoftLink("/" + key)
            handle[key] = h5py.SoftLink("/loop_b")
        else:
            handle[key] = h5py.SoftLink(target)

    _replace(reader.hdf5(folder), key, soft)
    with pytest.raises(DataError, match="soft link .* does not resolve"):
        reader.load(folder)


def test_an_internal_soft_link_still_reads(reader: Reader, tmp_path: Path) -> None:
    folder = reader.build(tmp_path)
    expected = reader.load(folder)
    key = reader.keys["observations"]
    with h5py.File(reader.hdf5(folder), "r+") as handle:
        handle.move(key, "moved_observations")
        handle[key] = h5py.SoftLink("/moved_observations")
    np.testing.assert_array_equal(reader.load(folder).observations, expected.observations)


@pytest.mark.parametrize("kind", ["FIFO", "folder", "device"])
def test_a_path_that_is_no_regular_file_is_named_for_what_it_is(kind: str, reader: Reader, tmp_path: Path) -> None:
    """A FIFO would block the reader, /dev/zero never end; neither "does not exist"."""
    folder = reader.build(tmp_path)
    file = reader.hdf5(folder)
    file.unlink()
    if kind == "FIFO":
        os.mkfifo(file)
    elif kind == "folder":
        file.mkdir()
    else:
        file.symlink_to("/dev/zero")
    shown = {"FIFO": "a FIFO", "folder": "a folder", "device": "a character device"}[kind]
    with _alarm(20), pytest.raises(DataError, match=rf"{file.name}' is {shown}"):
        reader.load(folder)


# ------------------------------------------------------------- declared sizes: bounded
@pytest.mark.parametrize("rows, compression", [(10**12, "gzip"), (2 * 10**7, None)])
def test_a_declared_size_the_file_does_not_hold_is_refused(
    rows: int, compression: str | None, reader: Reader, tmp_path: Path
) -> None:
    """A few-KB file declaring 10**12 rows (MemoryError) or 2*10**7 rows (GBs of fill values)."""
    folder = reader.build(tmp_path)

    def huge(handle: h5py.File, key: str) -> None:
        handle.create_dataset(key, shape=(rows, OBS_DIM), dtype=np.float32, compression=compression,
                              chunks=(1024, OBS_DIM) if compression else None)

    file = reader.hdf5(folder)
    _replace(file, reader.keys["observations"], huge)
    assert file.stat().st_size < 64 * 1024
    with pytest.raises(DataError, match=r"declare .* bytes.*more than .* bytes.*file.*does not hold"):
        reader.load(folder)


def test_a_huge_chunk_is_refused(tmp_path: Path) -> None:
    """Reading one row of a compressed chunk decompresses (allocates) the whole chunk."""
    folder = _d4rl(tmp_path)

    def huge_chunk(handle: h5py.File, key: str) -> None:
        handle.create_dataset(key, shape=(STEPS, OBS_DIM), dtype=np.float32, maxshape=(None, OBS_DIM),
                              chunks=(2**28, OBS_DIM), compression="gzip")

    _replace(folder, "observations", huge_chunk)
    with pytest.raises(DataError, match="declare"):
        load_d4rl_hdf5(folder)


def test_well_compressed_real_data_is_not_refused(tmp_path: Path) -> None:
    """gzip'd constant columns expand about 1000-fold: the bound leaves honest files alone."""
    n = 2_500_000  # 85 MB declared, more than the 64 MiB any file may declare regardless of its size
    data = Transitions(np.zeros((n, OBS_DIM)), np.zeros((n, 1)), np.zeros(n), np.zeros((n, OBS_DIM)),
                       np.zeros(n, bool), np.arange(n) % 1000 == 999)
    path = write_d4rl_hdf5(data, tmp_path / "zeros.hdf5")
    assert path.stat().st_size * 100 < data.observations.nbytes  # compressed more than 100-fold
    assert len(load_d4rl_hdf5(path)) == n


# ------------------------------------------------------------- odd data: the library's errors
@pytest.mark.parametrize("kind", ["strings", "compound", "references"])
@pytest.mark.parametrize("field", ["observations", "actions", "terminals"])
def test_non_numeric_data_names_the_key_and_the_dtype(kind: str, field: str, reader: Reader, tmp_path: Path) -> None:
    folder = reader.build(tmp_path)
    key = reader.keys[field]

    def odd(handle: h5py.File, key: str) -> None:
        rows = _rows(handle, key) if field == "observations" else STEPS
        if kind == "strings":
            values = np.array([b"1.5"] * rows)
        elif kind == "compound":
            values = np.zeros(rows, dtype=[("a", np.float32), ("b", np.int32)])
        else:
            values = np.array([handle.ref] * rows, dtype=h5py.ref_dtype)
        handle.create_dataset(key, data=values)

    _replace(reader.hdf5(folder), key, odd)
    name = key.rsplit("/", 1)[-1]
    with pytest.raises(DataError, match=rf"{name}.* holds .*(S3|\[|object|'O').*expected (numbers|booleans)"):
        reader.load(folder)


@pytest.mark.parametrize("field", ["observations", "actions"])
def test_a_scalar_empty_or_zero_width_dataset_is_a_data_error(field: str, reader: Reader, tmp_path: Path) -> None:
    for shape_kind in ("scalar", "empty dataspace", "zero width"):
        (tmp_path / shape_kind).mkdir()
        folder = reader.build(tmp_path / shape_kind)
        key = reader.keys[field]
        rows = STEPS + 1 if (reader.name == "minari" and field == "observations") else STEPS
        value = {"scalar": np.float32(1.0), "empty dataspace": h5py.Empty("f4"),
                 "zero width": np.zeros((rows, 0), np.float32)}[shape_kind]
        _replace(reader.hdf5(folder), key, lambda handle, k: handle.create_dataset(k, data=value))
        with pytest.raises(DataError, match=rf"{field}|{key.rsplit('/', 1)[-1]}"):
            reader.load(folder)


def test_an_empty_robomimic_demo_is_named(tmp_path: Path) -> None:
    path = _robomimic(tmp_path)
    with h5py.File(path, "r+") as handle:
        demo = handle["data/demo_0"]
        for key in ("actions", "rewards", "dones", "obs/object", "next_obs/object"):
            width = demo[key].shape[1:]
            del demo[key]
            demo.create_dataset(key, shape=(0, *width), dtype=np.float32)
    with pytest.raises(DataError, match=r"robomimic.hdf5: /data/demo_0/actions is empty, expected at least one step"):
        load_robomimic(path, obs_keys=("object",))


@pytest.mark.parametrize("case", ["mask of numbers", "mask is a group", "observation key is a group"])
def test_odd_robomimic_structure_is_a_data_error(case: str, tmp_path: Path) -> None:
    path = _robomimic(tmp_path)
    with h5py.File(path, "r+") as handle:
        if case == "mask of numbers":
            handle.create_dataset("mask/train", data=np.arange(3))
        elif case == "mask is a group":
            handle.create_group("mask/train/inner")
        else:
            del handle["data/demo_0/obs/object"]
            handle.create_group("data/demo_0/obs/object")
    filter_key = "train" if case.startswith("mask") else None
    for read in (load_robomimic, robomimic_layout):
        with pytest.raises(DataError, match=r"'mask/train' is not a dataset of demo names|obs/object is not an array"
                                            r"|obs/object is a group"):
            read(path, ("object",), filter_key)


def test_robomimic_obs_keys_are_checked(tmp_path: Path) -> None:
    path = _robomimic(tmp_path)
    with h5py.File(path, "r+") as handle:  # a file with the default keys, for obs_keys=None
        for group in ("obs", "next_obs"):
            for key in set(DEFAULT_OBS_KEYS) - {"object"}:
                handle[f"data/demo_0/{group}"].create_dataset(key, data=np.zeros((STEPS, 2), np.float32))
    assert load_robomimic(path, obs_keys=None).observation_shape == (2 * len(DEFAULT_OBS_KEYS) - 2 + OBS_DIM,)
    for keys, message in (("object", "obs_keys is the string 'object', expected a list"),
                          ([], "obs_keys is empty"), (["object", 3], "obs_keys holds 3, expected")):
        for read in (load_robomimic, robomimic_layout):
            with pytest.raises(DataError, match=message):
                read(path, keys)


@pytest.mark.parametrize("shape", [(STEPS, 0), (STEPS, 2)])
def test_d4rl_rewards_of_another_shape_are_named(shape: tuple[int, int], tmp_path: Path) -> None:
    path = _d4rl(tmp_path)
    _replace(path, "rewards", lambda handle, key: handle.create_dataset(key, data=np.zeros(shape, np.float32)))
    with pytest.raises(DataError, match=rf"'rewards' has shape \({shape[0]}, {shape[1]}\), expected \({STEPS},\)"):
        load_d4rl_hdf5(path)


@pytest.mark.parametrize("env_args", ["[" * 100_000 + "]" * 100_000, '{"a": ' * 500 + "1" + "}" * 500, np.bytes_(b"{\xff}"),
                                      "[1, 2]"])
def test_env_args_that_are_no_json_object_are_a_data_error(env_args: Any, tmp_path: Path) -> None:
    """Too deep for the parser (RecursionError), deep enough to break code walking it, not UTF-8."""
    path = _robomimic(tmp_path)
    with h5py.File(path, "r+") as handle:
        handle["data"].attrs["env_args"] = env_args
    with pytest.raises(DataError, match=r"env_args.*JSON"):
        robomimic_layout(path, ("object",))


# ------------------------------------------------------------- one rule for episode flags
@pytest.mark.parametrize("bad", [0.5, 2, -1, np.nan])
def test_every_reader_refuses_flags_other_than_0_and_1(bad: float, reader: Reader, tmp_path: Path) -> None:
    folder = reader.build(tmp_path)
    values = np.zeros(STEPS)
    values[-1] = bad
    _replace(reader.hdf5(folder), reader.keys["terminals"], lambda handle, key: handle.create_dataset(key, data=values))
    shown = "nan" if np.isnan(bad) else f"{bad:g}"
    with pytest.raises(DataError, match=rf"{reader.keys['terminals'].rsplit('/', 1)[-1]}.* must hold booleans "
                                        rf"\(or 0/1 values\), found {shown}"):
        reader.load(folder)


@pytest.mark.parametrize("key", ["terminations", "terminated"])
@pytest.mark.parametrize("bad", [0.5, 2])
def test_from_episodes_refuses_flags_other_than_0_and_1(key: str, bad: float) -> None:
    episode = _episode()
    del episode["terminations"]
    flags = np.zeros(STEPS)
    flags[-1] = bad
    episode[key] = flags
    with pytest.raises(DataError, match=rf"episode 0: {key} must hold booleans \(or 0/1 values\), found {bad:g}"):
        Transitions.from_episodes([episode])
    episode[key] = bad  # the single-flag form
    with pytest.raises(DataError, match=rf"episode 0: {key} must hold booleans"):
        Transitions.from_episodes([episode])
    episode[key] = np.array([0, 0, 0, 1.0])  # 0/1 numbers are booleans
    assert Transitions.from_episodes([episode]).terminals[-1]


def test_from_episodes_names_flags_of_the_wrong_length() -> None:
    episode = dict(_episode(), terminations=np.zeros(STEPS + 2, bool))
    with pytest.raises(DataError, match=rf"episode 0: terminations has {STEPS + 2} values, expected {STEPS}"):
        Transitions.from_episodes([episode])


def test_non_numeric_values_given_to_transitions_are_named() -> None:
    episode = dict(_episode(), rewards=np.array(["1.5"] * STEPS))
    with pytest.raises(DataError, match=r"rewards holds <U3 values, expected numbers"):
        Transitions.from_episodes([episode])


# ------------------------------------------------------------- writing: the path, on a full disk
@pytest.mark.parametrize("writer", ["d4rl", "robomimic"])
def test_a_full_disk_names_the_output_path(writer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = Transitions.from_episodes([_episode()])
    source = _robomimic(tmp_path) if writer == "robomimic" else None
    out = tmp_path / "out" / "written.hdf5"
    out.parent.mkdir()

    def full(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28, "
                                    "error message = 'No space left on device')")

    monkeypatch.setattr(h5py.Group, "create_dataset", full)
    with pytest.raises(OutputPathError, match=rf"cannot write '{out}': no space left on device"):
        if writer == "d4rl":
            write_d4rl_hdf5(data, out)
        else:
            write_relabeled_robomimic(source, out, _ZeroQuantizer(), obs_keys=("object",))
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("compression", ["bogus", 10, True, "szip"])
def test_an_unknown_compression_is_refused_before_writing(compression: Any, tmp_path: Path) -> None:
    data = Transitions.from_episodes([_episode()])
    episode = _episode()
    demo = {"obs": {"object": episode["observations"][:-1]}, "next_obs": {"object": episode["observations"][1:]},
            "actions": episode["actions"], "rewards": episode["rewards"], "dones": np.zeros(STEPS, np.int64)}
    message = rf"compression must be None, 'gzip', 'lzf' or a gzip level 0-9, got {compression!r}"
    with pytest.raises(DataError, match=message):
        write_d4rl_hdf5(data, tmp_path / "d4rl.hdf5", compression=compression)
    with pytest.raises(DataError, match=message):
        write_robomimic(tmp_path / "robomimic.hdf5", [demo], {}, compression=compression)
    assert list(tmp_path.iterdir()) == []


class _ZeroQuantizer:
    n = 2

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), np.int64)


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    """Fail instead of hanging when a read blocks (a FIFO opened for reading waits for a writer)."""

    def expired(signum: int, frame: Any) -> None:
        raise AssertionError(f"the reader blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
