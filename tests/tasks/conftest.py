"""Shared fixtures: the bundled benchmark copies (skipped nowhere: they ship with the project)."""

from pathlib import Path

import pytest

DATA = Path("/work/shared/data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), "bundled benchmark data missing"
    return DATA
