"""Dataset generation from SB3 agents into Minari datasets (tiny Pendulum agents made here)."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.minari import load_minari, minari_info

sb3 = pytest.importorskip("stable_baselines3")

from saq_wrappers.app.cli import main  # noqa: E402
from saq_wrappers.app.generate import generate_dataset  # noqa: E402
from saq_wrappers.integrations.sb3 import detect_algorithm  # noqa: E402
from saq_wrappers.rollouts import rollout  # noqa: E402


@pytest.fixture(scope="module")
def sac_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised (untrained) SAC agent for Pendulum-v1, saved like any SB3 model."""
    env = gym.make("Pendulum-v1")
    model = sb3.SAC("MlpPolicy", env, policy_kwargs={"net_arch": [16, 16]}, seed=0, device="cpu")
    path = tmp_path_factory.mktemp("agents") / "sac_pendulum.zip"
    model.save(path)
    env.close()
    return path


def test_expert_episodes_are_complete_and_seeded(sac_file: Path) -> None:
    path = generate_dataset(sac_file, "Pendulum-v1", "gen/pendulum-expert-v0", "expert",
                            n_episodes=2, seed=5, ref_episodes=1, progress=False)
    data = load_minari("gen/pendulum-expert-v0")
    assert data.n_episodes == 2 and len(data) == 400  # Pendulum-v1 truncates at 200 steps
    assert data.timeouts.sum() == 2 and not data.terminals.any()
    dataset = minari.load_dataset("gen/pendulum-expert-v0")
    assert dataset.env_spec is not None and dataset.env_spec.id == "Pendulum-v1"
    seeds = [m["seed"] for m in dataset.storage.get_episode_metadata([0, 1])]
    assert seeds == [5, 6]
    env = gym.make("Pendulum-v1")
    for episode, seed in zip(data.episode_slices(), seeds):
        np.testing.assert_allclose(data.observations[episode.start], env.reset(seed=seed)[0], rtol=1e-6)
    info = minari_info(path)
    assert info.ref_min_score is not None and info.ref_max_score is not None
    assert info.metadata["saq_generation"]["model"]["algorithm"] == "SAC"
    assert info.metadata["saq_generation"]["versions"]["gymnasium"] == gym.__version__
    import torch

    assert info.metadata["saq_generation"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert np.all(np.abs(data.actions) <= 2.0)


def test_one_seed_writes_one_dataset_and_leaves_the_callers_rngs(tmp_path: Path) -> None:
    """A model file saved without a seed samples from torch's global generator as the caller left
    it: unless generate seeds it, one ``seed`` writes different actions from call to call."""
    import random

    import torch

    env = gym.make("Pendulum-v1")
    model = sb3.SAC("MlpPolicy", env, policy_kwargs={"net_arch": [16, 16]}, device="cpu")  # no seed
    file = tmp_path / "sac_unseeded.zip"
    model.save(file)
    env.close()
    actions = {}
    for name, state, seed in (("a", 1, 3), ("b", 2, 3), ("c", 1, 4)):
        torch.manual_seed(state)  # the caller's global states differ between a and b
        np.random.seed(state)
        random.seed(state)
        before = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
        generate_dataset(file, "Pendulum-v1", f"gen/pendulum-seeded-{name}-v0", "expert", n_steps=50,
                         seed=seed, ref_min_score=-1200.0, ref_max_score=-150.0, progress=False)
        assert torch.equal(torch.random.get_rng_state(), before[0])
        assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]
        actions[name] = load_minari(f"gen/pendulum-seeded-{name}-v0").actions
    np.testing.assert_array_equal(actions["a"], actions["b"])
    assert not np.allclose(actions["a"], actions["c"])


def test_step_budget_mixture_and_cut_episode(sac_file: Path) -> None:
    generate_dataset(sac_file, "Pendulum-v1", "gen/pendulum-me-v0", "medium-expert",
                     n_steps=300, ref_min_score=-1200.0, ref_max_score=-150.0, progress=False)
    data = load_minari("gen/pendulum-me-v0")
    # 150 noisy-expert steps then 150 expert steps, each part cut by the budget (a timeout).
    assert len(data) == 300
    assert [s.stop - s.start for s in data.episode_slices()] == [150, 150]
    assert data.timeouts.all() == False and data.timeouts.sum() == 2  # noqa: E712
    info = minari_info("gen/pendulum-me-v0")
    assert (info.ref_min_score, info.ref_max_score) == (-1200.0, -150.0)
    assert info.metadata["saq_generation"]["noise_std"] == 0.5


def test_random_recipe_needs_no_model_and_cli(sac_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate_dataset(None, "Pendulum-v1", "gen/pendulum-random-v0", "random", n_steps=250,
                     ref_min_score=-1200.0, ref_max_score=-150.0, progress=False)
    data = load_minari("gen/pendulum-random-v0")
    assert len(data) == 250 and data.n_episodes == 2
    status = main(["data", "generate", "--model", str(sac_file), "--env", "Pendulum-v1", "--dataset-id", "gen/pendulum-cli-v0",
                   "--recipe", "medium", "--episodes", "1", "--ref-episodes", "1", "--quiet"])
    assert status == 0
    assert "gen/pendulum-cli-v0" in capsys.readouterr().out
    assert load_minari("gen/pendulum-cli-v0").n_episodes == 1
    assert main(["data", "generate", "--env", "Pendulum-v1", "--dataset-id", "gen/x-v0", "--episodes", "1",
                 "--quiet"]) == 1
    assert "needs an SB3 model file" in capsys.readouterr().err


def test_algorithm_detection_and_bad_models(sac_file: Path, tmp_path: Path) -> None:
    assert detect_algorithm(sac_file) == "SAC"
    ppo = sb3.PPO("MlpPolicy", gym.make("Pendulum-v1"), n_steps=64, policy_kwargs={"net_arch": [8]}, device="cpu")
    ppo.save(tmp_path / "ppo.zip")
    assert detect_algorithm(tmp_path / "ppo.zip") == "PPO"
    episodes = rollout(gym.make("Pendulum-v1"), lambda o: np.zeros(1), n_steps=5, progress=False)
    assert len(episodes) == 1 and episodes[0]["observations"].shape == (6, 3)
    with pytest.raises(DataError, match=r"observation_space has shape \(3,\).*env's is \(2,\)"):
        generate_dataset(sac_file, "MountainCarContinuous-v0", "gen/bad-v0", n_episodes=1, progress=False)
    not_zip = tmp_path / "model.zip"
    not_zip.write_text("hello")
    with pytest.raises(DataError, match="not a Stable-Baselines3 model file"):
        generate_dataset(not_zip, "Pendulum-v1", "gen/bad-v0", n_episodes=1, progress=False)
    with pytest.raises(DataError, match="unknown recipe"):
        generate_dataset(sac_file, "Pendulum-v1", "gen/bad-v0", "replay", n_episodes=1, progress=False)
    with pytest.raises(DataError, match="exactly one"):
        generate_dataset(sac_file, "Pendulum-v1", "gen/bad-v0", n_steps=5, n_episodes=1, progress=False)
    root = Path(os.environ["MINARI_DATASETS_PATH"])
    assert not (root / "gen" / "bad-v0").exists()


def test_model_agent_seed_starts_from_the_files_stored_seed(sac_file: Path, tmp_path: Path) -> None:
    """``agent_seed="model"`` keeps torch's generator as SB3's load left it (seeded with the file's
    stored seed): the same actions whatever the caller's state, other actions than ``"seed"``'s,
    and a file without a stored seed is refused rather than sampled from the caller's state."""
    import torch

    def actions(name: str, agent_seed: str, caller_state: int) -> np.ndarray:
        torch.manual_seed(caller_state)
        path = generate_dataset(sac_file, "Pendulum-v1", f"gen/pendulum-agent-{name}-v0", "expert", n_steps=50,
                                seed=3, ref_min_score=-1200.0, ref_max_score=-150.0, progress=False,
                                agent_seed=agent_seed)
        assert minari_info(path).metadata["saq_generation"]["agent_seed"] == agent_seed
        return load_minari(f"gen/pendulum-agent-{name}-v0").actions

    from_file = actions("a", "model", 1)
    np.testing.assert_array_equal(from_file, actions("b", "model", 2))
    assert not np.allclose(from_file, actions("c", "seed", 1))

    env = gym.make("Pendulum-v1")
    unseeded = tmp_path / "sac_unseeded.zip"
    sb3.SAC("MlpPolicy", env, policy_kwargs={"net_arch": [16, 16]}, device="cpu").save(unseeded)
    env.close()
    with pytest.raises(DataError, match="stores none"):
        generate_dataset(unseeded, "Pendulum-v1", "gen/pendulum-agent-d-v0", "expert", n_steps=50,
                         ref_min_score=-1200.0, ref_max_score=-150.0, progress=False, agent_seed="model")
    with pytest.raises(DataError, match="unknown agent_seed"):
        generate_dataset(sac_file, "Pendulum-v1", "gen/pendulum-agent-e-v0", "expert", n_steps=50,
                         progress=False, agent_seed="file")


def test_expert_mean_records_the_deterministic_actions_and_expert_samples(sac_file: Path) -> None:
    """``expert-mean`` writes the agent's mean action at every recorded state (the noise-free
    control of the noise study); ``expert`` on the same seed writes sampled ones, away from it."""
    from saq_wrappers.app.generate import build_parser

    agent = sb3.SAC.load(sac_file, device="cpu")  # a file this test module wrote
    recorded = {}
    for recipe in ("expert-mean", "expert"):
        path = generate_dataset(sac_file, "Pendulum-v1", f"gen/pendulum-{recipe}-det-v0", recipe, n_steps=60,
                                seed=2, ref_min_score=-1200.0, ref_max_score=-150.0, progress=False)
        assert minari_info(path).metadata["saq_generation"]["recipe"] == recipe
        data = load_minari(f"gen/pendulum-{recipe}-det-v0")
        mean = np.stack([agent.predict(obs, deterministic=True)[0] for obs in data.observations])
        recorded[recipe] = np.abs(data.actions - mean).max()
    assert recorded["expert-mean"] < 1e-5
    assert recorded["expert"] > 0.1  # an untrained SAC's std is about 1 before its tanh
    args = build_parser().parse_args(["--env", "Pendulum-v1", "--dataset-id", "gen/x-v0", "--episodes", "1",
                                      "--recipe", "expert-mean"])
    assert args.recipe == "expert-mean"
