"""The two decode paths of the quantizer: a numpy copy of the decoder for small batches, and
the torch module in chunks for large ones.

A Gymnasium wrapper decodes one observation per ``env.step``; at that size torch's per-call
overhead dominates the few small matrix products, so the decoder (``decoder(s, e_k)`` of SAQ
section 4.1) is copied to numpy with everything that does not depend on the observation
precomputed. Both paths give the same actions (to float32 rounding) and clip them into the
action bounds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from saq_wrappers.vqvae.model import StateConditionedVQVAE
from saq_wrappers.vqvae.normalization import Normalizer

__all__ = ["CHUNK_ROWS", "NUMPY_MAX_ROWS", "NumpyDecoder", "decode_torch"]

#: Largest batch :meth:`VQVAEQuantizer.decode` serves with the numpy path (batch rows; for
#: :meth:`~VQVAEQuantizer.candidates` it is compared with ``batch * K``).
NUMPY_MAX_ROWS = 512
#: Rows per chunk when encoding or decoding large datasets with torch.
CHUNK_ROWS = 65_536


class NumpyDecoder:
    """The decoder MLP in numpy, with the normalization folded into its first and last layers.

    Layer 1 of ``concat(s, e_k)`` is ``W_s s + (W_e e_k + b)``: the bracket is precomputed for all
    ``K`` codes (``table``), ``1 / obs_std`` is folded into ``W_s`` and the action
    unnormalization (``* act_std + act_mean``) into the last layer. Weights are float32 copies,
    so later changes to the torch module do not leak in; rebuild after every fit or load.
    """

    __slots__ = ("table", "w_state", "obs_mean", "hidden", "w_out", "b_out", "low", "high")

    @torch.no_grad()
    def __init__(
        self,
        model: StateConditionedVQVAE,
        normalizer: Normalizer,
        low: np.ndarray,
        high: np.ndarray,
    ) -> None:
        obs_dim = model.obs_dim
        linears = [m for m in model.decoder if isinstance(m, nn.Linear)]
        first = linears[0]
        weight = first.weight.detach().cpu().double()
        codebook = model.codebook.detach().cpu().double()
        table = codebook @ weight[:, obs_dim:].t() + first.bias.detach().cpu().double()
        obs_std = torch.from_numpy(normalizer.obs_std).double()
        w_state = weight[:, :obs_dim].t() / obs_std[:, None]
        last = linears[-1]
        act_std = torch.from_numpy(normalizer.act_std).double()
        act_mean = torch.from_numpy(normalizer.act_mean).double()
        w_out = last.weight.detach().cpu().double().t() * act_std[None, :]
        b_out = last.bias.detach().cpu().double() * act_std + act_mean

        def f32(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.numpy().astype(np.float32))

        self.table = f32(table)
        self.w_state = f32(w_state) if model.state_conditioned else None
        self.obs_mean = normalizer.obs_mean.copy()
        self.hidden = [
            (f32(m.weight.detach().cpu().t()), f32(m.bias.detach().cpu())) for m in linears[1:-1]
        ]
        self.w_out = f32(w_out)
        self.b_out = f32(b_out)
        self.low = np.asarray(low, dtype=np.float32).copy()
        self.high = np.asarray(high, dtype=np.float32).copy()

    def decode(self, obs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Clipped actions ``(B, act_dim)`` for flat float32 ``obs (B, obs_dim)`` and valid int
        ``codes (B,)``."""
        h = self.table[codes]
        if self.w_state is not None:
            h += (obs - self.obs_mean) @ self.w_state
        for weight, bias in self.hidden:
            np.maximum(h, 0.0, out=h)
            h = h @ weight
            h += bias
        np.maximum(h, 0.0, out=h)
        out = h @ self.w_out
        out += self.b_out
        np.maximum(out, self.low, out=out)
        np.minimum(out, self.high, out=out)
        return out

    def decode_one(self, obs: np.ndarray, code: int) -> np.ndarray:
        """:meth:`decode` for one flat observation ``(obs_dim,)`` and one valid code, ``(1,
        act_dim)``, with 1-D products (``gemv``) and no fancy indexing: the cheapest path for a
        wrapper's ``step``."""
        if self.w_state is not None:
            h = np.dot(obs - self.obs_mean, self.w_state)
            h += self.table[code]
        else:
            h = self.table[code].copy()
        for weight, bias in self.hidden:
            np.maximum(h, 0.0, out=h)
            h = np.dot(h, weight)
            h += bias
        np.maximum(h, 0.0, out=h)
        out = np.dot(h, self.w_out)
        out += self.b_out
        np.maximum(out, self.low, out=out)
        np.minimum(out, self.high, out=out)
        return out.reshape(1, -1)


@torch.no_grad()
def decode_torch(
    model: StateConditionedVQVAE,
    normalizer: Normalizer,
    obs: np.ndarray,
    codes: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    device: torch.device,
) -> np.ndarray:
    """Clipped actions ``(B, act_dim)`` from the torch module, :data:`CHUNK_ROWS` rows at a time,
    for flat float32 ``obs (B, obs_dim)`` and valid int ``codes (B,)``."""
    out = np.empty((len(obs), model.act_dim), dtype=np.float32)
    for start in range(0, len(obs), CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        o = torch.from_numpy(normalizer.normalize_observations(obs[start:stop])).to(device)
        k = torch.from_numpy(np.asarray(codes[start:stop], dtype=np.int64)).to(device)
        out[start:stop] = model.decode(o, k).cpu().numpy()
    out *= normalizer.act_std
    out += normalizer.act_mean
    return np.clip(out, low, high, out=out)
