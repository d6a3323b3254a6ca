"""The benchmark harness behind ``python -m benchmarks.run``: X vs SAQ-X vs ARQ on the same data.

* :mod:`.spec` -- the suites on generated data (``tiny``, ``small``, ``standard``, ``paper``,
  ``ablation-state``, ``ablation-k``, ``ablation-penalty``): grids of
  :class:`~saq_wrappers.app.experiment.ExperimentSpec`, the pipeline's typed spec (``RunSpec``
  here);
* :mod:`.real_suites` -- the suites on the real benchmarks (``d4rl-adroit``, ``d4rl-locomotion``,
  ``kitchen --data``, ``robomimic --data``) at the authors' budgets, read from
  ``$MINARI_DATASETS_PATH`` (downloaded only with ``--download``) or the files given;
* :mod:`.data` -- checking a suite's data is there, and ``prepare`` (generating the suites'
  datasets from SB3 zoo agents and the scripted Lift demonstrator); loading is the library's one
  resolver, :mod:`saq_wrappers.app.datasets`;
* :mod:`.runner` -- one run through :func:`saq_wrappers.app.pipeline.run_experiment` (shared
  artifacts, budgeted training, evaluation) and the atomic per-run result file;
* :mod:`.backends` -- the grid on a local spawn process pool (default), in-process, or on Ray;
* :mod:`.report` -- writes ``results.json``, ``results.md`` (per dataset the seed mean with a 95%
  bootstrap interval, SAQ-X − X at equal updates and at equal wall-clock, the IQM across datasets
  with stratified-bootstrap intervals from rliable, the paper's number beside ours) and the PNG
  plots: :mod:`.rows` builds the tables as data, :mod:`.markdown` the text, :mod:`.plots` the
  figures; :mod:`.statistics` computes the intervals; :mod:`.paper` holds the papers' numbers;
  :mod:`.ledger` records each invocation's wall-clock time.
"""
