"""SB3 model files whose pickled ``data`` entries carry a payload: never run, or refused.

SB3 stores non-JSON values of a model (spaces, schedules, classes, ``policy_kwargs`` holding a
class) as base64 pickles in the zip's ``data`` entry. Each test here rewrites one such entry of a
tiny real model so that unpickling it creates a marker file, then loads the file through the
library, ``saq data generate`` and ``saq finetune --zoo-model``: the marker must never appear.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from saq_wrappers.errors import DataError

sb3 = pytest.importorskip("stable_baselines3")

from saq_wrappers.app import finetune  # noqa: E402
from saq_wrappers.app.cli import main  # noqa: E402
from saq_wrappers.app.finetune import FinetuneConfig, _dataset_spec  # noqa: E402
from saq_wrappers.experts import default_cache_dir  # noqa: E402
from saq_wrappers.integrations.sb3 import detect_algorithm, load_sb3_model  # noqa: E402


class _TouchOnUnpickle:
    """Unpickling this creates ``marker``: the stand-in for a payload's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _tiny_sac() -> Any:
    """A tiny untrained SAC for Pendulum-v1 whose ``policy_kwargs`` SB3 stores as a pickle (it
    holds a class)."""
    return sb3.SAC("MlpPolicy", gym.make("Pendulum-v1"), buffer_size=1000, device="cpu", seed=0,
                   policy_kwargs={"net_arch": [8], "activation_fn": torch.nn.ReLU})


class _TouchThroughSB3:
    """Unpickling this calls SB3's own ``json_to_data`` on a nested ``_TouchOnUnpickle``: a
    payload that names only a function inside the SB3 package."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        from stable_baselines3.common.save_util import json_to_data

        nested = base64.b64encode(pickle.dumps(_TouchOnUnpickle(self.marker))).decode()
        return (json_to_data, (json.dumps({"x": {":serialized:": nested}}),))


def _zip_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return path


def _with_serialized(source: Path, target: Path, key: str, serialized: str) -> Path:
    """``source`` with its ``data`` entry ``key`` marked as the pickle ``serialized`` (base64)."""
    entries = _zip_entries(source)
    data = json.loads(entries["data"])
    entry = data.get(key) if isinstance(data.get(key), dict) else {}
    data[key] = {**entry, ":serialized:": serialized}
    return _write_zip(target, {**entries, "data": json.dumps(data).encode()})


def _poisoned_copy(source: Path, target: Path, key: str, marker: Path, payload: type = _TouchOnUnpickle) -> Path:
    """``source`` with its ``data`` entry ``key`` replaced by a pickle that creates ``marker``."""
    return _with_serialized(source, target, key, base64.b64encode(pickle.dumps(payload(marker))).decode())


def _global(module: str, name: str) -> bytes:
    """Protocol 4 opcodes pushing ``module.name``: SHORT_BINUNICODE twice, STACK_GLOBAL."""
    return b"".join(b"\x8c" + bytes([len(text)]) + text.encode() for text in (module, name)) + b"\x93"


@pytest.fixture(scope="module")
def sac_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sb3_models") / "sac.zip"
    _tiny_sac().save(path)
    return path


def test_the_payload_runs_when_sb3_unpickles_it(sac_file: Path, tmp_path: Path) -> None:
    """The fixture is a real attack: SB3's own ``load`` runs it (so the tests below test something)."""
    marker = tmp_path / "ran"
    poisoned = _poisoned_copy(sac_file, tmp_path / "poisoned.zip", "policy_kwargs", marker)
    with pytest.raises(TypeError):  # the payload returned None as policy_kwargs
        sb3.SAC.load(poisoned, device="cpu")
    assert marker.exists()


@pytest.mark.parametrize("key", ["policy_kwargs", "policy_class", "replay_buffer_class", "train_freq",
                                 "unknown_entry"])
def test_a_payload_in_an_entry_the_model_needs_is_refused(sac_file: Path, tmp_path: Path, key: str) -> None:
    marker = tmp_path / "ran"
    poisoned = _poisoned_copy(sac_file, tmp_path / "poisoned.zip", key, marker)
    with pytest.raises(DataError, match=rf"'{key}' entry is a pickle naming pathlib\.Path\.touch.*trust_pickle=True"):
        load_sb3_model(poisoned, gym.make("Pendulum-v1"))
    assert not marker.exists()


def test_a_payload_naming_a_function_inside_sb3_is_refused(sac_file: Path, tmp_path: Path) -> None:
    """Only classes are resolved in the SB3 package, not its functions (some unpickle in turn)."""
    marker = tmp_path / "ran"
    poisoned = _poisoned_copy(sac_file, tmp_path / "poisoned.zip", "policy_kwargs", marker, _TouchThroughSB3)
    with pytest.raises(DataError, match=r"naming stable_baselines3\.common\.save_util\.json_to_data"):
        load_sb3_model(poisoned, gym.make("Pendulum-v1"))
    assert not marker.exists()


@pytest.mark.parametrize(("module", "name"), [
    ("stable_baselines3.common.save_util", "pickle.Unpickler"),  # an attribute path out of SB3
    ("stable_baselines3.common.save_util", "json_to_data.__globals__"),
    ("stable_baselines3.sac.policies", "FlattenExtractor"),  # imported there, defined elsewhere
])
def test_names_reached_through_an_sb3_module_are_refused(
    sac_file: Path, tmp_path: Path, module: str, name: str
) -> None:
    """Only classes defined in an SB3 / torch module, under the name pickle gives them, resolve."""
    payload = b"\x80\x04" + _global(module, name) + b"."
    crafted = _with_serialized(sac_file, tmp_path / "crafted.zip", "policy_kwargs", base64.b64encode(payload).decode())
    with pytest.raises(DataError, match=f"entry is a pickle naming {re.escape(module)}\\.{re.escape(name)}"):
        load_sb3_model(crafted, gym.make("Pendulum-v1"))


@pytest.mark.parametrize("key", ["lr_schedule", "learning_rate", "observation_space", "action_space",
                                 "_last_obs", "ep_info_buffer", "action_noise"])
def test_a_payload_in_an_entry_acting_does_not_need_is_never_unpickled(
    sac_file: Path, tmp_path: Path, key: str
) -> None:
    marker = tmp_path / "ran"
    poisoned = _poisoned_copy(sac_file, tmp_path / "poisoned.zip", key, marker)
    model = load_sb3_model(poisoned, gym.make("Pendulum-v1"))
    reference = sb3.SAC.load(sac_file, device="cpu")
    observations = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(observations, deterministic=True)[0],
                                  reference.predict(observations, deterministic=True)[0])
    assert not marker.exists()


def test_a_payload_in_the_tensor_entries_is_refused(sac_file: Path, tmp_path: Path) -> None:
    """``policy.pth`` is read by SB3 with ``torch.load(weights_only=True)``: its payload never runs."""
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save(_TouchOnUnpickle(marker), buffer)
    poisoned = _write_zip(tmp_path / "poisoned.zip", {**_zip_entries(sac_file), "policy.pth": buffer.getvalue()})
    with pytest.raises(DataError, match="could not load it as SAC.*[Ww]eights only load failed"):
        load_sb3_model(poisoned, gym.make("Pendulum-v1"))
    assert not marker.exists()


@pytest.mark.parametrize(("module", "version", "message"), [
    (sb3, "2.7.1", r"stable-baselines3 2\.7\.1 \(safe from 2\.8\)"),
    (torch, "2.5.1", r"torch 2\.5\.1 \(safe from 2\.10\)"),
])
def test_versions_that_read_tensors_unsafely_refuse_every_file(
    sac_file: Path, monkeypatch: pytest.MonkeyPatch, module: Any, version: str, message: str
) -> None:
    """SB3 2.4-2.7 read the tensor entries with ``weights_only=False``; torch before 2.10 had ways
    out of ``weights_only=True``: the loader then refuses unless the caller trusts the file."""
    monkeypatch.setattr(module, "__version__", version)
    with pytest.raises(DataError, match=message + ".*trust_pickle=True"):
        load_sb3_model(sac_file, gym.make("Pendulum-v1"))
    assert isinstance(load_sb3_model(sac_file, gym.make("Pendulum-v1"), trust_pickle=True), sb3.SAC)


def test_trust_pickle_lets_sb3_unpickle_the_entry(sac_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    poisoned = _poisoned_copy(sac_file, tmp_path / "poisoned.zip", "policy_kwargs", marker)
    with pytest.raises(DataError, match="could not load it as SAC"):  # the payload returned None
        load_sb3_model(poisoned, gym.make("Pendulum-v1"), trust_pickle=True)
    assert marker.exists()


def test_an_unreadable_pickle_is_a_data_error(sac_file: Path, tmp_path: Path) -> None:
    broken = _with_serialized(sac_file, tmp_path / "broken.zip", "policy_kwargs", "not base64!")
    with pytest.raises(DataError, match="'policy_kwargs' entry is not a readable pickle"):
        load_sb3_model(broken, gym.make("Pendulum-v1"))
    _write_zip(broken, {**_zip_entries(sac_file), "data": b"[1, 2]"})
    with pytest.raises(DataError, match="'data' entry holds a list, expected a JSON object"):
        load_sb3_model(broken, gym.make("Pendulum-v1"))


def test_a_data_entry_nested_thousands_deep_is_a_data_error(sac_file: Path, tmp_path: Path) -> None:
    deep = _write_zip(tmp_path / "deep.zip", {**_zip_entries(sac_file), "data": b"[" * 10_000 + b"]" * 10_000})
    for read in (lambda: load_sb3_model(deep, gym.make("Pendulum-v1")), lambda: detect_algorithm(deep)):
        with pytest.raises(DataError, match=r"not a Stable-Baselines3 model file.*nested 10,000 levels deep"):
            read()


class _BuildLayer:
    """A payload that builds an allowed class (a torch layer) from arguments the file chooses."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch.nn.Linear, (2, 2))


class _RetargetEnumMember:
    """A payload that sets the state of SB3's shared ``TrainFrequencyUnit.STEP`` member."""

    def __reduce__(self) -> tuple[Any, ...]:
        from stable_baselines3.common.type_aliases import TrainFrequencyUnit

        return (TrainFrequencyUnit, ("step",), {"_value_": "episode"})


@pytest.mark.parametrize(("payload", "message"), [
    (pickle.dumps(_BuildLayer()), "calling Linear"),
    (pickle.dumps(_RetargetEnumMember()), "setting the state of TrainFrequencyUnit"),
    # ReplayBuffer, then BUILD with slot state {"size": 5}: would set a class attribute
    (b"\x80\x04" + _global("stable_baselines3.common.buffers", "ReplayBuffer")
     + b"N}\x8c\x04size\x4b\x05s\x86b.", "setting the state of ReplayBuffer"),
    # ReplayBuffer, EMPTY_TUPLE, NEWOBJ: ReplayBuffer.__new__(ReplayBuffer)
    (b"\x80\x04" + _global("stable_baselines3.common.buffers", "ReplayBuffer") + b")\x81.", "calling ReplayBuffer"),
    # the same with NEWOBJ_EX (empty kwargs)
    (b"\x80\x04" + _global("stable_baselines3.common.buffers", "ReplayBuffer") + b")}\x92.", "calling ReplayBuffer"),
    # protocol 0: MARK, INST torch.nn.modules.linear.Identity (calls the class)
    (b"(itorch.nn.modules.linear\nIdentity\n.", "building an object with a protocol 0/1 opcode"),
], ids=["reduce-layer", "build-enum-member", "build-class", "newobj-buffer", "newobj-ex-buffer", "inst-layer"])
def test_a_payload_building_or_changing_allowed_classes_is_refused(
    sac_file: Path, tmp_path: Path, payload: bytes, message: str
) -> None:
    """Allowed classes are values only: never called with the file's arguments, never given state."""
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.type_aliases import TrainFrequencyUnit

    crafted = _with_serialized(sac_file, tmp_path / "crafted.zip", "policy_kwargs", base64.b64encode(payload).decode())
    with pytest.raises(DataError, match=f"'policy_kwargs' entry is a pickle {message}.*trust_pickle=True"):
        load_sb3_model(crafted, gym.make("Pendulum-v1"))
    assert TrainFrequencyUnit.STEP.value == "step" and "size" not in vars(ReplayBuffer)


@pytest.mark.parametrize(("algorithm", "pickled"), [("SAC", "policy_kwargs"), ("A2C", "policy_kwargs"),
                                                   ("TQC", "target_entropy")])
def test_pickled_classes_sb3_stores_load_as_sb3_loads_them(tmp_path: Path, algorithm: str, pickled: str) -> None:
    """Pickled entries of ordinary files (policy class, activation / optimizer classes, buffer
    classes, ``train_freq``, numpy scalars) pass the allowlist and act as SB3's own load."""
    import sb3_contrib

    env = gym.make("Pendulum-v1")
    if algorithm == "SAC":
        model = _tiny_sac()
    elif algorithm == "A2C":  # SB3's default policy_kwargs hold the RMSprop class
        model = sb3.A2C("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, device="cpu", seed=0)
    else:  # TQC stores its target entropy as a numpy scalar
        model = sb3_contrib.TQC("MlpPolicy", env, buffer_size=1000, policy_kwargs={"net_arch": [8]},
                                device="cpu", seed=0)
    model.save(tmp_path / "model.zip")
    data = json.loads(_zip_entries(tmp_path / "model.zip")["data"])
    assert ":serialized:" in data[pickled] and ":serialized:" in data["policy_class"]
    loaded = load_sb3_model(tmp_path / "model.zip", env)
    reference = type(model).load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy_kwargs == reference.policy_kwargs
    observations = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0],
                                  reference.predict(observations, deterministic=True)[0])


def test_saq_data_generate_refuses_the_payload(
    sac_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    poisoned = _poisoned_copy(sac_file, tmp_path / "poisoned.zip", "policy_kwargs", marker)
    status = main(["data", "generate", "--model", str(poisoned), "--env", "Pendulum-v1", "--dataset-id",
                   "gen/poisoned-v0", "--episodes", "1", "--quiet"])
    assert status == 1
    assert "'policy_kwargs' entry is a pickle naming pathlib.Path.touch" in capsys.readouterr().err
    assert not marker.exists()
    assert not (Path(os.environ["MINARI_DATASETS_PATH"]) / "gen" / "poisoned-v0").exists()
    # --trust-model-pickle hands the entry to SB3, which runs it (the payload then breaks the load).
    assert main(["data", "generate", "--model", str(poisoned), "--env", "Pendulum-v1", "--dataset-id",
                 "gen/poisoned-v0", "--episodes", "1", "--quiet", "--trust-model-pickle"]) == 1
    assert marker.exists()
    assert not (Path(os.environ["MINARI_DATASETS_PATH"]) / "gen" / "poisoned-v0").exists()


def test_saq_finetune_zoo_model_refuses_the_payload(
    sac_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    poisoned = _poisoned_copy(sac_file, tmp_path / "poisoned.zip", "policy_class", marker)
    cached = default_cache_dir() / "minari" / "saq-finetune"
    before = sorted(cached.iterdir()) if cached.is_dir() else []
    with pytest.raises(DataError, match="'policy_class' entry is a pickle naming pathlib.Path.touch"):
        _dataset_spec(FinetuneConfig(zoo_model=str(poisoned), env_id="Pendulum-v1", dataset_steps=50,
                                     progress=False))
    output = tmp_path / "run"
    status = main(["finetune", "--zoo-model", str(poisoned), "--env", "Pendulum-v1", "--quick",
                   "--dataset-steps", "50", "--output", str(output), "--quiet"])
    assert status == 1
    assert "'policy_class' entry is a pickle naming" in capsys.readouterr().err
    assert not marker.exists()
    assert not output.exists()
    assert (sorted(cached.iterdir()) if cached.is_dir() else []) == before
    # trust_model_pickle reaches the loader: SB3 then runs the payload (which breaks the load).
    with pytest.raises(DataError, match="could not load it as SAC"):
        _dataset_spec(FinetuneConfig(zoo_model=str(poisoned), env_id="Pendulum-v1", dataset_steps=50,
                                     progress=False, trust_model_pickle=True))
    assert marker.exists()
    assert (sorted(cached.iterdir()) if cached.is_dir() else []) == before


def test_finetune_trust_flags_reach_the_dataset_spec_and_the_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    configs: list[FinetuneConfig] = []
    monkeypatch.setattr(finetune, "run_finetune", configs.append)
    parser = finetune.build_parser()
    assert finetune.run(parser.parse_args(["--quick"])) == 0
    assert finetune.run(parser.parse_args(["--quick", "--trust-dataset-env", "--trust-model-pickle"])) == 0
    plain, trusting = configs
    assert not plain.trust_env_spec and not plain.trust_model_pickle
    assert trusting.trust_env_spec and trusting.trust_model_pickle
    assert not _dataset_spec(plain).trust_env_spec
    assert _dataset_spec(trusting).trust_env_spec
