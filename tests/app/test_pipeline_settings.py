"""Process settings the pipeline makes before training."""

from __future__ import annotations

import subprocess
import sys


def test_flush_denormals_makes_float32_denormals_zero() -> None:
    """Denormals slow this CPU's float arithmetic 10-20x (see ``flush_denormals``)."""
    probe = ("import torch\n"
             "tiny = lambda: float(torch.tensor([1e-39], dtype=torch.float32)[0] * 1.0)\n"
             "before = tiny()\n"
             "from saq_wrappers.app.pipeline import flush_denormals\n"
             "flush_denormals()\n"
             "print(before > 0, tiny() == 0)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"]
