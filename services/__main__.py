"""`python -m services` is the `cadenza` command, for environments where the script is not on PATH."""
import sys

from services.cli import main

sys.exit(main())
