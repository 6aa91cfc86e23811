"""Shared fixtures: the bundled benchmark copies (skipped nowhere: they ship with the project)."""

from pathlib import Path

import pytest

from tests.shared_data import DATA


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"benchmark data missing at {DATA} (it ships with the repository)"
    return DATA
