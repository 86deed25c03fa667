"""``python -m fastrapi_compat`` runs the ``fastrapi-compat`` command line."""

import sys

from fastrapi_compat.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
