"""``python -m devd.cli ...``: the ``devd`` command (as the extension, tests and benches run it)."""

import sys

from devd.cli.main import main

sys.exit(main())
