"""``python -m engage`` is the ``engage`` command."""

import sys

from engage.cli import main

sys.exit(main())
