"""Denoising score matching for the behavior model (ARQ appendix A.2; Song et al. 2021 eq. 7).

Loss per sample: ``|| s(t) * score(x_t, s, t) + z ||^2`` summed over action dims, with
``x_t = m(t) a + s(t) z``, ``t ~ U(t_eps, 1)``: the ``lambda(t) = s(t)^2`` weighting of the
authors (marginal-std weighting). Adam with learning rate 1e-4, batch 512, and an exponential
moving average of the weights (0.999) that is the model used for sampling.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from saq_wrappers.score.network import ScoreNet
from saq_wrappers.score.sde import VPSDE


def dsm_loss(net: ScoreNet, sde: VPSDE, obs: torch.Tensor, actions: torch.Tensor,
             t_eps: float = 1e-5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Marginal-std weighted denoising score matching loss (mean over the batch)."""
    t = torch.rand(actions.shape[0], generator=generator) * (sde.T - t_eps) + t_eps
    z = torch.randn(actions.shape, generator=generator)
    mean, std = sde.marginal(t)
    x_t = mean[:, None] * actions + std[:, None] * z
    score = net(x_t, obs, t)
    return ((score * std[:, None] + z) ** 2).sum(-1).mean()


@torch.no_grad()
def ema_update(target: torch.nn.Module, source: torch.nn.Module, decay: float) -> None:
    """One step of the weights' exponential moving average, in place:
    ``target <- decay * target + (1 - decay) * source`` for every parameter.

    The averaged copy is the model used for sampling (ARQ appendix A.2, decay 0.999).
    """
    for p_t, p_s in zip(target.parameters(), source.parameters()):
        p_t.mul_(decay).add_(p_s, alpha=1.0 - decay)


def train_score_nets(
    nets: list[ScoreNet],
    sde: VPSDE,
    obs: np.ndarray,
    actions: np.ndarray,
    *,
    n_steps: int,
    batch_size: int = 512,
    learning_rate: float = 1e-4,
    ema_decay: float = 0.999,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[ScoreNet], dict[str, Any]]:
    """Train each ensemble member on its own minibatches; return the EMA copies and losses.

    ``obs``/``actions`` are already z-scored. Members see different random minibatches of the
    same data (ARQ appendix A.2, ensembles). Returns ``(ema_nets, {"loss": [...], ...})`` with
    the mean loss of every ``log_every`` steps.
    """
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    act_t = torch.as_tensor(actions, dtype=torch.float32)
    n_rows = len(obs_t)
    emas: list[ScoreNet] = []
    history: list[float] = []
    log_every = max(1, n_steps // 100)
    for k, net in enumerate(nets):
        generator = torch.Generator().manual_seed(seed * 1000 + k)
        ema = copy.deepcopy(net)
        ema.requires_grad_(False)
        optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
        running = 0.0
        bar = tqdm(range(n_steps), desc=f"score model {k + 1}/{len(nets)}", disable=not progress)
        for step in bar:
            idx = torch.randint(0, n_rows, (min(batch_size, n_rows),), generator=generator)
            loss = dsm_loss(net, sde, obs_t[idx], act_t[idx], generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # EMA warm-up (Song et al.'s ExponentialMovingAverage): early weights fade fast.
            ema_update(ema, net, min(ema_decay, (1.0 + step) / (10.0 + step)))
            running += float(loss.detach())
            if (step + 1) % log_every == 0:
                history.append(running / log_every)
                bar.set_postfix(loss=f"{running / log_every:.4f}")
                running = 0.0
        emas.append(ema)
    final = float(np.mean(history[-max(1, len(history) // 10):])) if history else float("nan")
    return emas, {"loss": history, "final_loss": final, "n_steps": n_steps}
