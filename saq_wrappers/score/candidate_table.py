"""The candidate table: ``N`` samples and log-likelihoods for every state of a dataset.

ARQ "prepopulates" samples of the behavior model for the dataset's states once and reuses them in
every Q-learning update (ARQ section 4.3, Algorithm 1 line 4). :func:`precompute_candidate_table`
does this in batches and writes the result as a folder:

* ``manifest.json`` -- sizes, ``log_eps``, a SHA-256 of the observations and a fingerprint of the
  sampler, written first (atomically);
* ``chunk_000000.safetensors``, ... -- ``observations``, ``actions (rows, N, d)`` (original action
  space, clipped to the bounds) and ``log_lik (rows, N)`` (normalized action space, the space of
  ``log_eps``), each serialised in memory and written by
  :func:`~saq_wrappers.io.atomic_write_bytes` (a temporary file renamed into place).

Because a chunk only appears under its final name once complete, an interrupted run never
leaves a half-written chunk that could be read: running the same call again resumes after the
last complete chunk (the temporary files of killed runs are removed,
:func:`~saq_wrappers.io.remove_stale_temp_files`), and :meth:`CandidateTable.load` refuses an
incomplete folder. No pickle anywhere.

Candidates are those of :meth:`ScoreSupportSampler.candidates` (seeded per observation), so a
state's table row equals what the sampler's ``candidates`` returns for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file
from safetensors.numpy import save as safetensors_bytes
from tqdm.auto import tqdm

from saq_wrappers.action_set import as_observation_batch
from saq_wrappers.errors import CheckpointError, DataError, OutputPathError
from saq_wrappers.io import atomic_write_bytes, read_json_file, remove_stale_temp_files
from saq_wrappers.score.support_sampler import ScoreSupportSampler, check_log_eps
from saq_wrappers.validation import check_int

MANIFEST = "manifest.json"
TABLE_KIND = "arq_candidate_table"
#: The manifest layout :func:`precompute_candidate_table` writes and :meth:`CandidateTable.load` reads.
MANIFEST_VERSION = 1
#: Largest manifest read (the library writes about 600 bytes): a larger file is not one of its own.
MAX_MANIFEST_BYTES = 2**20
#: The manifest's sizes, each an integer >= 1.
_MANIFEST_SIZES = ("n_rows", "chunk_size", "n_chunks", "n_samples", "action_dim")


def sampler_fingerprint(sampler: ScoreSupportSampler) -> str:
    """SHA-256 over the sampler's weights, normalization, settings and seed."""
    digest = hashlib.sha256()
    for name, tensor in sorted(sampler.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for values in sampler.normalizer.as_dict().values():
        digest.update(np.ascontiguousarray(values).tobytes())
    digest.update(json.dumps([sampler.config, sampler.n_samples, sampler.seed], sort_keys=True).encode())
    return digest.hexdigest()


def _chunk_path(directory: Path, index: int) -> Path:
    return directory / f"chunk_{index:06d}.safetensors"


@dataclass(frozen=True)
class CandidateTable:
    """A loaded candidate table (arrays are read-only).

    Attributes:
        observations: ``(M, *obs_shape)`` float32, the states the candidates were drawn at.
        actions: ``(M, N, act_dim)`` float32 candidates (original space, within the bounds).
        log_lik: ``(M, N)`` float32 log-likelihoods in the normalized action space.
        log_eps: the threshold the table was made with (``valid`` can be recomputed with another).
    """

    observations: np.ndarray
    actions: np.ndarray
    log_lik: np.ndarray
    log_eps: float

    @property
    def valid(self) -> np.ndarray:
        """``(M, N)`` bool: ``log_lik > log_eps`` (ARQ: ``beta(a|s) > eps``)."""
        return self.log_lik > self.log_eps

    def __len__(self) -> int:
        return len(self.observations)

    @classmethod
    def load(cls, directory: str | Path) -> "CandidateTable":
        """Read a complete table; raises :class:`CheckpointError` if chunks are missing."""
        folder = Path(directory)
        manifest = _read_manifest(folder)
        if manifest is None:
            raise CheckpointError(f"{str(folder)!r} has no {MANIFEST}: not a candidate table")
        parts: dict[str, list[np.ndarray]] = {"observations": [], "actions": [], "log_lik": []}
        for index in range(manifest["n_chunks"]):
            path = _chunk_path(folder, index)
            if not path.is_file():
                raise CheckpointError(
                    f"candidate table {str(folder)!r} is incomplete: {path.name} is missing "
                    "(run precompute_candidate_table again with the same arguments to resume)"
                )
            first = parts["observations"][0].shape[1:] if index else None
            chunk = _read_chunk(path, manifest, index, first)
            for key in parts:
                parts[key].append(chunk[key])
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        for array in arrays.values():
            array.setflags(write=False)
        return cls(log_eps=float(manifest["log_eps"]), **arrays)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest (``None`` if it has none), after checking every value it holds: the
    JSON's size and nesting (:func:`~saq_wrappers.io.read_json_file`), its kind and version, the
    sizes (integers >= 1, ``n_chunks`` the number of chunks of ``n_rows``) and ``log_eps``.

    Raises:
        CheckpointError: naming the manifest file and the value that is wrong.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return None
    manifest = read_json_file(path, "candidate-table manifest", MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict) or manifest.get("kind") != TABLE_KIND:
        found = f"kind {manifest.get('kind')!r}" if isinstance(manifest, dict) else f"a JSON {type(manifest).__name__}"
        raise CheckpointError(f"{str(path)!r} is not a candidate-table manifest ({found}, expected an object "
                              f"of kind {TABLE_KIND!r})")
    if manifest.get("version") != MANIFEST_VERSION:
        raise CheckpointError(f"{str(path)!r} is a candidate-table manifest of version {manifest.get('version')!r}; "
                              f"this version of saq-wrappers reads version {MANIFEST_VERSION}")
    try:
        for key in _MANIFEST_SIZES:
            check_int(key, manifest.get(key), 1)
        check_log_eps(manifest.get("log_eps"))
    except DataError as error:
        raise CheckpointError(f"{str(path)!r} is a malformed candidate-table manifest: {error}") from error
    n_rows, chunk_size, n_chunks = manifest["n_rows"], manifest["chunk_size"], manifest["n_chunks"]
    if n_chunks != -(-n_rows // chunk_size):
        raise CheckpointError(f"{str(path)!r} is a malformed candidate-table manifest: n_chunks is {n_chunks:,}, "
                              f"expected {-(-n_rows // chunk_size):,} (n_rows {n_rows:,} in chunks of {chunk_size:,})")
    return manifest


def _chunk_rows(manifest: dict[str, Any], index: int) -> int:
    start = index * manifest["chunk_size"]
    return min(manifest["chunk_size"], manifest["n_rows"] - start)


def _read_chunk(
    path: Path, manifest: dict[str, Any], index: int, obs_shape: tuple[int, ...] | None
) -> dict[str, np.ndarray]:
    """Chunk ``index``'s arrays after checking them against the manifest: shapes (observations of
    ``obs_shape``, the first chunk's, when given), float32 everywhere, finite observations and
    actions, no NaN log-likelihood (a NaN candidate would poison every eq. 5 target using it).

    Raises:
        CheckpointError: naming the chunk file and what is wrong.
    """
    try:
        chunk = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"{str(path)!r} is not a readable chunk ({error})") from error
    rows = _chunk_rows(manifest, index)
    expected = {
        "actions": (rows, manifest["n_samples"], manifest["action_dim"]),
        "log_lik": (rows, manifest["n_samples"]),
    }
    for key, shape in expected.items():
        if key not in chunk or chunk[key].shape != shape:
            raise CheckpointError(f"{str(path)!r} has a malformed {key!r} (expected shape {shape})")
    if "observations" not in chunk or len(chunk["observations"]) != rows:
        raise CheckpointError(f"{str(path)!r} has malformed observations")
    if obs_shape is not None and chunk["observations"].shape[1:] != obs_shape:
        raise CheckpointError(f"{str(path)!r} has observations of shape {chunk['observations'].shape}, "
                              f"expected {(rows, *obs_shape)} (those of the first chunk)")
    for key in ("observations", "actions", "log_lik"):
        if chunk[key].dtype != np.float32:
            raise CheckpointError(f"{str(path)!r}: {key!r} is {chunk[key].dtype}, expected float32")
        bad = np.isnan(chunk[key]) if key == "log_lik" else ~np.isfinite(chunk[key])
        if bad.any():
            raise CheckpointError(f"{str(path)!r}: {key!r} holds {'NaN' if key == 'log_lik' else 'NaN or inf'}")
    return chunk


def precompute_candidate_table(
    sampler: ScoreSupportSampler,
    observations: np.ndarray,
    directory: str | Path,
    *,
    chunk_size: int = 4096,
    batch_size: int = 256,
    progress: bool = True,
) -> CandidateTable:
    """Sample ``N`` candidates + log-likelihoods for every row of ``observations`` (resumable).

    Args:
        sampler: a fitted :class:`ScoreSupportSampler`.
        observations: ``(M, *obs_shape)``; for ARQ's target pass the dataset's
            ``next_observations`` (eq. 5 bootstraps at ``s'``). Not modified.
        directory: output folder (created if its parent exists). If it already holds a table for
            the same observations and sampler, the run resumes; a different one is an error.
        chunk_size: rows per chunk file (the unit of atomicity and of resumption).
        batch_size: states per sampler call (memory ~ ``batch_size * N`` trajectories).
        progress: tqdm bar over rows, with throughput and ETA.

    Raises:
        DataError: ``chunk_size`` or ``batch_size`` is not an integer >= 1, or the observations
            are malformed (before the folder is created); the folder holds another table.
        CheckpointError: the folder's manifest is malformed.
        OutputPathError: the folder cannot be created.
    """
    check_int("chunk_size", chunk_size, 1)
    check_int("batch_size", batch_size, 1)
    obs = as_observation_batch(observations, sampler.observation_space, "observations")
    if len(obs) == 0:
        raise DataError("observations is empty: expected at least one state")
    folder = Path(directory)
    if folder.parent.exists() and not folder.parent.is_dir():
        raise OutputPathError(f"cannot create {str(folder)!r}: {str(folder.parent)!r} is a file, not a folder")
    if not folder.parent.is_dir():
        raise OutputPathError(f"cannot create {str(folder)!r}: its parent folder does not exist")
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"cannot create {str(folder)!r}: it is a file, expected a folder")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"cannot create {str(folder)!r}: {error.strerror or error}") from error
    manifest = {
        "kind": TABLE_KIND,
        "version": MANIFEST_VERSION,
        "n_rows": int(len(obs)),
        "chunk_size": int(chunk_size),
        "n_chunks": int(-(-len(obs) // chunk_size)),
        "n_samples": int(sampler.n),
        "action_dim": int(sampler.action_dim),
        "log_eps": float(sampler.log_eps),
        "observations_sha256": hashlib.sha256(obs.tobytes()).hexdigest(),
        "sampler_fingerprint": sampler_fingerprint(sampler),
        "likelihood_space": "normalized actions",
    }
    existing = _read_manifest(folder)
    if existing is not None:
        keys = [k for k in manifest if k != "log_eps"]
        changed = [k for k in keys if existing.get(k) != manifest[k]]
        if changed:
            raise DataError(
                f"{str(folder)!r} holds a candidate table made with other settings ({', '.join(changed)} "
                "differ); use a new folder"
            )
    else:
        atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
    remove_stale_temp_files(folder)  # even when no chunk is left to write
    done = [i for i in range(manifest["n_chunks"]) if _chunk_path(folder, i).is_file()]
    done_rows = sum(_chunk_rows(manifest, i) for i in done)
    bar = tqdm(total=len(obs), initial=done_rows, unit="state", desc="ARQ candidate table", disable=not progress)
    try:
        for index in range(manifest["n_chunks"]):
            if index in done:
                continue
            start = index * chunk_size
            rows = obs[start : start + _chunk_rows(manifest, index)]
            acts, logp = [], []
            for b in range(0, len(rows), batch_size):
                a, ll = sampler._sample_seeded(rows[b : b + batch_size])
                acts.append(a)
                logp.append(ll)
                bar.update(len(a))
            tensors = {
                "observations": np.ascontiguousarray(rows),
                "actions": np.ascontiguousarray(np.concatenate(acts), dtype=np.float32),
                "log_lik": np.ascontiguousarray(np.concatenate(logp), dtype=np.float32),
            }
            atomic_write_bytes(_chunk_path(folder, index), safetensors_bytes(tensors))
    finally:
        bar.close()
    return CandidateTable.load(folder)


__all__ = ["CandidateTable", "precompute_candidate_table", "sampler_fingerprint"]
