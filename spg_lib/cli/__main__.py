"""`python -m spg_lib.cli` == `spg` (for `accelerate launch -m spg_lib.cli ...`)."""

import sys

from spg_lib.cli import main

sys.exit(main())
