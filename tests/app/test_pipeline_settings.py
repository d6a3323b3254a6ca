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


def test_machine_says_which_cpu_a_run_was_timed_on() -> None:
    """Runs on an AVX-512 and an AVX2 machine differ several-fold in speed: records must tell them apart."""
    import torch

    from saq_wrappers.app.pipeline import machine

    info = machine("cpu:0")
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["cpu_model"] is None or (isinstance(info["cpu_model"], str) and info["cpu_model"])
    assert info["device"] == "cpu:0" and info["torch_threads"] == torch.get_num_threads()
