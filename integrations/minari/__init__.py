"""Minari datasets in and out of :class:`~saq_wrappers.transitions.Transitions` (the ``minari`` extra).

Minari stores every episode as ``T + 1`` observations (the reset observation and each next
observation) against ``T`` actions. :func:`load_minari` pairs them inside each episode, so the
next observation of an episode's last step is that episode's true final observation and no
observation shifts into the next episode.

Datasets are opened by id from the local Minari folder (``$MINARI_DATASETS_PATH``, default
``~/.minari/datasets``) or by path; nothing is downloaded unless ``download=True`` is given.
Datasets without an environment (``env_spec`` is ``None``) load like any other.

A dataset folder is untrusted input: its ``metadata.json`` names the env to rebuild as an
``entry_point`` (``module:callable``) with kwargs, and ``gym.make`` imports and calls whatever
it names. :meth:`MinariInfo.make_env` therefore rebuilds only envs whose id the installed
Gymnasium registry knows, with the registered entry points and kwargs, no extra wrappers and a
bounded time limit (:func:`.info.check_registered` decides field by field) unless
``trust_env_spec=True``; and :func:`open_minari` refuses a dataset without stored spaces, the
one case in which Minari itself would build the env on opening, and checks the numbers of
``metadata.json`` (declared sizes, reference scores) before Minari reads them.

Modules, one job each:

* :mod:`.opening`: :func:`open_minari` by id or folder, :func:`is_dataset_path`,
  :func:`local_dataset_path`;
* :mod:`.info`: :class:`MinariInfo` (spaces, reference scores, the env rebuilt safely) and
  :func:`minari_info`;
* :mod:`.reading`: :func:`load_minari` and :func:`flatten_observations`;
* :mod:`.writing`: :func:`write_minari_dataset` and :func:`write_relabeled_minari` (a copy with
  SAQ codes as actions), both atomic, and :func:`check_new_dataset` (what the writer refuses,
  checked before any work).

Example:
    >>> from saq_wrappers.integrations.minari import load_minari, minari_info   # doctest: +SKIP
    >>> data = load_minari("mujoco/hopper/medium-v0")                          # doctest: +SKIP
    >>> info = minari_info("mujoco/hopper/medium-v0")                          # doctest: +SKIP
    >>> info.normalized_score(data.episode_returns())                          # doctest: +SKIP
"""

from __future__ import annotations

from saq_wrappers.integrations import requires_extra

with requires_extra("minari", needed_by=__name__):  # Minari first: a user missing both hears of it
    import minari  # noqa: F401
    import h5py  # noqa: F401 - Minari's hdf5 storage, which every dataset here uses

from .info import MinariInfo, minari_info
from .opening import DatasetSource, is_dataset_path, local_dataset_path, open_minari
from .reading import flatten_observations, load_minari
from .writing import check_new_dataset, write_minari_dataset, write_relabeled_minari

__all__ = [
    "DatasetSource",
    "MinariInfo",
    "check_new_dataset",
    "flatten_observations",
    "is_dataset_path",
    "load_minari",
    "local_dataset_path",
    "minari_info",
    "open_minari",
    "write_minari_dataset",
    "write_relabeled_minari",
]
