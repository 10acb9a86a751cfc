"""``python -m dhr`` runs the ``dhr`` command."""

import sys

from dhr.cli import main

if __name__ == "__main__":  # not when a spawned validation worker imports this module
    sys.exit(main())
