"""DiscreteIQL, DiscreteBRAC and ARQ checked the way d3rlpy's test suite checks its own algorithms.

d3rlpy's ``tests/algos/qlearning/algo_test.py`` runs every algorithm through fit / fitter,
predict, sample_action, predict_value, save_model + load_model, ``from_json``, load_learnable,
``save_policy`` (TorchScript), the optimizer-state and network copies, on vector observations and
on tuple observations ``((100,), (200,))`` (with a test encoder factory that accepts tuples,
since d3rlpy's default encoder builds single-array encoders only). The same here on tiny data,
with observations ``(7,)`` and ``((3,), (4,))`` holding the same numbers.

ONNX is not checked: ``save_policy("x.onnx")`` needs ``onnxscript`` (and ``onnx``), which this
environment does not install, for d3rlpy's own algorithms as for ours.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable

import d3rlpy
import gymnasium as gym
import numpy as np
import pytest
import torch
from d3rlpy.base import LearnableConfigWithShape
from d3rlpy.models.encoders import EncoderFactory, register_encoder_factory
from d3rlpy.models.torch import Encoder, EncoderWithAction
from d3rlpy.optimizers.optimizers import OptimizerWrapper
from d3rlpy.types import Observation, Shape, TorchObservation

from saq_wrappers.errors import DataError
from saq_wrappers.integrations.d3rlpy import ARQConfig, DiscreteBRACConfig, DiscreteIQLConfig, arq_table_states
from saq_wrappers.integrations.d3rlpy.arq import flat_observation_rows
from saq_wrappers.score import ScoreSupportSampler, precompute_candidate_table

K = 4  # codes of the discrete algorithms
OBS_DIM = 7
TUPLE_SHAPE = ((3,), (4,))
N_EPISODES, EPISODE_LENGTH = 4, 12


# ---- an encoder factory that accepts tuple observations (as d3rlpy's tests use one) -------------


def _flatten(x: TorchObservation) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.reshape(x.shape[0], -1)
    return torch.cat([part.reshape(part.shape[0], -1) for part in x], dim=1)


def _flat_size(observation_shape: Shape) -> int:
    if isinstance(observation_shape[0], int):
        return math.prod(observation_shape)  # type: ignore[arg-type]
    return sum(math.prod(shape) for shape in observation_shape)  # type: ignore[union-attr]


class _ConcatEncoder(Encoder):
    def __init__(self, in_size: int, hidden: int) -> None:
        super().__init__()
        self._fc = torch.nn.Linear(in_size, hidden)

    def forward(self, x: TorchObservation) -> torch.Tensor:
        return torch.relu(self._fc(_flatten(x)))


class _ConcatEncoderWithAction(EncoderWithAction):
    def __init__(self, in_size: int, hidden: int) -> None:
        super().__init__()
        self._fc = torch.nn.Linear(in_size, hidden)

    def forward(self, x: TorchObservation, action: torch.Tensor) -> torch.Tensor:
        return torch.relu(self._fc(torch.cat([_flatten(x), action], dim=1)))


@dataclasses.dataclass()
class ConcatEncoderFactory(EncoderFactory):
    """One ReLU layer over the concatenated, flattened observation parts (and the action)."""

    hidden: int = 32

    def create(self, observation_shape: Shape) -> _ConcatEncoder:
        return _ConcatEncoder(_flat_size(observation_shape), self.hidden)

    def create_with_action(
        self, observation_shape: Shape, action_size: int, discrete_action: bool = False
    ) -> _ConcatEncoderWithAction:
        return _ConcatEncoderWithAction(_flat_size(observation_shape) + action_size, self.hidden)

    @staticmethod
    def get_type() -> str:
        return "saq_test_concat"


register_encoder_factory(ConcatEncoderFactory)


# ---- tiny data ---------------------------------------------------------------------------------


def _observations(n: int, tuple_obs: bool, seed: int) -> Observation:
    flat = np.random.default_rng(seed).normal(size=(n, OBS_DIM)).astype(np.float32)
    return [flat[:, :3].copy(), flat[:, 3:].copy()] if tuple_obs else flat


def _dataset(discrete: bool, tuple_obs: bool) -> d3rlpy.dataset.ReplayBuffer:
    n = N_EPISODES * EPISODE_LENGTH
    rng = np.random.default_rng(1)
    terminals = np.zeros(n, np.float32)
    terminals[EPISODE_LENGTH - 1 :: EPISODE_LENGTH] = 1.0
    if discrete:
        actions = rng.integers(K, size=n)
        extra: dict[str, Any] = dict(action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=K)
    else:
        actions, extra = rng.uniform(-0.9, 0.9, size=(n, 1)).astype(np.float32), {}
    return d3rlpy.dataset.MDPDataset(
        _observations(n, tuple_obs, seed=0), actions, rng.normal(size=n).astype(np.float32), terminals, **extra
    )


def _encoder(tuple_obs: bool) -> EncoderFactory:
    return ConcatEncoderFactory() if tuple_obs else d3rlpy.models.VectorEncoderFactory(hidden_units=[32])


def _iql(tuple_obs: bool, _: Path) -> DiscreteIQLConfig:
    enc = _encoder(tuple_obs)
    return DiscreteIQLConfig(batch_size=16, critic_encoder_factory=enc, value_encoder_factory=enc,
                             behavior_encoder_factory=enc, actor_encoder_factory=enc)


def _brac(tuple_obs: bool, _: Path) -> DiscreteBRACConfig:
    enc = _encoder(tuple_obs)
    return DiscreteBRACConfig(batch_size=16, actor_encoder_factory=enc, critic_encoder_factory=enc, behavior_encoder_factory=enc)


def _arq_inputs(dataset: d3rlpy.dataset.ReplayBuffer, folder: Path) -> tuple[str, str]:
    """A barely trained sampler on the flat observation vector and its candidate table."""
    sampler = ScoreSupportSampler(
        gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32), gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
        n_samples=4, hidden=16, n_blocks=1, steps=2, seed=0,
    )
    actions = np.concatenate([episode.actions for episode in dataset.episodes])
    flat = np.concatenate([flat_observation_rows(episode.observations) for episode in dataset.episodes])
    sampler.fit(flat, actions, n_steps=5, batch_size=32, progress=False)
    precompute_candidate_table(sampler, arq_table_states(dataset), folder / "table", progress=False)
    sampler.save(folder / "sampler.safetensors")
    return str(folder / "table"), str(folder / "sampler.safetensors")


def _arq(tuple_obs: bool, folder: Path, use_awr_policy: bool = True) -> ARQConfig:
    table, sampler = _arq_inputs(_dataset(False, tuple_obs), folder)
    enc = _encoder(tuple_obs)
    return ARQConfig(batch_size=16, kth=2, n_candidates=4, use_awr_policy=use_awr_policy, candidate_table=table,
                     sampler_path=sampler, critic_encoder_factory=enc, actor_encoder_factory=enc)


CONFIGS: dict[str, Callable[[bool, Path], Any]] = {"iql": _iql, "brac": _brac, "arq": _arq}
CASES = [(name, tuple_obs) for name in CONFIGS for tuple_obs in (False, True)]


@dataclasses.dataclass
class Fitted:
    algo: Any
    dataset: d3rlpy.dataset.ReplayBuffer
    shape: Shape
    action_size: int
    discrete: bool
    tuple_obs: bool

    def observations(self, n: int = 16, seed: int = 5) -> Observation:
        return _observations(n, self.tuple_obs, seed)

    def actions(self, n: int = 16) -> np.ndarray:
        if self.discrete:
            return np.arange(n) % K
        return np.linspace(-0.8, 0.8, n, dtype=np.float32)[:, None]

    def fresh(self) -> Any:
        """A new algorithm from the same config, built with random weights."""
        other = self.algo.config.create(device="cpu:0")
        other.create_impl(self.shape, self.action_size)
        return other


def quiet_fit(algo: Any, dataset: d3rlpy.dataset.ReplayBuffer, n_steps: int, n_steps_per_epoch: int) -> list:
    return algo.fit(dataset, n_steps=n_steps, n_steps_per_epoch=n_steps_per_epoch, show_progress=False,
                    save_interval=10**9, logger_adapter=d3rlpy.logging.NoopAdapterFactory())


@pytest.fixture(scope="module", params=CASES, ids=[f"{name}-{'tuple' if t else 'vector'}" for name, t in CASES])
def fitted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    """fit: ``n_steps // n_steps_per_epoch`` epochs of finite float metrics, every network trained."""
    name, tuple_obs = request.param
    torch.manual_seed(0)
    discrete = name != "arq"
    dataset = _dataset(discrete, tuple_obs)
    algo = CONFIGS[name](tuple_obs, tmp_path_factory.mktemp(name)).create(device="cpu:0")
    shape: Shape = TUPLE_SHAPE if tuple_obs else (OBS_DIM,)
    action_size = K if discrete else 1
    algo.create_impl(shape, action_size)
    initial = {n: [p.detach().clone() for p in m.parameters()] for n, m in _networks(algo).items()}
    results = quiet_fit(algo, dataset, n_steps=6, n_steps_per_epoch=3)
    assert [epoch for epoch, _ in results] == [1, 2]
    for _, metrics in results:
        assert metrics and all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    for network, params in initial.items():
        assert not all(torch.equal(a, b) for a, b in zip(params, _networks(algo)[network].parameters())), network
    # fitter yields the same epochs
    epochs = [epoch for epoch, _ in algo.fitter(dataset, n_steps=4, n_steps_per_epoch=2, show_progress=False,
                                                save_interval=10**9, logger_adapter=d3rlpy.logging.NoopAdapterFactory())]
    assert epochs == [1, 2]
    return Fitted(algo, dataset, shape, action_size, discrete, tuple_obs)


def _settings(config: Any) -> dict[str, Any]:
    """Every config value, as d3rlpy serializes it (the key order may differ between round trips)."""
    return json.loads(config.serialize())


def _as_tuples(shape: Any) -> Any:
    """A shape read back from JSON (lists) as nested tuples."""
    return tuple(_as_tuples(s) for s in shape) if isinstance(shape, (list, tuple)) else shape


def _networks(algo: Any) -> dict[str, torch.nn.Module]:
    """Every trained network of the algorithm (the targets follow the critics; ARQ's policy is
    trained here because the fixture uses the AWR policy)."""
    modules = algo.impl.modules
    return {f.name: getattr(modules, f.name) for f in dataclasses.fields(modules)
            if isinstance(getattr(modules, f.name), torch.nn.Module) and not f.name.startswith("targ")}


def test_predict_sample_action_and_predict_value(fitted: Fitted) -> None:
    algo, x = fitted.algo, fitted.observations()
    greedy, sampled, values = algo.predict(x), algo.sample_action(x), algo.predict_value(x, fitted.actions())
    if fitted.discrete:
        assert greedy.shape == sampled.shape == (16,)
        assert set(np.unique(greedy)) | set(np.unique(sampled)) <= set(range(K))
        # the greedy action is the mode of the policy the algorithm samples from
        np.testing.assert_array_equal(greedy, algo.predict_policy(x).argmax(axis=1))
    else:
        assert greedy.shape == sampled.shape == (16, 1)
        assert np.all(np.abs(greedy) <= 1.0) and np.all(np.abs(sampled) <= 1.0)
    assert values.shape == (16,) and np.all(np.isfinite(values))


def test_save_model_load_model_round_trip(fitted: Fitted, tmp_path: Path) -> None:
    algo, x, a = fitted.algo, fitted.observations(), fitted.actions()
    algo.save_model(str(tmp_path / "model.pt"))
    other = fitted.fresh()
    assert not np.allclose(other.predict_value(x, a), algo.predict_value(x, a))
    other.load_model(str(tmp_path / "model.pt"))
    np.testing.assert_array_equal(other.predict(x), algo.predict(x))
    np.testing.assert_array_equal(other.predict_value(x, a), algo.predict_value(x, a))


def test_save_and_load_learnable_round_trip(fitted: Fitted, tmp_path: Path) -> None:
    algo, x, a = fitted.algo, fitted.observations(), fitted.actions()
    algo.save(str(tmp_path / "algo.d3"))
    loaded = d3rlpy.load_learnable(str(tmp_path / "algo.d3"), device="cpu:0")
    assert type(loaded) is type(algo)
    assert _settings(loaded.config) == _settings(algo.config)
    np.testing.assert_array_equal(loaded.predict(x), algo.predict(x))
    np.testing.assert_array_equal(loaded.predict_value(x, a), algo.predict_value(x, a))


def test_config_serialize_and_from_json_round_trip(fitted: Fitted, tmp_path: Path) -> None:
    algo = fitted.algo
    config = algo.config
    assert _settings(type(config).deserialize(config.serialize())) == _settings(config)
    # from_json reads the params.json d3rlpy's file logger writes: the config with the shapes
    params = tmp_path / "params.json"
    params.write_text(LearnableConfigWithShape(observation_shape=fitted.shape, action_size=fitted.action_size,
                                               config=config).serialize())
    rebuilt = type(algo).from_json(str(params), device="cpu:0")
    assert type(rebuilt) is type(algo) and rebuilt.impl is not None
    assert _settings(rebuilt.config) == _settings(config)
    assert rebuilt.impl.action_size == fitted.action_size
    assert _as_tuples(rebuilt.impl.observation_shape) == _as_tuples(fitted.shape)
    x, a = fitted.observations(), fitted.actions()
    assert rebuilt.predict_value(x, a).shape == (16,)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # Categorical arg checks
def test_save_policy_as_torchscript_acts_like_predict(fitted: Fitted, tmp_path: Path) -> None:
    algo, x = fitted.algo, fitted.observations()
    algo.save_policy(str(tmp_path / "policy.pt"))
    policy = torch.jit.load(str(tmp_path / "policy.pt"))
    inputs = [torch.from_numpy(part) for part in x] if fitted.tuple_obs else [torch.from_numpy(x)]
    with torch.no_grad():
        exported = policy(*inputs).numpy()
    if fitted.discrete:
        np.testing.assert_array_equal(exported, algo.predict(x))
    else:  # the AWR mean; ARQ.predict also clips it to the sampler's action bounds
        np.testing.assert_allclose(np.clip(exported, -1.0, 1.0), algo.predict(x), atol=1e-6)


def test_optimizer_states_are_filled_by_fit_and_copied(fitted: Fitted) -> None:
    algo = fitted.algo
    optimizers = {f.name: getattr(algo.impl.modules, f.name).optim for f in dataclasses.fields(algo.impl.modules)
                  if isinstance(getattr(algo.impl.modules, f.name), OptimizerWrapper)}
    for name, optim in optimizers.items():
        params = [p for group in optim.param_groups for p in group["params"]]
        assert params and all(p in optim.state and optim.state[p] for p in params), f"{name} has no Adam state"
    # d3rlpy's copies of the Q-function optimizer state and of the networks
    other = fitted.fresh()
    assert not other.impl.q_function_optim.state
    other.copy_q_function_optim_from(algo)
    assert other.impl.q_function_optim.state
    x, a = fitted.observations(), fitted.actions()
    other.copy_q_function_from(algo)
    np.testing.assert_array_equal(other.predict_value(x, a), algo.predict_value(x, a))


def test_policy_copy_where_the_algorithm_has_an_actor(fitted: Fitted) -> None:
    """BRAC's actor and ARQ's AWR policy copy like d3rlpy's; IQL acts by eq. 10 with no actor
    network, so like d3rlpy's DQN it has no policy to copy."""
    algo = fitted.algo
    other = fitted.fresh()
    if isinstance(algo.config, DiscreteIQLConfig):
        with pytest.raises(NotImplementedError):
            other.copy_policy_from(algo)
        return
    assert not other.impl.policy_optim.state
    other.copy_policy_optim_from(algo)
    assert other.impl.policy_optim.state
    other.copy_policy_from(algo)
    x = fitted.observations()
    np.testing.assert_array_equal(other.predict(x), algo.predict(x))


@pytest.mark.parametrize("tuple_obs", [False, True], ids=["vector", "tuple"])
def test_arq_implicit_policy_acts_on_fresh_candidates_and_refuses_export(tuple_obs: bool, tmp_path: Path) -> None:
    torch.manual_seed(0)
    algo = _arq(tuple_obs, tmp_path, use_awr_policy=False).create(device="cpu:0")
    quiet_fit(algo, _dataset(False, tuple_obs), n_steps=4, n_steps_per_epoch=4)
    x = _observations(16, tuple_obs, seed=5)
    candidates, logits = algo.implicit_policy_logits(x)
    assert candidates.shape == (16, 4, 1) and logits.shape == (16, 4)
    assert algo.predict(x).shape == algo.sample_action(x).shape == (16, 1)
    with pytest.raises(DataError, match="use_awr_policy"):
        algo.save_policy(str(tmp_path / "policy.pt"))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_default_encoders_build_vector_models_and_explain_tuple_observations(name: str, tmp_path: Path) -> None:
    """d3rlpy's default encoder (as in d3rlpy's own algorithms): vectors build, tuples get a clear error."""
    config = {"iql": DiscreteIQLConfig, "brac": DiscreteBRACConfig, "arq": ARQConfig}[name]()
    assert type(config.critic_encoder_factory) is d3rlpy.models.DefaultEncoderFactory
    config.create(device="cpu:0").create_impl((OBS_DIM,), K if name != "arq" else 1)
    with pytest.raises(DataError, match="tuple observations.*EncoderFactory whose create"):
        config.create(device="cpu:0").create_impl(TUPLE_SHAPE, K if name != "arq" else 1)
