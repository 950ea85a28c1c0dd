"""``python -m course_lib ...``: the course's command line (see :mod:`course_lib.tooling.cli`)."""
import sys

from .tooling.cli import main

if __name__ == "__main__":
    sys.exit(main())
