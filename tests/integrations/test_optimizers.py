"""The presets' Adam keeps float32 denormals out of weights and moments, and changes nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import d3rlpy
import numpy as np
import pytest
import torch
from d3rlpy.optimizers import AdamFactory

from saq_wrappers.integrations.d3rlpy.optimizers import (
    DenormalFreeAdamFactory,
    flushing_denormals,
    negligible_magnitude,
    sweep_negligible_values,
)
from saq_wrappers.integrations.d3rlpy.presets import saq_iql_config

TINY = torch.finfo(torch.float32).tiny


def denormal_count(optimizer: torch.optim.Optimizer) -> int:
    tensors = [p for group in optimizer.param_groups for p in group["params"]]
    tensors += [v for state in optimizer.state.values() for v in state.values() if v.dim() > 0]
    return sum(int(((t.abs() < TINY) & (t != 0)).sum()) for t in tensors)


def train_dead_inputs(factory: AdamFactory, steps: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A linear layer whose first two inputs are always 0: their weights feel only the weight
    decay, which Adam turns into a geometric decay into the denormal range."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 4)
    optimizer = factory.create(layer.named_modules(), lr=3e-4, compiled=False).optim
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(32, 6, generator=generator)
        x[:, :2] = 0.0
        optimizer.zero_grad()
        (layer(x) - 1.0).pow(2).mean().backward()
        optimizer.step()
    return layer, optimizer


def fit_a_few_steps(algo: object) -> None:
    """Five updates of ``algo`` on 200 random transitions with 4 discrete codes."""
    rng = np.random.default_rng(0)
    dataset = d3rlpy.dataset.MDPDataset(
        rng.standard_normal((200, 3)).astype(np.float32), rng.integers(0, 4, (200, 1)),
        rng.standard_normal(200).astype(np.float32), np.r_[np.zeros(199), 1.0],
        action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=4)
    algo.fit(dataset, n_steps=5, n_steps_per_epoch=5, show_progress=False, save_interval=10**9,  # type: ignore[attr-defined]
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())


@pytest.fixture()
def denormals_kept() -> Iterator[None]:
    """The CPU computing on denormals, as in a plain script (another test of the session may have
    run the pipeline, which flushes them for the whole process)."""
    before = flushing_denormals()
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(before)


@pytest.mark.usefixtures("denormals_kept")
def test_weight_decay_makes_denormals_that_the_presets_adam_never_keeps() -> None:
    plain_layer, plain = train_dead_inputs(AdamFactory(weight_decay=1e-3), 3000)
    layer, ours = train_dead_inputs(DenormalFreeAdamFactory(weight_decay=1e-3), 3000)
    assert denormal_count(plain) > 0  # the premise: plain Adam with weight decay stores denormals
    assert denormal_count(ours) == 0  # 3000 steps end on a sweep
    # the same training otherwise: the two differ only by values too small to matter
    assert (layer.weight - plain_layer.weight).abs().max().item() < negligible_magnitude(torch.float32)
    assert torch.equal(layer.weight[:, 2:], plain_layer.weight[:, 2:])
    assert torch.equal(layer.bias, plain_layer.bias)


def test_sweep_zeroes_only_negligible_values() -> None:
    param = torch.nn.Parameter(torch.tensor([1e-38, -1e-32, 1e-30, -0.5, 0.0, 3e-39]))
    optimizer = torch.optim.Adam([param])
    optimizer.state[param]["exp_avg"] = torch.tensor([1e-40, 2e-31, 1e-20, 1.0, -1e-33, 0.0])
    before = param.detach().clone(), optimizer.state[param]["exp_avg"].clone()
    sweep_negligible_values(optimizer)
    after = param.detach(), optimizer.state[param]["exp_avg"]
    for old, new, zeroed in zip(before, after, ([0, 1, 5], [0, 4])):
        assert (new[zeroed] == 0).all()
        kept = [i for i in range(6) if i not in zeroed]
        assert torch.equal(new[kept], old[kept])


def test_presets_use_it_and_a_saved_model_gets_it_back(tmp_path: Path) -> None:
    algo = saq_iql_config(hidden_units=(16,), batch_size=32).create(device="cpu:0")
    assert isinstance(algo.config.critic_optim_factory, DenormalFreeAdamFactory)
    fit_a_few_steps(algo)
    algo.save(str(tmp_path / "iql.d3"))
    loaded = d3rlpy.load_learnable(str(tmp_path / "iql.d3"))
    assert isinstance(loaded.config.critic_optim_factory, DenormalFreeAdamFactory)
    optim = loaded.impl.modules.critic_optim.optim
    assert optim._optimizer_step_post_hooks  # noqa: SLF001 - the sweep is attached again


@pytest.mark.parametrize("interval", [0, -1, 2.5, True])
def test_sweep_interval_must_be_a_positive_int(interval: object) -> None:
    with pytest.raises(ValueError, match="sweep_interval"):
        DenormalFreeAdamFactory(sweep_interval=interval)  # type: ignore[arg-type]


def test_with_the_flag_the_optimizer_is_plain_adam_to_the_bit() -> None:
    """Under torch.set_flush_denormal(True) the CPU keeps denormals out and the sweep stands
    aside: the results of runs made with the flag stay exactly what plain Adam gave."""
    before = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        assert flushing_denormals()
        plain_layer, _ = train_dead_inputs(AdamFactory(weight_decay=1e-3), 3000)
        layer, _ = train_dead_inputs(DenormalFreeAdamFactory(weight_decay=1e-3), 3000)
    finally:
        torch.set_flush_denormal(before)
    assert torch.equal(layer.weight, plain_layer.weight) and torch.equal(layer.bias, plain_layer.bias)


@pytest.mark.usefixtures("denormals_kept")
def test_fused_is_the_same_adam_in_one_kernel_and_keeps_the_sweep() -> None:
    plain_layer, _ = train_dead_inputs(DenormalFreeAdamFactory(weight_decay=1e-3), 3000)
    layer, fused = train_dead_inputs(DenormalFreeAdamFactory(weight_decay=1e-3, fused=True), 3000)
    assert fused.param_groups[0]["fused"] is True
    assert denormal_count(fused) == 0  # the sweep still keeps denormals out
    # the same update: 3,000 steps apart only by float rounding
    torch.testing.assert_close(layer.weight, plain_layer.weight, rtol=0, atol=1e-5)
    torch.testing.assert_close(layer.bias, plain_layer.bias, rtol=0, atol=1e-5)


def test_iql_and_brac_presets_fuse_and_a_saved_model_keeps_it(tmp_path: Path) -> None:
    from saq_wrappers.integrations.d3rlpy.presets import saq_bc_config, saq_brac_config, saq_cql_config

    assert saq_iql_config().critic_optim_factory.fused and saq_brac_config().actor_optim_factory.fused
    # SAQ-BC and SAQ-CQL keep the per-parameter loop: their committed runs reproduce to the bit
    assert not saq_bc_config().optim_factory.fused and not saq_cql_config().optim_factory.fused
    algo = saq_brac_config(hidden_units=(16,), batch_size=32).create(device="cpu:0")
    fit_a_few_steps(algo)
    assert algo.impl.modules.critic_optim.optim.param_groups[0]["fused"] is True
    algo.save(str(tmp_path / "brac.d3"))
    loaded = d3rlpy.load_learnable(str(tmp_path / "brac.d3"))
    assert loaded.config.critic_optim_factory.fused
    assert loaded.impl.modules.critic_optim.optim.param_groups[0]["fused"] is True
