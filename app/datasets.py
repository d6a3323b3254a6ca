"""The one dataset resolver: a dataset named on the command line or in a suite -> transitions,
an evaluation env factory and reference returns.

Four kinds, each read by its integration (nothing is downloaded unless asked):

* ``builtin``: the package's scripted Pendulum expert (:mod:`saq_wrappers.experts`), cached;
* ``minari``: a Minari dataset id from ``$MINARI_DATASETS_PATH`` or a dataset folder; the env
  and the reference scores come from the dataset's metadata (the env only when the installed
  Gymnasium registry knows its entry point, unless ``trust_env_spec``);
* ``robomimic``: a robomimic low-dim hdf5 file, scored by success rate, its env rebuilt from the
  file's ``env_args`` with robosuite;
* ``d4rl``: a D4RL-style hdf5 file with the Gymnasium id of its env (``file.hdf5@Hopper-v5``), and
  the keyword arguments to make it with (``env_kwargs``); this project's own env ids (D4RL's
  kitchen, ``saq_wrappers/KitchenComplete-v0``) are registered before any id is checked.

Any kind but ``builtin`` can be cut to its first episodes (``first_episodes``: the narrowest
human data, e.g. the first 5 demonstrations of a file).

:meth:`DatasetSpec.parse` reads the explicit form ``[NAME=]KIND:SOURCE[@ENV_ID]`` and also a bare
Minari id, folder or hdf5 file; :meth:`DatasetSpec.check` validates cheaply (before any heavy work)
and :func:`load_dataset` reads the data.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any, Callable, Optional

from saq_wrappers.errors import DataError
from saq_wrappers.evaluation import check_reference_returns
from saq_wrappers.validation import check_int, check_number, check_regular_file, path_kind

#: The dataset the quickstart uses when none is given.
BUILTIN_DATASET = "builtin:pendulum-expert"
#: Dataset kinds.
DATASET_KINDS = ("builtin", "minari", "robomimic", "d4rl")
#: The built-in datasets (``builtin:NAME``).
BUILTIN_NAMES = ("pendulum-expert",)
_HDF5_SUFFIXES = (".hdf5", ".h5")
#: Most episodes of the built-in dataset (200 steps each).
MAX_BUILTIN_EPISODES = 10_000
#: Longest robomimic evaluation horizon (robomimic uses 400 for Lift).
MAX_HORIZON = 1_000_000
#: Most keyword arguments of an evaluation env, and the longest text value of one.
MAX_ENV_KWARGS, MAX_ENV_KWARG_TEXT = 32, 256


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset and how to evaluate on it.

    Attributes:
        name: short display name and file-name key (``hopper-expert``).
        kind: one of :data:`DATASET_KINDS`.
        source: the Minari id or folder, the hdf5 path, or the built-in name.
        env_id: Gymnasium id of the evaluation env (``d4rl`` only).
        ref_min, ref_max: reference returns, overriding the dataset's own.
        paper_key: the paper's dataset this one stands in for (``hopper-expert-v2``): reports put
            the paper's number beside ours.
        episodes: built-in dataset size (episodes).
        horizon: robomimic evaluation horizon (robomimic uses 400 for Lift).
        filter_key: robomimic split to train on (``train``); ``None`` reads every demo.
        download: fetch a Minari dataset that is not found locally (off: nothing touches the
            network unless asked).
        trust_env_spec: rebuild a Minari dataset's env whatever code its metadata names (off:
            only entry points the installed Gymnasium registry has for that id, since
            ``gym.make`` imports and calls what a dataset file names; ``--trust-dataset-env``).
        env_kwargs: keyword arguments of ``gym.make(env_id, ...)`` (``d4rl`` only), given as a dict
            or pairs, kept as sorted pairs of text keys and JSON scalar values, e.g. the kitchen's
            observation noise ``{"noise": "dataset"}``: they change scores, so they are part of
            the spec (and of every result that names it).
        first_episodes: train on the first N episodes of the data only (every kind but
            ``builtin``, whose size is ``episodes``); ``None``: all of them.
    """

    name: str
    kind: str
    source: str
    env_id: Optional[str] = None
    ref_min: Optional[float] = None
    ref_max: Optional[float] = None
    paper_key: Optional[str] = None
    episodes: int = 50
    horizon: Optional[int] = None
    filter_key: Optional[str] = None
    download: bool = False
    trust_env_spec: bool = False
    env_kwargs: tuple[tuple[str, Any], ...] = ()
    first_episodes: Optional[int] = None

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise DataError(f"dataset {self.name!r}: kind {self.kind!r} unknown, expected one of {DATASET_KINDS}")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", self.name):
            raise DataError(f"dataset name {self.name!r}: use letters, digits and . _ + - only (it names files)")
        if self.kind == "builtin" and self.source not in BUILTIN_NAMES:
            raise DataError(f"dataset {self.name!r}: unknown built-in {self.source!r}, expected one of {BUILTIN_NAMES}")
        if self.kind == "d4rl" and not self.env_id:
            raise DataError(f"dataset {self.name!r}: a D4RL hdf5 file needs its env id (FILE.hdf5@Hopper-v5)")
        if self.env_id is not None:
            check_env_id(self.env_id, f"dataset {self.name!r}: env id")
        object.__setattr__(self, "env_kwargs", _env_kwargs(self.env_kwargs, self.kind, self.name))
        if self.first_episodes is not None:
            if self.kind == "builtin":
                raise DataError(f"dataset {self.name!r}: first_episodes is for datasets read from files; the built-in "
                                "dataset's size is its `episodes`")
            check_int(f"dataset {self.name!r}: first_episodes", self.first_episodes, 1)
        check_int(f"dataset {self.name!r}: episodes", self.episodes, 1, MAX_BUILTIN_EPISODES)
        if self.horizon is not None:
            check_int(f"dataset {self.name!r}: horizon", self.horizon, 1, MAX_HORIZON)
        if self.ref_min is not None and self.ref_max is not None:
            try:
                check_reference_returns(self.ref_min, self.ref_max, ("ref_min", "ref_max"))
            except DataError as error:
                raise DataError(f"dataset {self.name!r}: {error}") from error
        else:
            for field in ("ref_min", "ref_max"):
                if getattr(self, field) is not None:
                    check_number(f"dataset {self.name!r}: {field}", getattr(self, field))

    @property
    def metric(self) -> str:
        """``success`` (robomimic tasks, in %) or ``normalized`` (D4RL-style score)."""
        return "success" if self.kind == "robomimic" else "normalized"

    @classmethod
    def parse(cls, text: str) -> "DatasetSpec":
        """``[NAME=]KIND:SOURCE[@ENV_ID]`` (``builtin:pendulum-expert``,
        ``hopper=minari:mujoco/hopper/expert-v0``, ``robomimic:lift_ph.hdf5``,
        ``d4rl:hopper_expert.hdf5@Hopper-v5``), or a bare Minari id or folder, or a bare hdf5
        file (robomimic if it holds a ``data`` group of demos, else D4RL-style with ``@ENV_ID``).
        """
        head = text.split(":", 1)[0]
        name, _, rest = text.partition("=") if "=" in head else ("", "", text)
        kind, sep, source = rest.partition(":")
        if not sep or kind not in DATASET_KINDS:
            kind, source = _infer_kind(rest), rest
        if not source:
            raise DataError(f"dataset {text!r}: expected [NAME=]KIND:SOURCE with KIND in {DATASET_KINDS}")
        env_id = None
        if kind == "d4rl" and "@" in source:
            source, env_id = source.rsplit("@", 1)
        if not name:
            stem = Path(source).stem if kind in ("robomimic", "d4rl") else source
            name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", stem).strip("-") or kind
        return cls(name=name, kind=kind, source=source, env_id=env_id)

    def check(self) -> None:
        """Fail fast, before any heavy work, when the data cannot be there.

        Raises:
            DataError: a missing file or folder (a path is never told to download), or a Minari
                id that is not in the local Minari folder (without ``download``).
        """
        if self.kind in ("robomimic", "d4rl"):
            check_regular_file(self.source, f"dataset {self.name!r}:", "an hdf5 file")
        elif self.kind == "minari":
            from saq_wrappers.integrations.minari import is_dataset_path, local_dataset_path

            if is_dataset_path(self.source):
                kind = path_kind(Path(self.source).expanduser())
                if kind is None:
                    raise DataError(f"dataset {self.name!r}: folder {self.source!r} does not exist "
                                    "(expected a Minari dataset folder)")
                if kind != "a folder":
                    raise DataError(f"dataset {self.name!r}: {self.source!r} is {kind}, expected a Minari "
                                    "dataset folder")
            elif not self.download and local_dataset_path(self.source) is None:
                raise DataError(
                    f"dataset {self.name!r}: Minari dataset {self.source!r} is not in the local Minari folder "
                    f"($MINARI_DATASETS_PATH): download it with `minari download {self.source}`, or pass a "
                    "dataset folder"
                )


@dataclasses.dataclass
class LoadedDataset:
    """A dataset with the env to evaluate in and its reference returns.

    ``random_return`` / ``expert_return`` are ``None`` where the dataset has none (robomimic
    tasks are scored by success rate).
    """

    name: str
    transitions: Any  # saq_wrappers.transitions.Transitions
    make_env: Callable[[], Any]
    random_return: Optional[float]
    expert_return: Optional[float]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def load_dataset(spec: DatasetSpec | str, progress: bool = False) -> LoadedDataset:
    """Read ``spec`` (a :class:`DatasetSpec` or its text form) with its integration."""
    if isinstance(spec, str):
        spec = DatasetSpec.parse(spec)
    spec.check()
    loaded = _load(spec, progress)
    if spec.first_episodes is not None:
        loaded.transitions = _first_episodes(loaded.transitions, spec.first_episodes, spec.name)
    return loaded


def _load(spec: DatasetSpec, progress: bool) -> LoadedDataset:
    if spec.kind == "builtin":
        import gymnasium as gym

        from saq_wrappers.experts import quickstart_dataset

        transitions, meta = quickstart_dataset(n_episodes=spec.episodes, progress=progress)
        env_id = meta["env_id"]
        return LoadedDataset(spec.name, transitions, lambda: gym.make(env_id),
                             _ref(spec.ref_min, meta["random_return"]), _ref(spec.ref_max, meta["expert_return"]),
                             {"builtin": meta})
    if spec.kind == "minari":
        from saq_wrappers.integrations.minari import load_minari, minari_info, open_minari

        dataset = open_minari(spec.source, download=spec.download)
        info = minari_info(dataset, trust_env_spec=spec.trust_env_spec)
        info.rebuild_spec()  # refuses an env that would run code the dataset names, before any work
        return LoadedDataset(spec.name, load_minari(dataset), info.make_env,
                             _ref(spec.ref_min, info.ref_min_score), _ref(spec.ref_max, info.ref_max_score),
                             {"minari_id": info.dataset_id})
    if spec.kind == "robomimic":
        from saq_wrappers.integrations.robomimic import DEFAULT_OBS_KEYS, load_robomimic, make_robomimic_env

        path, horizon = spec.source, spec.horizon
        transitions = load_robomimic(path, DEFAULT_OBS_KEYS, filter_key=spec.filter_key)
        return LoadedDataset(spec.name, transitions,
                             lambda: make_robomimic_env(path, DEFAULT_OBS_KEYS, horizon=horizon), None, None,
                             {"obs_keys": list(DEFAULT_OBS_KEYS)})
    import gymnasium as gym

    from saq_wrappers.integrations.d4rl import load_d4rl_hdf5

    env_id, env_kwargs = spec.env_id, dict(spec.env_kwargs)
    assert env_id is not None  # checked by DatasetSpec
    return LoadedDataset(spec.name, load_d4rl_hdf5(spec.source), lambda: gym.make(env_id, **env_kwargs),
                         spec.ref_min, spec.ref_max, {"env_kwargs": env_kwargs} if env_kwargs else {})


def _first_episodes(transitions: Any, n: int, name: str) -> Any:
    """The first ``n`` episodes of ``transitions``, in file order."""
    if n > transitions.n_episodes:
        raise DataError(f"dataset {name!r}: first_episodes is {n}, but the data hold {transitions.n_episodes} "
                        "episodes")
    return transitions.select_episodes(range(n))


def _env_kwargs(value: Any, kind: str, name: str) -> tuple[tuple[str, Any], ...]:
    """``value`` (a dict or pairs) as sorted pairs of text keys and JSON scalar values."""
    pairs = list(value.items()) if isinstance(value, dict) else list(value)
    if pairs and kind != "d4rl":
        raise DataError(f"dataset {name!r}: env_kwargs are for D4RL-style files (kind d4rl), whose env is made "
                        f"from its id; a {kind} dataset's env comes from the dataset")
    if len(pairs) > MAX_ENV_KWARGS:
        raise DataError(f"dataset {name!r}: {len(pairs)} env_kwargs, expected at most {MAX_ENV_KWARGS}")
    checked: dict[str, Any] = {}
    for pair in pairs:
        key, item = pair if isinstance(pair, (tuple, list)) and len(pair) == 2 else (None, None)
        if not isinstance(key, str) or not key.isidentifier():
            raise DataError(f"dataset {name!r}: env_kwargs entry {pair!r}: expected (name, value) with a Python "
                            "identifier as name")
        if isinstance(item, float):
            check_number(f"dataset {name!r}: env_kwargs {key!r}", item)
        elif isinstance(item, str):
            if len(item) > MAX_ENV_KWARG_TEXT:
                raise DataError(f"dataset {name!r}: env_kwargs {key!r} is {len(item)} characters long, expected at "
                                f"most {MAX_ENV_KWARG_TEXT}")
        elif item is not None and not isinstance(item, (bool, int)):
            raise DataError(f"dataset {name!r}: env_kwargs {key!r} is {type(item).__name__}, expected text, a "
                            "number, true/false or null")
        if key in checked:
            raise DataError(f"dataset {name!r}: env_kwargs names {key!r} twice")
        checked[key] = item
    return tuple(sorted(checked.items()))


def check_env_id(env_id: Any, what: str = "env id") -> None:
    """Refuse an env id the installed Gymnasium registry does not have, before any work (the
    data would load first and ``gym.make`` fail after), suggesting the close registered ids.
    Gymnasium's ``module:EnvId`` form, which imports ``module``, is not a registry id either.

    Raises:
        DataError: ``"... 'Pendulum-v9' is not a registered Gymnasium env (close registered ids:
            Pendulum-v1) ..."``.
    """
    import gymnasium as gym

    import saq_wrappers.integrations.gymnasium_robotics  # noqa: F401 - registers this project's own env ids

    if isinstance(env_id, str) and env_id in gym.registry:
        return
    close = difflib.get_close_matches(str(env_id), list(gym.registry), n=3)
    hint = f" (close registered ids: {', '.join(close)})" if close else ""
    raise DataError(f"{what} {env_id!r} is not a registered Gymnasium env{hint}: expected an id of the installed "
                    "Gymnasium registry (import the package that registers it first)")


def _ref(override: float | None, stored: float | None) -> float | None:
    return override if override is not None else stored


def _infer_kind(source: str) -> str:
    """``robomimic`` / ``d4rl`` for an hdf5 file (by its layout), else ``minari``."""
    path = Path(source.rsplit("@", 1)[0])
    if path.suffix.lower() not in _HDF5_SUFFIXES:
        return "minari"
    check_regular_file(path, f"dataset {source!r}:", "an hdf5 file")
    if "@" in source:
        return "d4rl"
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            is_robomimic = isinstance(handle.get("data"), h5py.Group)
    except OSError as error:
        raise DataError(f"dataset {source!r}: {str(path)!r} is not a readable hdf5 file ({error})") from error
    if not is_robomimic:
        raise DataError(f"dataset {source!r}: a D4RL-style hdf5 file needs its env id: {source}@ENV_ID "
                        "(e.g. hopper_expert.hdf5@Hopper-v5)")
    return "robomimic"
