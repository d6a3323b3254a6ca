"""The benchmark harness behind ``python -m benchmarks.run``: X vs SAQ-X vs ARQ on the same data.

* :mod:`.spec` -- the suites (``tiny``, ``small``, ``paper``, ``ablation-state``, ``ablation-k``,
  ``ablation-penalty``): grids of :class:`~saq_wrappers.app.experiment.ExperimentSpec`, the
  pipeline's typed spec (``RunSpec`` here);
* :mod:`.data` -- checking a suite's data is there, and ``prepare`` (generating the suites'
  datasets from SB3 zoo agents and the scripted Lift demonstrator); loading is the library's one
  resolver, :mod:`saq_wrappers.app.datasets`;
* :mod:`.runner` -- one run through :func:`saq_wrappers.app.pipeline.run_experiment` (shared
  artifacts, budgeted training, evaluation) and the atomic per-run result file;
* :mod:`.backends` -- the grid on a local spawn process pool (default), in-process, or on Ray;
* :mod:`.report` -- ``results.json``, ``results.md`` (mean ± std over seeds, the paper's number
  beside ours) and the PNG plots; :mod:`.paper` holds the papers' numbers.
"""
