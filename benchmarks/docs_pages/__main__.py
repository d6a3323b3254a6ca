"""``python -m benchmarks.docs_pages``: see :mod:`benchmarks.docs_pages`."""

import sys

from . import main

sys.exit(main())
