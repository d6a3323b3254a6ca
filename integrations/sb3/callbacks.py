"""An SB3 callback recording return vs env steps, the measure of online fine-tuning.

Offline-to-online fine-tuning is judged by its curve, not its end point: whether the return
drops below the offline policy's when online updates begin (the collapse SAQ section 6's open
question is about) and how fast it recovers.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback

from saq_wrappers.evaluation import EvaluationResult, check_episodes, evaluate
from saq_wrappers.validation import check_int

from .agents import evaluation_policy

__all__ = ["EvaluationCurveCallback"]


class EvaluationCurveCallback(BaseCallback):
    """Evaluate the agent greedily every ``eval_freq`` env steps: return vs env steps.

    Uses :func:`saq_wrappers.evaluation.evaluate` on ``eval_env`` (a wrapped env of its own,
    episode ``i`` seeded ``seed + i`` every time, so points differ only by the agent). The first
    point is taken before any update (env step 0) — for a warm-started agent, the offline
    policy's return — and the last at the end of training. ``curve`` holds dicts with
    ``env_steps``, ``mean_return``, ``std_return``, ``seconds`` (training wall-clock so far,
    evaluation excluded).

    Raises:
        DataError: ``eval_freq`` not an integer >= 1, or bad ``n_episodes`` / ``seed`` (see
            :func:`saq_wrappers.evaluation.evaluate`), before any training.
    """

    def __init__(self, eval_env: gym.Env[Any, Any], eval_freq: int, n_episodes: int = 5, seed: int = 10_000,
                 verbose: int = 0) -> None:
        super().__init__(verbose)
        self.eval_env = eval_env
        self.eval_freq = check_int("eval_freq", eval_freq, 1)
        self.n_episodes, self.seed = check_episodes(n_episodes, seed)
        self.curve: list[dict[str, float]] = []
        self._next = 0
        self._train_seconds = 0.0
        self._started = 0.0

    def evaluate_now(self) -> EvaluationResult:
        policy = evaluation_policy(self.model, self.eval_env, deterministic=True)
        result = evaluate(policy, self.eval_env, n_episodes=self.n_episodes, seed=self.seed, progress=False)
        self.curve.append({"env_steps": int(self.num_timesteps), "mean_return": result.mean_return,
                           "std_return": result.std_return, "seconds": self._train_seconds})
        if self.verbose:
            print(f"  step {self.num_timesteps:>7d}: return {result.mean_return:9.1f} ± {result.std_return:.1f}")
        return result

    def _on_training_start(self) -> None:
        self._next = self.num_timesteps + self.eval_freq
        self.evaluate_now()
        self._started = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._train_seconds += time.perf_counter() - self._started
            self.evaluate_now()
            self._next += self.eval_freq
            self._started = time.perf_counter()
        return True

    def _on_training_end(self) -> None:
        self._train_seconds += time.perf_counter() - self._started
        if not self.curve or self.curve[-1]["env_steps"] != self.num_timesteps:
            self.evaluate_now()
