"""The benchmark harness behind ``python -m benchmarks.run``: X vs SAQ-X vs ARQ on the same data.

* :mod:`.spec` -- what one run is (:class:`RunSpec`), datasets (:class:`DatasetSpec`) and the
  suites (``tiny``, ``small``, ``paper``, ``ablation-state``, ``ablation-k``, ``ablation-penalty``);
* :mod:`.data` -- loading every dataset kind (built-in Pendulum expert, Minari ids/paths, robomimic
  and D4RL hdf5 files) and ``prepare`` (generating the suites' datasets from SB3 zoo agents and
  the scripted Lift demonstrator);
* :mod:`.runner` -- one run: shared artifacts (quantizer, ARQ sampler + candidate table), training
  under a step/time budget, evaluation, and the atomic per-run result file;
* :mod:`.backends` -- the grid on a local spawn process pool (default), in-process, or on Ray;
* :mod:`.report` -- ``results.json``, ``results.md`` (mean ± std over seeds, the paper's number
  beside ours) and the PNG plots; :mod:`.paper` holds the papers' numbers.
"""
