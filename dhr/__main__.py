"""``python -m dhr`` runs the ``dhr`` command."""

import sys

from dhr.cli import main

sys.exit(main())
