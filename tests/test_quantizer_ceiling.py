"""The quantizer-ceiling diagnosis sends the actions its docstring promises.

A fake quantizer with a known decoder (code k at state s decodes to ``s[0] + k`` in every action
dimension) makes each mode's action computable by hand.
"""

from __future__ import annotations

import numpy as np

from benchmarks.diagnostics.quantizer_ceiling import _modes


class _GridQuantizer:
    """Codes 0..n-1; ``decode(s, k) = s[0] + k``; ``encode`` rounds ``a[0] - s[0]`` to a code."""

    n_codes = 5

    def decode(self, obs: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return np.repeat((obs[:, :1] + np.asarray(codes)[:, None]).astype(np.float32), 2, axis=1)

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(actions[:, 0] - obs[:, 0]), 0, self.n_codes - 1).astype(np.int64)


def test_modes_send_the_expert_action_its_code_and_its_nearest_code() -> None:
    modes = _modes(_GridQuantizer())  # type: ignore[arg-type]
    obs = np.array([10.0, -3.0], np.float32)
    action = np.array([12.6, 14.9], np.float32)  # encodes (by its first dimension) to code 3

    assert [name for name, (mean, _) in modes.items() if mean] == [
        "expert, deterministic", "encoded, deterministic", "nearest code"]
    np.testing.assert_array_equal(modes["expert"][1](obs, action), action)
    np.testing.assert_array_equal(modes["encoded"][1](obs, action), [13.0, 13.0])
    # nearest in both dimensions: code 3 -> (13, 13) is 0.16 + 3.61 away, code 4 -> (14, 14) 1.96 + 0.81
    np.testing.assert_array_equal(modes["nearest code"][1](obs, action), [14.0, 14.0])
