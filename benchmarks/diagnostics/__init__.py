"""Diagnostic experiments behind the design notes: each trains or loads a benchmark suite's runs
and measures one question, writing its answer under ``benchmarks/results/``.

Run each from the repository root as a module, e.g. ``python -m benchmarks.diagnostics.acting``:

* :mod:`.acting`: SAQ-IQL's gap to SAQ-BC split into the acting rule and the advantage tilt;
* :mod:`.code_policy`: SAQ-BC's code classifier against continuous BC, state by state;
* :mod:`.quantizer_ceiling`: the return a quantizer alone costs (the expert acting through codes);
* :mod:`.saq_iql`: SAQ-IQL's acting rules and the critics' values at codes the data never takes;
* :mod:`.variant`: one standard-suite run with config overrides, next to the suite's own run.
"""
