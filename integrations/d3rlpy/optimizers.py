"""Adam for the SAQ presets, at full CPU speed in any script.

Why this exists. The presets train with Adam and L2 weight decay 1e-3 (the SAQ authors' runs).
A weight whose data gradient is zero -- the first-layer column of an observation dimension that
is constant in the data, a unit behind a dead ReLU -- then only feels the decay, and Adam's
normalisation turns that into a geometric decay of the weight and of both moment estimates
towards zero. Within a few thousand updates thousands of them are float32 denormals (below
1.2e-38), and x86 CPUs compute on denormals 10-100x slower: on the D4RL kitchen data a
``saq_iql_config()`` model fell from 50 to 9 updates/s after 4,000 updates (the measurements are
in ``docs/guide/speed.md``).

``torch.set_flush_denormal(True)`` hides it, but it is a process-wide flag a user of the plain
d3rlpy API must know about, it changes the arithmetic of everything else in the process, and it
reaches only the calling thread and threads started after it (torch's intra-op pool started
before it keeps computing on denormals). :class:`DenormalFreeAdamFactory` instead keeps the
denormals from ever being stored: every :data:`SWEEP_INTERVAL` steps it sets to zero each value
of the parameters and moment estimates whose magnitude is below :func:`negligible_magnitude`.
Where the flag is on, the CPU already keeps denormals out and the sweep stands aside, so a run
made with the flag (the pipeline's, the benchmark suites') computes exactly what it did before.

Why a sweep is floating-point noise to the update it follows: a weight below 2e-31 contributes nothing
a float32 sum of O(1) terms can hold; a first moment below it moves its weight by less than
``lr * 2e-31 / eps`` (eps = 1e-8); a second moment below it changes Adam's denominator
``sqrt(v) + eps`` by less than 5e-16 against ``eps``. Why the threshold sits 2^24 above the
smallest normal: the fastest decay in Adam is the first moment's, by ``beta1 = 0.9`` a step, which
shrinks a value by 2^-15 over the 100 steps between sweeps, so no value crosses from above the
threshold into the denormal range unseen. Small as they are, such changes are not nothing to a
training run: a unit whose pre-activation is 1e-35 instead of 0 passes gradient through its ReLU,
and thousands of updates later the run has diverged from the unswept one as far as runs with
different seeds do (measured in ``docs/guide/speed.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import torch
from d3rlpy.optimizers.optimizers import AdamFactory, register_optimizer_factory
from torch import nn
from torch.optim import Adam, Optimizer

__all__ = ["DenormalFreeAdamFactory", "SWEEP_INTERVAL", "attach_sweep", "flushing_denormals", "negligible_magnitude",
           "sweep_negligible_values"]

#: Optimizer steps between two sweeps (see the module docstring for why 100 is safe).
SWEEP_INTERVAL = 100
#: Binades between the smallest normal float and the sweep's threshold.
_MARGIN_BINADES = 24
#: Devices on which ``DenormalFreeAdamFactory(fused=True)`` uses torch's fused Adam.
_FUSED_DEVICES = ("cpu", "cuda")
#: A float32 denormal (below 1.2e-38), as a Python float.
_DENORMAL = 1e-39


def negligible_magnitude(dtype: torch.dtype) -> float:
    """The magnitude below which :func:`sweep_negligible_values` zeroes values of ``dtype``:
    ``2^24`` times its smallest normal (2e-31 for float32 and bfloat16)."""
    return float(torch.finfo(dtype).tiny) * 2.0**_MARGIN_BINADES


def _sweepable(tensor: Any) -> bool:
    """Floating tensors on the CPU whose threshold is negligible: GPUs compute on denormals at
    full speed, and float16's smallest normal (6e-5) is not negligible."""
    return (isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.device.type == "cpu"
            and tensor.dim() > 0 and negligible_magnitude(tensor.dtype) < 1e-30)


@torch.no_grad()
def sweep_negligible_values(optimizer: Optimizer) -> None:
    """Set to zero every value of ``optimizer``'s parameters and state tensors (Adam's moment
    estimates) whose magnitude is below :func:`negligible_magnitude` of its dtype."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for tensor in (param, *optimizer.state.get(param, {}).values()):
                if _sweepable(tensor):
                    tensor.masked_fill_(tensor.abs() < negligible_magnitude(tensor.dtype), 0.0)


def flushing_denormals() -> bool:
    """Whether this thread's float arithmetic flushes denormals to zero
    (``torch.set_flush_denormal(True)``): a float32 denormal made here comes out as 0."""
    return torch.tensor([_DENORMAL], dtype=torch.float32).mul(1.0).item() == 0.0


def attach_sweep(optimizer: Optimizer, interval: int = SWEEP_INTERVAL) -> None:
    """Run :func:`sweep_negligible_values` after every ``interval``-th ``optimizer.step()``,
    unless the step ran with denormals flushed (:func:`flushing_denormals`): then the CPU keeps
    them out itself, and the optimizer computes exactly what plain Adam computes under the flag
    (the results of runs made with the flag stay what they were)."""
    steps = 0

    def after_step(opt: Optimizer, args: Any, kwargs: Any) -> None:
        nonlocal steps
        steps += 1
        if steps % interval == 0 and not flushing_denormals():
            sweep_negligible_values(opt)

    optimizer.register_step_post_hook(after_step)


@dataclasses.dataclass()
class DenormalFreeAdamFactory(AdamFactory):
    """d3rlpy's ``AdamFactory`` (Adam with L2 ``weight_decay``, the same update) whose optimizers
    never store float32 denormals (:func:`sweep_negligible_values` every ``sweep_interval``
    steps).

    The presets' optimizer (:func:`~saq_wrappers.integrations.d3rlpy.presets.saq_optimizer`).
    Registered with d3rlpy when :mod:`saq_wrappers.integrations.d3rlpy` is imported, so a saved
    model's config names it (``"denormal_free_adam"``) and ``d3rlpy.load_learnable`` rebuilds it
    there.

    Args:
        sweep_interval: optimizer steps between sweeps (> 0).
        fused: update all parameters in one fused kernel (``torch.optim.Adam(fused=True)``) where
            every parameter is on the CPU or a CUDA device. The same update, about three times
            faster on the CPU for 256-unit MLPs, but its float rounding differs from the
            per-parameter loop's (about 1e-8 a step), so a run is not the unfused run to the bit.
            SAQ-IQL's and SAQ-BRAC's presets use it; the others keep the unfused loop, whose
            committed runs reproduce to the bit.
    """

    sweep_interval: int = SWEEP_INTERVAL
    fused: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.sweep_interval, bool) or not isinstance(self.sweep_interval, int) or self.sweep_interval < 1:
            raise ValueError(f"sweep_interval must be an int >= 1, got {self.sweep_interval!r}")

    def create_optimizer(self, named_modules: Iterable[tuple[str, nn.Module]], lr: float) -> Adam:
        named_modules = list(named_modules)
        params = list(dict.fromkeys(param for _, module in named_modules for param in module.parameters()))
        if self.fused and params and all(param.device.type in _FUSED_DEVICES for param in params):
            optimizer = Adam(params, lr=lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
                             amsgrad=self.amsgrad, fused=True)
        else:
            optimizer = super().create_optimizer(named_modules, lr)
        attach_sweep(optimizer, self.sweep_interval)
        return optimizer

    @staticmethod
    def get_type() -> str:
        return "denormal_free_adam"


register_optimizer_factory(DenormalFreeAdamFactory)
