"""Where the benchmark copies live: ``$SPG_SHARED_DATA``, else ``<repo>/../shared/data`` (CI clones main
with shared/ beside it). Tests that need them fail loudly if they are missing, never skip."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SPG_SHARED_DATA", ROOT.parent / "shared" / "data"))
