"""End to end: the project's own dvc.yaml on shrunken params, against a real MLflow server (artifacts in
SeaweedFS), then `dvc push` to SeaweedFS, wipe the cache and outputs, `dvc pull`, and compare hashes.

The repository's dvc.yaml and params.yaml are copied into a fresh git+DVC repo; only sizes are overridden
(steps, rows), never the structure, so this checks the shipped pipeline, not a test double.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TINY = {  # section -> dotted key -> value: sizes only
    "data": {"n_train": 64},
    "sft": {"sft.steps": 4, "sft.batch_size": 8, "sft.log_every": 2},
    "train": {"max_steps": 2, "prompts_per_step": 2, "num_generations": 4, "rollout.steps": 5,
              "rollout.batch_size": 8, "algo.num_iterations": 2, "checkpoint_every": 0},
    "evaluate": {"limit": 6, "steps": 5, "batch_size": 6},
}


def _set(node: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    assert leaf in node or parents == [], f"params.yaml has no {dotted}"  # sizes of existing keys only
    node[leaf] = value


def _tree_md5(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f.relative_to(path.parent)): hashlib.md5(f.read_bytes()).hexdigest() for f in files}


@pytest.mark.slow
def test_dvc_repro_registers_and_round_trips_through_s3(tmp_path, seaweedfs, mlflow_server):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):  # .gitignore: dvc refuses a git-ignored dvc.lock
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / ".dvc", repo / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    shutil.copytree(ROOT / "data/benchmarks", repo / "data/benchmarks")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        for key, value in values.items():
            _set(params[section], key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the pipeline reads its own code as deps: give the copy the package sources it names
    shutil.copytree(ROOT / "spg_lib", repo / "spg_lib", ignore=shutil.ignore_patterns("__pycache__"))

    bucket = seaweedfs.make_bucket(f"dvc-{uuid.uuid4().hex[:8]}")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DVC_", "MLFLOW_"))}
    env.update(seaweedfs.env())
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "HOME": str(home), "OMP_NUM_THREADS": "1",
        "DVC_NO_ANALYTICS": "1", "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"), "DVC_SITE_CACHE_DIR": str(home / "dvc-site"),
        "MLFLOW_TRACKING_URI": mlflow_server.uri, "GIT_CONFIG_NOSYSTEM": "1",
    })

    def run(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        return proc.stdout

    run("git", "init", "-q")
    run("git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    # the remote's endpoint is site configuration: local (uncommitted) config, credentials only in the env
    run(str(BIN / "dvc"), "remote", "modify", "--local", "storage", "url", f"s3://{bucket}/dvc")
    run(str(BIN / "dvc"), "remote", "modify", "--local", "storage", "endpointurl", seaweedfs.endpoint_url)

    run(str(BIN / "dvc"), "repro")

    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert summary["task"] == "sudoku"
    for key in ("base_accuracy", "trained_accuracy"):
        assert 0.0 <= summary[key] <= 100.0
    assert summary["wall_time_s"] > 0 and summary["train_steps"] == 2
    assert (repo / "metrics/reward_curve.csv").read_text().startswith("step,reward")
    assert json.loads((repo / "runs/eval/base/metrics.json").read_text())["n"] == 6

    reg = json.loads((repo / "runs/register/registered.json").read_text())
    client = MlflowClient(mlflow_server.uri)
    version = client.get_model_version(reg["name"], reg["version"])
    assert "candidate" in version.aliases
    assert version.tags.get("eval.task") == "sudoku" or any(k.startswith("eval.") for k in version.tags)
    assert "metrics" in run(str(BIN / "dvc"), "metrics", "show", "--json")
    text = run(str(BIN / "spg"), "summarize", "--show", "metrics/summary.json", "--registered",
               "runs/register/registered.json")
    assert "trained accuracy" in text and reg["name"] in text

    outs = [repo / "data/sudoku", repo / "runs/base/model", repo / "runs/train", repo / "runs/eval"]
    before = {str(p): _tree_md5(p) for p in outs}
    run(str(BIN / "dvc"), "push")
    shutil.rmtree(repo / ".dvc/cache")
    for p in outs:
        shutil.rmtree(p)
    run(str(BIN / "dvc"), "pull")
    assert {str(p): _tree_md5(p) for p in outs} == before
    config = (repo / ".dvc/config").read_text()
    assert seaweedfs.secret_key not in config and seaweedfs.access_key not in config
