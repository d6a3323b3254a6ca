"""The application layer of saq-wrappers: the offline pipeline, the recipes and the ``saq`` CLI.

Layers (an arrow only points down; a test checks every import)::

    benchmarks/                  suites, reports, plots
    saq_wrappers.app             this package: datasets resolver, the one offline pipeline,
                                 recipes (quickstart, finetune, dataset generation), the CLI
    saq_wrappers.integrations    one module or package per library (d3rlpy, sb3, minari, ...)
    saq_wrappers (core)          ActionSet, VQ-VAE quantizer, score sampler, wrappers, Transitions

Importing this package imports nothing heavy: ``saq --help`` must answer without torch or d3rlpy.
"""
