"""The VQ-VAE training loop: SAQ eq. 7 minimised with Adam, plus codebook care.

Beyond the authors' recipe (which has neither), the codebook is initialised by k-means++ on
encoder embeddings of the data, and codes unused over the last ``restart_every`` updates are
restarted at embeddings of random data points (no restarts in the last ``1 - restart_until`` of
training, so the final codebook settles). Both keep all ``K`` codes in use, so the discrete action
space offline RL sees (SAQ eq. 5) really has ``K`` actions.

Everything random is drawn from the two generators passed in, in a fixed order, so a seeded fit
is bit-identical from run to run on the same device, torch build and number of torch threads
(another thread count sums floats in another order: the weights then differ by rounding).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from saq_wrappers.metrics import code_usage_from_counts
from saq_wrappers.vqvae.config import QuantizerConfig
from saq_wrappers.vqvae.model import StateConditionedVQVAE

__all__ = ["KMEANS_MAX_CODES", "kmeans_plus_plus", "restart_dead_codes", "train_vqvae"]

#: Data rows whose embeddings seed the k-means++ codebook initialisation.
KMEANS_SAMPLE_ROWS = 4096
#: Largest codebook k-means++ initialises (about 2 s on one CPU core at this size; the cost
#: grows as ``K * rows``). Larger codebooks start at the embeddings of ``K`` distinct random
#: data rows instead, with a warning.
KMEANS_MAX_CODES = 4096
#: The loss parts averaged between two entries of the loss history, in this order.
LOSS_PARTS = ("loss", "reconstruction", "codebook", "commitment")


def kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` seeds chosen by k-means++ (D^2 sampling); repeats only if the points
    have fewer than ``k`` distinct values."""
    n = len(points)
    chosen = [int(rng.integers(n))]
    d2 = ((points - points[chosen[0]]) ** 2).sum(-1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            nxt = int(rng.integers(n))
        else:
            nxt = int(rng.choice(n, p=d2 / total))
        chosen.append(nxt)
        d2 = np.minimum(d2, ((points - points[nxt]) ** 2).sum(-1))
    return np.asarray(chosen, dtype=np.int64)


@torch.no_grad()
def init_codebook_kmeans_plus_plus(
    model: StateConditionedVQVAE,
    obs_t: torch.Tensor,
    act_t: torch.Tensor,
    rng: np.random.Generator,
) -> None:
    """Set the codebook to k-means++ seeds among the encoder embeddings of (up to
    :data:`KMEANS_SAMPLE_ROWS`) data rows, so every code starts where data embeds.

    A codebook above :data:`KMEANS_MAX_CODES` (which needs ``K <= rows``, checked by the
    quantizer) starts at the embeddings of ``K`` distinct random rows instead: k-means++ would
    take minutes with no progress shown.
    """
    n_rows = len(obs_t)
    k = model.n_codes
    sample = rng.choice(n_rows, size=min(n_rows, max(KMEANS_SAMPLE_ROWS, k)), replace=False)
    index = torch.from_numpy(np.sort(sample)).to(obs_t.device)
    embeddings = model.embed(obs_t[index], act_t[index]).cpu().numpy()
    if k <= KMEANS_MAX_CODES:
        chosen = kmeans_plus_plus(embeddings.astype(np.float64), k, rng)
    else:
        warnings.warn(
            f"codebook_init='kmeans++' is skipped for n_codes={k} > {KMEANS_MAX_CODES} (its "
            f"cost grows with K): the codes start at the embeddings of {k} distinct random data "
            "rows instead",
            UserWarning,
            stacklevel=4,  # the caller of VQVAEQuantizer.fit
        )
        chosen = rng.permutation(len(sample))[:k]
    model.codebook.copy_(torch.from_numpy(embeddings[chosen]))


@torch.no_grad()
def restart_dead_codes(
    model: StateConditionedVQVAE,
    optimizer: torch.optim.Optimizer,
    dead: torch.Tensor,
    obs_t: torch.Tensor,
    act_t: torch.Tensor,
    generator: torch.Generator,
) -> None:
    """Move dead codes onto encoder embeddings of random data points and clear their Adam
    moments, so they start competing for data again (not in the authors' recipe)."""
    rows = torch.randint(len(obs_t), (len(dead),), generator=generator).to(obs_t.device)
    model.codebook[dead] = model.embed(obs_t[rows], act_t[rows])
    state = optimizer.state.get(model.codebook)
    if state:
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][dead] = 0.0


def train_vqvae(
    model: StateConditionedVQVAE,
    obs_t: torch.Tensor,
    act_t: torch.Tensor,
    config: QuantizerConfig,
    n_steps: int,
    *,
    torch_generator: torch.Generator,
    numpy_generator: np.random.Generator,
    progress: bool,
) -> tuple[list[dict[str, float]], list[dict[str, int]]]:
    """Train ``model`` in place on normalized ``obs_t``/``act_t`` for ``n_steps`` updates.

    Minimises SAQ eq. 7 with Adam on minibatches drawn with ``torch_generator`` (which must be
    the one that just initialised ``model``); ``numpy_generator`` drives the k-means++ init.
    Returns ``(history, restarts)``: every ``log_every`` updates the mean ``loss``,
    ``reconstruction``, ``codebook`` and ``commitment`` terms with the window's ``perplexity`` and
    ``dead_codes`` (:func:`~saq_wrappers.metrics.code_usage_from_counts`), and one
    ``{"step", "codes"}`` entry per dead-code restart event. ``config.batch_size`` must not
    exceed the rows (the quantizer lowers it).
    """
    cfg = config
    device = obs_t.device
    n_rows = len(obs_t)
    if cfg.codebook_init == "kmeans++":
        init_codebook_kmeans_plus_plus(model, obs_t, act_t, numpy_generator)

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    restart_window = torch.zeros(cfg.n_codes, dtype=torch.int64, device=device)
    log_window = torch.zeros(cfg.n_codes, dtype=torch.int64, device=device)
    sums = torch.zeros(len(LOSS_PARTS), device=device)  # on device: no host sync per update
    history: list[dict[str, float]] = []
    restarts: list[dict[str, int]] = []
    last_restart_step = int(cfg.restart_until * n_steps)
    bar = _progress_bar(n_steps, progress)
    model.train()
    try:
        for step in range(1, n_steps + 1):
            batch = torch.randint(n_rows, (cfg.batch_size,), generator=torch_generator).to(device)
            loss, parts = model.loss(
                obs_t[batch], act_t[batch], cfg.codebook_weight, cfg.commitment_weight
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            counts = torch.bincount(parts["codes"], minlength=cfg.n_codes)
            restart_window += counts
            log_window += counts
            sums += torch.stack([parts[k] for k in LOSS_PARTS])

            if step % cfg.log_every == 0 or step == n_steps:
                count = step - (history[-1]["step"] if history else 0)
                means = (sums.double() / count).tolist()
                sums.zero_()
                usage = code_usage_from_counts(log_window.cpu().numpy())
                log_window.zero_()
                history.append(
                    {
                        "step": step,
                        **dict(zip(LOSS_PARTS, means)),
                        "perplexity": usage["perplexity"],
                        "dead_codes": usage["dead_codes"],
                    }
                )
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{means[0]:.4f}",
                        recon=f"{means[1]:.4f}",
                        ppl=f"{usage['perplexity']:.1f}",
                        dead=usage["dead_codes"],
                        refresh=False,
                    )

            if step % cfg.restart_every == 0:
                if cfg.dead_code_restart and step <= last_restart_step:
                    dead = torch.nonzero(restart_window == 0).flatten()
                    if len(dead):
                        restart_dead_codes(model, optimizer, dead, obs_t, act_t, torch_generator)
                        restarts.append({"step": step, "codes": int(len(dead))})
                restart_window.zero_()
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return history, restarts


def _progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar for the fit, or ``None`` when ``enabled`` is false."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fit VQ-VAE", unit="step", mininterval=0.5)
