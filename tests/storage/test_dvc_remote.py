"""DVC with an S3 remote on the loopback SeaweedFS: `dvc add` -> `dvc push` -> wipe cache + workspace ->
`dvc pull` gives back the same bytes. Credentials reach dvc only through the subprocess environment; the
repository config holds the (non-secret) endpoint URL and nothing else of the server's.

HOME, the dvc global/system config dirs and the site cache all point into tmp_path; analytics, update checks and
Studio are off (and their endpoints point at an unused loopback port)."""

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services import unused_endpoint_url

DVC = Path(sys.executable).parent / "dvc"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _isolated_env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "DVC_", "GIT_", "XDG_")) and k not in ("HOME", "MLFLOW_S3_ENDPOINT_URL")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    nowhere = unused_endpoint_url()
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_ANALYTICS_ENDPOINT": nowhere,
        "DVC_UPDATER_ENDPOINT": nowhere,
        "DVC_STUDIO_OFFLINE": "true",
        "GIT_CONFIG_NOSYSTEM": "1",
        "OMP_NUM_THREADS": "1",
    })
    env.update(extra)
    return env


def _run(args, cwd, env, timeout=120):
    cmd = [str(DVC), *args] if args[0] != "git" else args
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_dvc_push_pull_roundtrip_on_seaweedfs(seaweedfs, bucket_name, tmp_path):
    timings = {}
    repo = tmp_path / "repo"
    repo.mkdir()
    creds = {k: seaweedfs.env()[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    env = _isolated_env(tmp_path, creds)
    bucket = seaweedfs.make_bucket(bucket_name)

    t0 = time.monotonic()
    _run(["git", "init", "-q"], repo, env)
    _run(["init", "-q"], repo, env)
    # what `dvc remote add -d store s3://... && dvc remote modify store endpointurl ...` writes (one dvc call
    # costs 2-4 s of start-up on a busy 2-core machine, so the config is written directly)
    with open(repo / ".dvc" / "config", "a") as f:
        f.write(f"[core]\n    remote = store\n    check_update = false\n"
                f"['remote \"store\"']\n    url = s3://{bucket}/dvcstore\n"
                f"    endpointurl = {seaweedfs.endpoint_url}\n    region = {seaweedfs.region}\n")
    timings["init"] = time.monotonic() - t0

    data = repo / "data" / "sample.bin"
    data.parent.mkdir()
    data.write_bytes(os.urandom(200_000) + b"spg dvc round trip\n")
    original = _md5(data)
    t0 = time.monotonic()
    _run(["add", "-q", "data/sample.bin"], repo, env)
    timings["add"] = time.monotonic() - t0
    assert f"md5: {original}" in (repo / "data" / "sample.bin.dvc").read_text()

    t0 = time.monotonic()
    _run(["push", "-q"], repo, env)
    timings["push"] = time.monotonic() - t0
    keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"dvcstore/files/md5/{original[:2]}/{original[2:]}" in keys

    shutil.rmtree(repo / ".dvc" / "cache")
    data.unlink()
    t0 = time.monotonic()
    _run(["pull", "-q"], repo, env)
    timings["pull"] = time.monotonic() - t0
    assert _md5(data) == original

    # no secret (nor the access key) in any repository config file; the endpoint is there
    config = (repo / ".dvc" / "config").read_text()
    assert seaweedfs.endpoint_url in config
    for path in (repo / ".dvc").glob("config*"):
        text = path.read_text()
        assert seaweedfs.secret_key not in text and seaweedfs.access_key not in text, path
    # no global config was written outside tmp_path
    assert not (Path(env["HOME"]) / ".aws").exists()

    print("dvc timings (s):", {k: round(v, 2) for k, v in timings.items()})
