"""Repository hygiene that `make run` depends on: DVC refuses to write a git-ignored dvc.lock ("'dvc.lock' is
git-ignored", exit 255), and `dvc metrics diff` compares metrics files git tracks."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
@pytest.mark.parametrize("path", ["dvc.lock", "metrics/summary.json", "metrics/reward_curve.csv"])
def test_dvc_lock_and_metrics_are_not_git_ignored(path):
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, check=False)
    assert ignored.returncode == 1, f"{path} is git-ignored: `dvc repro` (make run) cannot record its stages"
