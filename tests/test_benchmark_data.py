"""The benchmark copies in data/benchmarks/ are what their README says: every file listed with its origin and
licence, the row counts and SHA-256 digests it states, and nothing unlisted (the repository is self-contained)."""

import hashlib
import re

from tests.shared_data import DATA

README = (DATA / "README.md").read_text(encoding="utf-8")


def _table() -> dict[str, list[str]]:
    """file name -> the README table row's cells (rows, used by, what, origin, licence)."""
    rows = {}
    for line in README.splitlines():
        m = re.match(r"\| `([^`]+)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def _data_rows(path) -> int:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return len(lines) - 1 if path.suffix == ".csv" else len(lines)  # a CSV has a header line


def test_every_file_is_listed_with_origin_and_licence() -> None:
    table = _table()
    files = sorted(p.name for p in DATA.iterdir() if p.name != "README.md")
    assert files == sorted(table), "data/benchmarks/ and its README table must list the same files"
    for name, cells in table.items():
        assert len(cells) == 5 and all(cells), f"{name}: every column (rows, used by, what, origin, licence) filled"


def test_row_counts_and_digests_match_the_readme() -> None:
    digests = dict(reversed(m.groups()) for m in re.finditer(r"^([0-9a-f]{64})  (\S+)$", README, re.M))
    for name, cells in _table().items():
        path = DATA / name
        assert _data_rows(path) == int(cells[0]), f"{name}: row count"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digests[name], f"{name}: sha256"
