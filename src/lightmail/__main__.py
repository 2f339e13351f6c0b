"""``python -m lightmail``: the same as the ``lightmail`` command."""

import sys

from lightmail.cli import main

sys.exit(main())
