"""Small Minari dataset folders for the tests, and edits of their ``metadata.json`` as an attacker
or a careless tool would make them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from saq_wrappers.integrations.minari import write_minari_dataset


def pendulum_dataset(tmp_path: Path, metadata: dict[str, Any] | None = None) -> Path:
    """A one-episode, two-step Minari dataset of Pendulum-v1 in ``tmp_path/minari``, written by
    our writer with the registered env spec."""
    env = gym.make("Pendulum-v1")
    episode = {
        "observations": np.zeros((3, 3), np.float32),
        "actions": np.zeros((2, 1), np.float32),
        "rewards": [0.0, -1.0],
        "terminations": [False, False],
        "truncations": [False, True],
    }
    root = tmp_path / "minari"
    root.mkdir()
    return write_minari_dataset("saqtest/untrusted-v0", [episode], env.observation_space, env.action_space,
                                env_spec=env.spec, metadata=metadata, root=root)


def rewrite_metadata(folder: Path, spec_fields: dict[str, Any] | None = None, drop: tuple[str, ...] = (),
                     **fields: Any) -> None:
    """Edit ``data/metadata.json``: fields of the stored env spec replaced, top-level ``fields``
    set (NaN and inf written as JSON's NaN / Infinity, as ``json.dumps`` does), keys dropped."""
    metadata_file = folder / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    if spec_fields:
        spec = json.loads(metadata["env_spec"])
        spec.update(spec_fields)
        metadata["env_spec"] = json.dumps(spec)
    metadata.update(fields)
    for key in drop:
        del metadata[key]
    metadata_file.write_text(json.dumps(metadata))
