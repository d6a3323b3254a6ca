"""Batched ODE solvers in torch for the probability-flow ODE augmented with its divergence.

The state ``y`` is an ``(M, d + 1)`` tensor: ``d`` action coordinates plus the accumulated
divergence integral. All rows share the step size (the batch is integrated as one flattened
system, as scipy's ``solve_ivp`` would on a flattened batch), so there is no Python loop per
sample.
"""

from __future__ import annotations

from typing import Callable

import torch

#: ``f(t, y) -> dy/dt`` with ``t`` a Python float and ``y (M, d + 1)``.
RHS = Callable[[float, torch.Tensor], torch.Tensor]

# Butcher tableaux of the fixed-step explicit Runge-Kutta methods: (a, b, c).
_TABLEAUX: dict[str, tuple[list[list[float]], list[float], list[float]]] = {
    "euler": ([[]], [1.0], [0.0]),
    "heun": ([[], [1.0]], [0.5, 0.5], [0.0, 1.0]),
    "rk4": (
        [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
        [1 / 6, 1 / 3, 1 / 3, 1 / 6],
        [0.0, 0.5, 0.5, 1.0],
    ),
}

FIXED_STEP_METHODS = tuple(_TABLEAUX)


def fixed_step_solve(f: RHS, y0: torch.Tensor, times: list[float], method: str = "heun") -> tuple[torch.Tensor, int]:
    """Integrate ``y' = f(t, y)`` through the grid ``times`` with an explicit RK method.

    Returns the final state and the number of ``f`` evaluations.
    """
    if method not in _TABLEAUX:
        raise ValueError(f"unknown fixed-step method {method!r}; expected one of {FIXED_STEP_METHODS}")
    a, b, c = _TABLEAUX[method]
    y = y0
    nfe = 0
    for t0, t1 in zip(times[:-1], times[1:]):
        h = t1 - t0
        ks: list[torch.Tensor] = []
        for i in range(len(b)):
            yi = y
            for j, aij in enumerate(a[i]):
                if aij:
                    yi = yi + (h * aij) * ks[j]
            ks.append(f(t0 + c[i] * h, yi))
            nfe += 1
        y = y + h * sum(bi * k for bi, k in zip(b, ks))
    return y, nfe


# Dormand-Prince 5(4) coefficients (the RK45 of scipy's solve_ivp).
_DP_C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
_DP_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
_DP_B = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
_DP_B4 = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]
_DP_E = [b5 - b4 for b5, b4 in zip(_DP_B, _DP_B4)]


def rk45_solve(
    f: RHS,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    first_step: float | None = None,
    max_steps: int = 100_000,
) -> tuple[torch.Tensor, int]:
    """Adaptive Dormand-Prince RK45 (with FSAL) from ``t0`` to ``t1`` on the whole batch.

    The error norm is the RMS of ``err / (atol + rtol * max(|y|, |y_new|))`` over every element,
    as in scipy's ``RK45``. Returns the final state and the number of ``f`` evaluations.
    """
    direction = 1.0 if t1 >= t0 else -1.0
    span = abs(t1 - t0)
    h = min(first_step or 0.01 * span, span)
    t = t0
    y = y0
    k1 = f(t, y)
    nfe = 1
    steps = 0
    while direction * (t1 - t) > 1e-12 * max(1.0, span):
        steps += 1
        if steps > max_steps:
            raise RuntimeError(f"RK45 did not reach t={t1} within {max_steps} steps (at t={t})")
        h = min(h, abs(t1 - t))
        hs = direction * h
        ks = [k1]
        for i in range(1, 7):
            yi = y
            for j, aij in enumerate(_DP_A[i]):
                if aij:
                    yi = yi + (hs * aij) * ks[j]
            ks.append(f(t + _DP_C[i] * hs, yi))
        nfe += 6
        y_new = y + hs * sum(b * k for b, k in zip(_DP_B, ks) if b)
        err = hs * sum(e * k for e, k in zip(_DP_E, ks) if e)
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        err_norm = float(torch.sqrt(torch.mean((err / scale) ** 2)))
        if err_norm <= 1.0:
            t = t + hs
            y = y_new
            k1 = ks[6]
            factor = 10.0 if err_norm == 0 else min(10.0, 0.9 * err_norm ** (-0.2))
            h = h * factor
        else:
            h = h * max(0.2, 0.9 * err_norm ** (-0.2))
    return y, nfe
