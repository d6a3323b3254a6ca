"""The torch module of SAQ's VQ-VAE (Luo et al., CoRL 2023, section 4.1, SAQ eqs. 5-7).

It works in the normalized (z-scored) observation and action spaces; the user-facing
:class:`~saq_wrappers.vqvae.quantizer.VQVAEQuantizer` does the normalization around it.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["StateConditionedVQVAE"]


def _mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> nn.Sequential:
    """ReLU MLP ``in_dim -> hidden_sizes -> out_dim`` (the authors' encoder and decoder)."""
    layers: list[nn.Module] = []
    last = in_dim
    for size in hidden_sizes:
        layers += [nn.Linear(last, int(size)), nn.ReLU()]
        last = int(size)
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class StateConditionedVQVAE(nn.Module):
    """The SAQ VQ-VAE: ``e(s, a)`` -> nearest code ``e_k`` (SAQ eq. 5) -> ``decoder(s, e_k)``.

    Inputs are expected already normalized (:class:`~saq_wrappers.vqvae.VQVAEQuantizer` does
    that). Encoder and decoder are ReLU MLPs; the codebook is a ``K x D`` parameter trained by the
    codebook term of SAQ eq. 7 (no EMA, as in the paper).

    ``state_conditioned=False`` is the paper's "no state" ablation (Table 3): the state input of
    both encoder and decoder is replaced by zeros, so the ``K`` codes are the same ``K`` actions
    at every state.

    Args:
        obs_dim: flattened observation size.
        act_dim: action size.
        n_codes: codebook size ``K``.
        embedding_dim: code/embedding size ``D``.
        hidden_sizes: hidden widths of both MLPs.
        state_conditioned: condition encoder and decoder on the state (SAQ) or on zeros.
        generator: seeds the initial weights without touching torch's global RNG.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_codes: int,
        embedding_dim: int = 128,
        hidden_sizes: Sequence[int] = (512, 512),
        state_conditioned: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.n_codes = int(n_codes)
        self.embedding_dim = int(embedding_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.state_conditioned = bool(state_conditioned)
        self.encoder = _mlp(self.obs_dim + self.act_dim, self.hidden_sizes, self.embedding_dim)
        self.decoder = _mlp(self.obs_dim + self.embedding_dim, self.hidden_sizes, self.act_dim)
        self.codebook = nn.Parameter(torch.empty(self.n_codes, self.embedding_dim))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default ``Linear`` init (``U(+-1/sqrt(fan_in))``) drawn from ``generator``;
        codebook ``U(+-1/K)`` as in van den Oord et al. (usually replaced by k-means++ in fit)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
        self.codebook.uniform_(-1.0 / self.n_codes, 1.0 / self.n_codes, generator=generator)

    def _state(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.state_conditioned else torch.zeros_like(obs)

    def embed(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Continuous encoder embedding ``e_phi(s, a)``, ``(B, D)``."""
        return self.encoder(torch.cat([self._state(obs), actions], dim=-1))

    def nearest(self, embedding: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook vector by squared L2 distance (SAQ eq. 5), ``(B,)``."""
        distances = (
            embedding.pow(2).sum(-1, keepdim=True)
            - 2.0 * embedding @ self.codebook.t()
            + self.codebook.pow(2).sum(-1)[None, :]
        )
        return distances.argmin(dim=-1)

    def encode(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Codes ``k = argmin_j ||e(s, a) - e_j||^2`` (SAQ eq. 5), int64 ``(B,)``."""
        return self.nearest(self.embed(obs, actions))

    def decode_embedding(self, obs: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``p_theta(a | s, z)``'s mean: the decoder MLP on ``concat(s, z)``."""
        return self.decoder(torch.cat([self._state(obs), embedding], dim=-1))

    def decode(self, obs: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Normalized action decoded from ``(s, e_k)``."""
        return self.decode_embedding(obs, self.codebook[codes])

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, codes, embedding, code_vectors)`` with the straight-through
        estimator: the decoder sees ``e_k`` but gradients flow to ``e(s, a)``."""
        embedding = self.embed(obs, actions)
        codes = self.nearest(embedding.detach())
        code_vectors = self.codebook[codes]
        straight_through = embedding + (code_vectors - embedding).detach()
        return self.decode_embedding(obs, straight_through), codes, embedding, code_vectors

    def loss(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        codebook_weight: float = 1.0,
        commitment_weight: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """SAQ eq. 7: ``|a - a_hat|^2 + cb * |sg[e(s,a)] - e_k|^2 + cm * |e(s,a) - sg[e_k]|^2``.

        The reconstruction term (a unit-variance Gaussian ``-log p_theta(a | z)`` up to constants)
        is the squared error summed over action dimensions, averaged over the batch, as in the
        authors' code. Returns the total loss and its detached parts (with ``codes``).
        """
        reconstruction, codes, embedding, code_vectors = self(obs, actions)
        recon = (reconstruction - actions).pow(2).sum(-1).mean()
        codebook = (embedding.detach() - code_vectors).pow(2).sum(-1).mean()
        commitment = (embedding - code_vectors.detach()).pow(2).sum(-1).mean()
        total = recon + codebook_weight * codebook + commitment_weight * commitment
        parts = {
            "loss": total.detach(),
            "reconstruction": recon.detach(),
            "codebook": codebook.detach(),
            "commitment": commitment.detach(),
            "codes": codes,
        }
        return total, parts
