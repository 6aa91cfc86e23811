"""Repository hygiene that `make run` depends on: DVC refuses to write a git-ignored dvc.lock ("'dvc.lock' is
git-ignored", exit 255), and `dvc metrics diff` compares metrics files git tracks."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", ["dvc.lock", "metrics/summary.json", "metrics/reward_curve.csv"])
def test_dvc_lock_and_metrics_are_not_git_ignored(path, tmp_path):
    # the project's .gitignore in a fresh repository: the same rules whether or not this tree is a checkout
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=tmp_path, check=False)
    assert ignored.returncode == 1, f"{path} is git-ignored: `dvc repro` (make run) cannot record its stages"
