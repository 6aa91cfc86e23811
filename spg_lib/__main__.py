"""`python -m spg_lib` == the `spg` console script."""

import sys

from spg_lib.cli import main

sys.exit(main())
