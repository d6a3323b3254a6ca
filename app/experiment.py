"""The typed spec of one offline experiment: dataset, algorithm, quantizer, budget, seed, evaluation.

:func:`saq_wrappers.app.pipeline.run_experiment` runs one; ``saq quickstart``, ``saq finetune``'s
offline phase and every benchmark suite build them. Everything is validated when the spec is
made, so a bad budget or size fails before any data is read or any model is fitted. Importing
this module imports neither torch nor d3rlpy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from typing import Any, Optional

from saq_wrappers.errors import DataError
from saq_wrappers.evaluation import MAX_EPISODES
from saq_wrappers.integrations.algorithms import CODE_POLICY_ALGOS, check_algorithm, is_saq
from saq_wrappers.limits import MAX_BLOCKS, MAX_CODES, MAX_SAMPLES, MAX_WIDTH
from saq_wrappers.validation import check_bool, check_hidden, check_int, check_number, check_seed, check_seed_range

from .datasets import DatasetSpec

#: Most gradient updates of one training phase (the algorithm's, the quantizer's, ARQ's score
#: model): the cap a time-budgeted run stops at anyway, and years of CPU time.
MAX_STEPS = 10**9
#: Longest training time budget: 30 days, in seconds (``inf`` would train forever).
MAX_TIME_BUDGET = 30 * 24 * 3600.0
#: The learning curve's episodes are reset with seeds from the run's seed plus this (the final
#: evaluation's from the seed plus ``EvaluationSettings.seed_offset``).
CURVE_SEED_OFFSET = 10_000
#: Most learning-curve points of one run.
MAX_CURVE_POINTS = 10_000
#: Largest minibatch.
MAX_BATCH_SIZE = 1_000_000


def check_steps(name: str, value: Any) -> int:
    """A number of updates or env steps: an integer in ``1 ..`` :data:`MAX_STEPS`."""
    return check_int(name, value, 1, MAX_STEPS)


def check_time_budget(value: Any) -> float:
    """Training seconds: a finite number in ``(0,`` :data:`MAX_TIME_BUDGET` ``]``."""
    return check_number("time budget", value, 0, MAX_TIME_BUDGET, exclusive_minimum=True)


def check_episode_count(name: str, value: Any) -> int:
    """A number of evaluation episodes: an integer in ``1 ..``
    :data:`saq_wrappers.evaluation.MAX_EPISODES`."""
    return check_int(name, value, 1, MAX_EPISODES)


@dataclasses.dataclass(frozen=True)
class QuantizerSettings:
    """The SAQ quantizer of an experiment (SAQ eqs. 5-7; shared by SAQ runs with equal settings
    and seed). Defaults are the library's: K=64 (flat across K=16..128 in SAQ Table 4), the
    authors' 512-512 MLPs, 5,000 updates."""

    n_codes: int = 64
    state_conditioned: bool = True
    hidden: tuple[int, ...] = (512, 512)
    steps: int = 5000

    def __post_init__(self) -> None:
        check_int("n_codes (K)", self.n_codes, 2, MAX_CODES)
        check_steps("quantizer steps", self.steps)
        object.__setattr__(self, "hidden", check_hidden("quantizer hidden sizes", self.hidden))
        check_bool("quantizer state_conditioned", self.state_conditioned)


#: Reward preprocessing of a run: none, or the IQL / SAQ authors' locomotion scaling
#: ``r * 1000 / (max - min episode return of the dataset)``.
REWARD_SCALINGS = ("none", "returns")

#: How a SAQ algorithm's policy over codes is parametrized: one logit per code index (as the
#: authors train it), or an action density evaluated at the decoded codes (issue 37,
#: :mod:`saq_wrappers.integrations.d3rlpy.candidate_networks`; SAQ-BC, SAQ-IQL and SAQ-BRAC),
#: fitted to the label codes among the codes (``density``) or, SAQ-BC only, to the labels'
#: decoded actions (``density-actions``, :mod:`saq_wrappers.integrations.d3rlpy.density_bc`).
CODE_POLICIES = ("index", *CODE_POLICY_ALGOS)

#: How ARQ acts: eq. 6 on fresh candidates, or its AWR-trained explicit policy.
ARQ_POLICIES = ("implicit", "awr")


@dataclasses.dataclass(frozen=True)
class ARQSettings:
    """ARQ's behavior model, candidate table, Q-learning and acting settings.

    Defaults are the authors' (ARQ appendix A and their code) except the sampler's size and
    training, which a suite shrinks to its budget (the candidate table costs ``N`` PF-ODE samples
    per state). ``ode_steps`` is the sampler's validated solver length (28): with 6 steps a
    trained sampler's candidates were about as far from the dataset's action as another state's
    action is, so the table and the implicit policy held near-random actions (design note
    ``docs/notes/arq.md``).
    ``policy``: ``"implicit"`` acts by eq. 6 on fresh candidates (a PF-ODE solve per step);
    ``"awr"`` trains ARQ's explicit policy by advantage-weighted regression (Algorithm 1, with
    ``alpha`` as its inverse temperature), the policy the paper reports on D4RL locomotion,
    kitchen and Adroit, and one network pass per step.
    """

    n_samples: int = 30
    hidden: int = 256
    n_blocks: int = 3
    ode_steps: int = 28
    fit_steps: int = 100_000
    fit_batch: int = 512
    fit_lr: float = 1e-4
    kth: int = 9
    alpha: float = 1.0
    learning_rate: float = 3e-4
    policy: str = "implicit"

    def __post_init__(self) -> None:
        check_int("arq n samples", self.n_samples, 1, MAX_SAMPLES)
        check_int("arq hidden", self.hidden, 1, MAX_WIDTH)
        check_int("arq n blocks", self.n_blocks, 1, MAX_BLOCKS)
        check_steps("arq ode steps", self.ode_steps)
        check_steps("arq fit steps", self.fit_steps)
        check_int("arq fit batch", self.fit_batch, 1, MAX_BATCH_SIZE)
        check_int("arq kth", self.kth, 1)
        check_number("arq fit lr", self.fit_lr, 0, exclusive_minimum=True)
        check_number("arq alpha", self.alpha, 0)
        check_number("arq learning rate", self.learning_rate, 0, exclusive_minimum=True)
        if self.kth > self.n_samples + 1:
            raise DataError(f"arq kth ({self.kth}) must be <= n_samples + 1 ({self.n_samples + 1})")
        if self.policy not in ARQ_POLICIES:
            raise DataError(f"arq policy must be one of {', '.join(ARQ_POLICIES)}, got {self.policy!r}")


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """How a run is scored: ``episodes`` final episodes, seeded from the run's seed plus
    ``seed_offset``, and a learning curve of ``curve_points`` evaluations (0: none) of
    ``curve_episodes`` episodes each; ``greedy`` acts by the policy's argmax, else by sampling it;
    ``mode_averaging`` (SAQ runs) sends the env the mean of the mode the chosen code picks
    (:class:`~saq_wrappers.mode_acting.ModeAveraging`, weighted by the run's own policy)."""

    episodes: int = 10
    curve_points: int = 5
    curve_episodes: int = 2
    seed_offset: int = 0
    greedy: bool = True
    mode_averaging: bool = False

    def __post_init__(self) -> None:
        check_episode_count("eval episodes", self.episodes)
        check_int("curve points", self.curve_points, 0, MAX_CURVE_POINTS)
        check_episode_count("curve episodes", self.curve_episodes)
        check_seed("evaluation seed offset", self.seed_offset)
        check_bool("evaluation greedy", self.greedy)
        check_bool("evaluation mode_averaging", self.mode_averaging)


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """One (dataset, algorithm, seed) offline experiment with its budget and settings.

    Attributes:
        dataset: what to train on and evaluate in.
        algo: one of :data:`~saq_wrappers.integrations.algorithms.ALGORITHMS`.
        seed: seeds the quantizer, the algorithm and the evaluation episodes.
        steps: gradient-update budget (the same for X and SAQ-X), or ``None`` with a
            ``time_budget``; with both, training stops at whichever comes first.
        time_budget: wall-clock seconds of training (evaluation not counted).
        hidden: hidden sizes of every network of the algorithm (Q, policy, value); ``None``
            keeps the registry's default (the same for X and SAQ-X).
        batch_size: minibatch size.
        quantizer: the SAQ quantizer (SAQ algorithms only).
        arq: ARQ's sampler and candidate settings (ARQ only).
        evaluation: final evaluation and curve.
        options: algorithm config fields to override, e.g. ``{"alpha": 20.0}`` for SAQ-CQL.
        track_penalty: log CQL's conservative penalty at every curve point (SAQ Figure 2).
        tag: a free label (suite name) stored with the result, not part of the fingerprint.
    """

    dataset: DatasetSpec
    algo: str
    seed: int = 0
    steps: Optional[int] = 10_000
    time_budget: Optional[float] = None
    hidden: Optional[tuple[int, ...]] = None
    batch_size: int = 256
    quantizer: QuantizerSettings = QuantizerSettings()
    arq: ARQSettings = ARQSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    options: tuple[tuple[str, Any], ...] = ()
    track_penalty: bool = False
    reward_scaling: str = "none"
    code_policy: str = "index"
    tag: str = ""

    def __post_init__(self) -> None:
        check_algorithm(self.algo)
        if self.steps is None and self.time_budget is None:
            raise DataError("give steps or a time budget (seconds): expected at least one budget")
        if self.steps is not None:
            check_steps("steps", self.steps)
        if self.time_budget is not None:
            check_time_budget(self.time_budget)
        check_int("batch size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_seed("seed", self.seed)
        ev = self.evaluation  # refused now, not when the evaluation starts after training
        check_seed_range(self.seed + ev.seed_offset, ev.episodes,
                         f"seed {self.seed:,} is too large: its final evaluation episodes")
        check_seed_range(self.seed + CURVE_SEED_OFFSET, ev.curve_episodes,
                         f"seed {self.seed:,} is too large: its learning-curve episodes")
        if self.hidden is not None:
            object.__setattr__(self, "hidden", check_hidden("hidden sizes", self.hidden))
        for name, value in self.options:
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                check_number(f"option {name}", value)  # a NaN or infinite weight makes a NaN loss
        if self.reward_scaling not in REWARD_SCALINGS:
            raise DataError(f"reward_scaling must be one of {', '.join(REWARD_SCALINGS)}, got {self.reward_scaling!r}")
        if self.code_policy not in CODE_POLICIES:
            raise DataError(f"code_policy must be one of {', '.join(CODE_POLICIES)}, got {self.code_policy!r}")
        if self.code_policy != "index" and self.algo not in CODE_POLICY_ALGOS[self.code_policy]:
            raise DataError(f"the {self.code_policy} code policy is built for "
                            f"{', '.join(CODE_POLICY_ALGOS[self.code_policy])}, not {self.algo}")
        if self.evaluation.mode_averaging and not self.is_saq:
            raise DataError(f"mode averaging acts on SAQ codes; {self.algo} has none")
        if self.track_penalty and self.algo not in ("CQL", "SAQ-CQL"):
            raise DataError(f"track_penalty is for CQL and SAQ-CQL, not {self.algo}")

    @property
    def is_saq(self) -> bool:
        return is_saq(self.algo)

    def training_spec(self) -> "ExperimentSpec":
        """This spec acting by the defaults (greedy, no mode averaging), without its tag.

        How a trained policy acts is applied only when it is evaluated, so specs with equal
        training specs train the same policy and can share one training
        (``run_experiment(..., twins=...)``).
        """
        acting_reset = dataclasses.replace(self.evaluation, greedy=True, mode_averaging=False)
        return dataclasses.replace(self, evaluation=acting_reset, tag="")

    @property
    def label(self) -> str:
        """Algorithm name with the variant an ablation changes (K, no-state, a quantizer budget
        other than the library's default, sampled acting)."""
        if not self.is_saq:
            return self.algo
        extra = [f"K={self.quantizer.n_codes}"]
        if not self.quantizer.state_conditioned:
            extra.append("no state")
        if self.quantizer.steps != QuantizerSettings.steps:
            extra.append(f"{self.quantizer.steps:,} quantizer updates")
        if self.code_policy != "index":
            extra.append(f"{self.code_policy} policy")
        if not self.evaluation.greedy:
            extra.append("sampled")
        if self.evaluation.mode_averaging:
            extra.append("mode-averaged")
        return f"{self.algo} ({', '.join(extra)})"

    @property
    def run_id(self) -> str:
        """File-name key: dataset, algorithm, variant (as in :attr:`label`), seed."""
        algo = self.algo.replace("+", "p")
        variant = ""
        if self.is_saq:
            variant = f"-K{self.quantizer.n_codes}" + ("" if self.quantizer.state_conditioned else "-nostate")
            if self.quantizer.steps != QuantizerSettings.steps:
                variant += f"-q{self.quantizer.steps}"
            if self.code_policy != "index":
                variant += f"-{self.code_policy}"
        if not self.evaluation.greedy:
            variant += "-sampled"
        if self.evaluation.mode_averaging:
            variant += "-mode"
        penalty = "-penalty" if self.track_penalty else ""
        return f"{self.dataset.name}__{algo}{variant}{penalty}__seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        data["options"] = dict(self.options)
        data["dataset"]["env_kwargs"] = dict(self.dataset.env_kwargs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExperimentSpec":
        data = dict(data)
        data["dataset"] = DatasetSpec(**data["dataset"])
        quantizer = dict(data.get("quantizer", {}))
        if "hidden" in quantizer:
            quantizer["hidden"] = tuple(quantizer["hidden"])
        data["quantizer"] = QuantizerSettings(**quantizer)
        data["arq"] = ARQSettings(**data.get("arq", {}))
        data["evaluation"] = EvaluationSettings(**data.get("evaluation", {}))
        data["options"] = tuple(sorted(dict(data.get("options", {})).items()))
        if data.get("hidden") is not None:
            data["hidden"] = tuple(data["hidden"])
        return cls(**data)

    def fingerprint(self) -> str:
        """SHA-256 of every setting that changes this run's result: equal fingerprints mean the
        same run. Left out: ``tag``, how the data may be fetched or its env rebuilt, the
        quantizer of a run that uses none and the ARQ settings of a run that is not ARQ (so a
        suite can change ARQ without invalidating its CQL runs), and settings added after
        results were written, at their defaults (``evaluation.greedy`` and ``mode_averaging``, ``arq.policy``,
        ``reward_scaling``, ``code_policy``, the dataset's ``env_kwargs`` and ``first_episodes``)."""
        data = self.to_dict()
        data.pop("tag", None)
        if data.get("reward_scaling") == "none":
            data.pop("reward_scaling")
        if data.get("code_policy") == "index":
            data.pop("code_policy")
        if not self.is_saq:
            data.pop("quantizer", None)
        if self.algo != "ARQ":
            data.pop("arq", None)
        elif data["arq"].get("policy") == "implicit":
            data["arq"].pop("policy")
        if data["evaluation"].get("greedy", True):
            data["evaluation"].pop("greedy", None)
        if not data["evaluation"].get("mode_averaging", False):
            data["evaluation"].pop("mode_averaging", None)
        for permission in ("download", "trust_env_spec"):
            data["dataset"].pop(permission, None)
        for added in ("env_kwargs", "first_episodes"):
            if not data["dataset"].get(added):
                data["dataset"].pop(added, None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
