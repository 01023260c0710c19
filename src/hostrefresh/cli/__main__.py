"""``python -m hostrefresh.cli``: the kubectl plugin."""

import sys

from hostrefresh.cli.main import main

sys.exit(main())
