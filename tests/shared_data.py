"""Where the benchmark copies live: ``data/benchmarks/`` of this repository (origin and licence per file in
its README). Tests that need them fail loudly if a file is missing, never skip."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "benchmarks"
