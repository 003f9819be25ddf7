"""``python -m planner.cli``: the ``planner`` command without its console script."""

import sys

from planner.cli import main

sys.exit(main())
