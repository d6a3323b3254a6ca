"""State-conditioned score network ``s(a | s, t)`` (ARQ appendix A.2 and the authors' published settings).

Architecture (our own code, following the authors' description): a Gaussian-Fourier embedding of
``t`` (scale 30) projected to the hidden width and *added before every layer*; an input layer on
the action plus a projection of the (z-scored) state; 3 residual blocks of 2 dense layers; swish;
the output divided by the marginal std ``s(t)`` of the VP-SDE, so the network predicts ``-z``
(the noise direction) at unit scale.

Every score model in this package (this network, an ensemble of them, or the closed-form
:class:`~saq_wrappers.score.gaussian_mixture.GaussianMixtureScore` used by the tests) implements
:class:`ScoreFunction`: ``condition(obs)`` computes per-state features once per solve, then
``score(x, cond, t)`` is evaluated many times. Splitting the two lets the samplers reuse the state
projection across all solver steps and all ``N`` samples of a state.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from saq_wrappers.score.sde import VPSDE


@runtime_checkable
class ScoreFunction(Protocol):
    """A conditional score ``grad_x log p_t(x | s)`` in the normalized action space."""

    action_dim: int

    def condition(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, obs_dim)`` normalized states -> ``(B, ...)`` features, rows aligned with ``obs``."""
        ...

    def score(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x (M, d)``, ``cond (M, ...)``, ``t (M,)`` or ``(1,)`` -> ``(M, d)``."""
        ...


class GaussianFourierProjection(nn.Module):
    """Fixed random Fourier features of ``t`` (Tancik et al. 2020), as in Song et al. 2021."""

    def __init__(self, dim: int, scale: float = 30.0) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(dim // 2) * scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        proj = t[:, None] * self.weight[None, :] * (2.0 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class _ResidualBlock(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.time1 = nn.Linear(hidden, hidden)
        self.dense1 = nn.Linear(hidden, hidden)
        self.time2 = nn.Linear(hidden, hidden)
        self.dense2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        z = nn.functional.silu(self.dense1(h + self.time1(emb)))
        z = self.dense2(z + self.time2(emb))
        return nn.functional.silu(h + z)


class ScoreNet(nn.Module):
    """``s_psi(a | s, t)``: Fourier time embedding, residual blocks, swish, output / ``s(t)``.

    Args:
        obs_dim: flattened state dimension.
        action_dim: action dimension ``d``.
        hidden: embedding size (256 in the paper).
        n_blocks: residual blocks (3 in the paper).
        fourier_scale: scale of the random Fourier time features (30).
        sde: the VP-SDE whose marginal std divides the output.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: int = 256,
        n_blocks: int = 3,
        fourier_scale: float = 30.0,
        sde: VPSDE | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.sde = sde or VPSDE()
        self.time_embed = nn.Sequential(
            GaussianFourierProjection(hidden, fourier_scale), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.obs_in = nn.Linear(obs_dim, hidden)
        self.action_in = nn.Linear(action_dim, hidden, bias=False)
        self.time_in = nn.Linear(hidden, hidden, bias=False)
        self.blocks = nn.ModuleList(_ResidualBlock(hidden) for _ in range(n_blocks))
        self.time_out = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, action_dim)

    def condition(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_in(obs)

    def score(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # When every row shares one time (fixed-step solvers pass t of shape (1,)), the time
        # embedding and its projections are computed once and broadcast.
        emb = self.time_embed(t)
        h = nn.functional.silu(self.action_in(x) + cond + self.time_in(emb))
        for block in self.blocks:
            h = block(h, emb)
        out = self.out(h + self.time_out(emb))
        std = self.sde.marginal_std(t)[:, None]
        return out / std

    def score_and_divergence(
        self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, tangent_dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`score` and its exact divergence ``tr(d score / d x)`` in one forward-mode pass.

        The ``d`` columns of the Jacobian are pushed through the network alongside the primal
        pass as one ``(M * d, hidden)`` tangent batch (forward-mode differentiation written out
        for this architecture: ``d silu(u) = silu'(u) du``, ``d (W h) = W dh``), so every layer
        costs one GEMM for the primal and one for all ``d`` tangents, with no autograd graph.
        The score equals :meth:`score` (same ops); the divergence equals the autograd trace up to
        float rounding. ``tangent_dtype=torch.bfloat16`` runs the tangent GEMMs in bfloat16
        (fp32 accumulation; faster on CPUs with native bfloat16) while the primal, hence the
        score and the sample trajectory, stays float32, so only the divergence, hence the
        log-likelihood, carries bfloat16 rounding (its size: design note ``docs/notes/arq.md``).

        Returns ``(score (M, d), div (M,))``.
        """
        silu_grad = torch.ops.aten.silu_backward  # silu_grad(g, u) = g * silu'(u), one fused kernel
        M, d = x.shape
        emb = self.time_embed(t)
        pre = self.action_in(x) + cond + self.time_in(emb)
        hidden = pre.shape[-1]
        h = nn.functional.silu(pre)
        w_in = self.action_in.weight.T.to(tangent_dtype)  # (d, hidden): row i = d pre / d x_i
        dh = silu_grad(w_in[None].expand(M, d, hidden), pre.to(tangent_dtype)[:, None, :]).reshape(M * d, hidden)
        for block in self.blocks:
            pre1 = block.dense1(h + block.time1(emb))
            z = nn.functional.silu(pre1)
            dpre1 = torch.mm(dh, block.dense1.weight.T.to(tangent_dtype)).view(M, d, hidden)
            dz = silu_grad(dpre1, pre1.to(tangent_dtype)[:, None, :]).view(M * d, hidden)
            u = h + block.dense2(z + block.time2(emb))
            du = torch.addmm(dh, dz, block.dense2.weight.T.to(tangent_dtype)).view(M, d, hidden)
            h = nn.functional.silu(u)
            dh = silu_grad(du, u.to(tangent_dtype)[:, None, :]).view(M * d, hidden)
        out = self.out(h + self.time_out(emb))
        dout = torch.mm(dh, self.out.weight.T.to(tangent_dtype)).to(out.dtype).view(M, d, d)  # [m, i, j] = d out_j / d x_i
        std = self.sde.marginal_std(t)
        return out / std[:, None], torch.diagonal(dout, dim1=1, dim2=2).sum(-1) / std

    def forward(self, x: torch.Tensor, obs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.score(x, self.condition(obs), t)


class EnsembleScore(nn.Module):
    """Mean score of several :class:`ScoreNet` s (the paper's 3-model ensembles, Table A.1)."""

    def __init__(self, members: list[ScoreNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.action_dim = members[0].action_dim

    def condition(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.condition(obs) for m in self.members], dim=1)

    def score(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if len(self.members) == 1:
            return self.members[0].score(x, cond[:, 0], t)
        total = self.members[0].score(x, cond[:, 0], t)
        for k, member in enumerate(self.members[1:], start=1):
            total = total + member.score(x, cond[:, k], t)
        return total / len(self.members)

    def score_and_divergence(
        self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, tangent_dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean score and its exact divergence (the divergence is linear), see :meth:`ScoreNet.score_and_divergence`."""
        score, div = self.members[0].score_and_divergence(x, cond[:, 0], t, tangent_dtype)
        for k, member in enumerate(self.members[1:], start=1):
            s_k, div_k = member.score_and_divergence(x, cond[:, k], t, tangent_dtype)
            score, div = score + s_k, div + div_k
        if len(self.members) > 1:
            score, div = score / len(self.members), div / len(self.members)
        return score, div
