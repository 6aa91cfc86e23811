"""Stage prepare_data from a DVC-versioned dataset: a real git + DVC repository whose data lives only on a DVC
remote on the loopback SeaweedFS (local cache deleted), read at two revisions through `fetch_dvc_dataset`,
`prepare_stage` and `spg prepare-data -o data.dvc_repo=... -o data.dvc_rev=...`.

The repository's committed `.dvc/config` names the remote (s3://bucket/dvcstore) without an endpoint: every read
here gets it from AWS_ENDPOINT_URL, so the tests also show that the environment's endpoint reaches dvc-s3.
Revisions: v1 and v2 (different 4x4 Sudoku test puzzles, pushed), v3 (a file added but never pushed).
HOME, git's and dvc's global/system config and dvc's site cache point into the test's temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from spg_lib.cli import main
from spg_lib.io import sha256_file
from spg_lib.pipeline.config import DataConfig, load_pipeline_config
from spg_lib.pipeline.prepare import prepare_stage
from spg_lib.storage.dvc_dataset import DvcDatasetError, fetch_dvc_dataset
from tests.services import unused_endpoint_url

ROOT = Path(__file__).resolve().parents[2]
PUZZLES = (ROOT / "data/benchmarks/sudoku_4x4_test_spg.csv").read_text().splitlines()
HEADER, ROWS = PUZZLES[0], PUZZLES[1:]
CONTENT = {"v1": "\n".join([HEADER, *ROWS[:24]]) + "\n", "v2": "\n".join([HEADER, *ROWS[24:56]]) + "\n"}
N_TEST = {"v1": 24, "v2": 32}


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _isolation(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"), "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"), "DVC_NO_ANALYTICS": "1", "DVC_STUDIO_OFFLINE": "true",
        "GIT_CONFIG_NOSYSTEM": "1", "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws"),
        "AWS_CONFIG_FILE": str(home / "no-aws"), "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1", "SPG_S3_CONNECT_TIMEOUT": "2",
    }


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=spg", "-c", "user.email=spg@example.invalid", *args], cwd=repo,
                          capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def dvc_data(seaweedfs, tmp_path_factory):
    """The repository (see the module docstring): {repo, bucket, commits: {tag: sha}, md5: {tag: md5}}."""
    from dvc.repo import Repo

    root = tmp_path_factory.mktemp("dvc-data")
    repo = root / "repo"
    repo.mkdir()
    bucket = seaweedfs.make_bucket(f"spg-dvc-{os.getpid()}")
    creds = {k: seaweedfs.env()[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**_isolation(root / "home"), **creds}.items():
            mp.setenv(k, v)
        for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(k, raising=False)
        _git(repo, "init", "-q")
        Repo.init(str(repo)).close()
        with open(repo / ".dvc" / "config", "a") as f:  # committed: the remote, no endpoint, no credentials
            f.write(f"[core]\n    remote = store\n['remote \"store\"']\n    url = s3://{bucket}/dvcstore\n")
        data = repo / "sudoku" / "test.csv"
        data.parent.mkdir()
        commits, md5 = {}, {}
        for tag in ("v1", "v2", "v3"):
            if tag == "v3":
                target = repo / "sudoku" / "unpushed.csv"
                target.write_text(CONTENT["v1"].replace(ROWS[0], ROWS[-1]))
            else:
                target = data
                target.write_text(CONTENT[tag])
                md5[tag] = _md5(target.read_bytes())
            with Repo(str(repo), remote_config={"endpointurl": seaweedfs.endpoint_url}) as r:
                r.add(str(target))
                if tag != "v3":
                    r.push()
            _git(repo, "add", "-A")
            _git(repo, "commit", "-q", "-m", f"data {tag}")
            _git(repo, "tag", tag)
            commits[tag] = _git(repo, "rev-parse", "HEAD")
        # only the remote has the data now (and git only the .dvc files)
        import shutil

        shutil.rmtree(repo / ".dvc" / "cache")
        data.unlink()
        (repo / "sudoku" / "unpushed.csv").unlink()
    keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"dvcstore/files/md5/{md5['v1'][:2]}/{md5['v1'][2:]}" in keys
    return {"repo": repo, "bucket": bucket, "commits": commits, "md5": md5}


@pytest.fixture
def dvc_env(monkeypatch, seaweedfs, tmp_path):
    """The environment a pipeline step sees: credentials and the endpoint of the loopback S3 server."""
    for k, v in _isolation(tmp_path / "home").items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "SPG_S3_READ_TIMEOUT"):
        monkeypatch.delenv(k, raising=False)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(k, seaweedfs.env()[k])
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint_url)
    return monkeypatch


def _run_cli(capture, *argv: str) -> tuple[int, str, list[str]]:
    """rc, stdout, stderr lines of `spg ...` (``capture``: capsys, or capfd to see what libraries log too)."""
    rc = main(list(argv))
    captured = capture.readouterr()
    return rc, captured.out, captured.err.strip().splitlines()


# ------------------------------------------------------------------------------------------------ fetch


def test_fetch_two_revisions_from_the_remote(dvc_data, dvc_env, tmp_path):
    repo, commits, md5 = dvc_data["repo"], dvc_data["commits"], dvc_data["md5"]
    out = tmp_path / "in"
    seen = {}
    for tag in ("v1", "v2"):
        src = fetch_dvc_dataset(str(repo), "sudoku/test.csv", out, rev=tag)
        assert (src.rev, src.commit, src.path, src.md5, src.dvc_tracked) == (tag, commits[tag], "sudoku/test.csv",
                                                                            md5[tag], True)
        recorded = yaml.safe_load(_git(repo, "show", f"{tag}:sudoku/test.csv.dvc"))["outs"][0]["md5"]
        assert src.md5 == recorded  # the .dvc entry, not something recomputed differently
        assert src.local == out / "test.csv" and src.files == ("test.csv",)
        assert src.local.read_text() == CONTENT[tag]  # the same out replaced whole: v2's bytes, not v1's
        assert sorted(p.name for p in out.iterdir()) == ["test.csv"]
        seen[tag] = src.md5
    assert seen["v1"] != seen["v2"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary sibling left


def test_fetch_through_a_git_url_and_head(dvc_data, dvc_env, tmp_path):
    repo, commits = dvc_data["repo"], dvc_data["commits"]
    src = fetch_dvc_dataset(f"file://{repo}", "sudoku/test.csv", tmp_path / "in", rev="v1")  # cloned by dvc
    assert src.commit == commits["v1"] and src.local.read_text() == CONTENT["v1"]
    head = fetch_dvc_dataset(str(repo), "sudoku/test.csv", tmp_path / "head")  # rev None: HEAD (tag v3)
    assert head.rev is None and head.commit == commits["v3"] and head.local.read_text() == CONTENT["v2"]
    # a git-tracked directory holding a DVC output: the output's data comes from the remote, the md5 is computed
    tree = fetch_dvc_dataset(str(repo), "sudoku", tmp_path / "dir", rev="v2")
    assert not tree.dvc_tracked and tree.local == tmp_path / "dir" / "sudoku"
    assert tree.files == ("sudoku/.gitignore", "sudoku/test.csv")
    assert (tree.local / "test.csv").read_text() == CONTENT["v2"]
    lines = "".join(f"{r.split('/', 1)[1]}  {_md5((tmp_path / 'dir' / r).read_bytes())}\n" for r in tree.files)
    assert tree.md5 == _md5(lines.encode())  # computed: md5 of the sorted "path  md5" lines


@pytest.mark.parametrize("case", ["bad_rev", "bad_path", "no_repo", "escape", "unknown_remote", "unpushed"])
def test_fetch_errors_name_repo_rev_and_path(dvc_data, dvc_env, tmp_path, case):
    repo = str(dvc_data["repo"])
    args = {"bad_rev": (repo, "sudoku/test.csv", "v9", None), "bad_path": (repo, "sudoku/none.csv", "v1", None),
            "no_repo": (str(tmp_path / "nowhere"), "sudoku/test.csv", "v1", None),
            "escape": (repo, "../outside.csv", "v1", None), "unknown_remote": (repo, "sudoku/test.csv", "v1", "x"),
            "unpushed": (repo, "sudoku/unpushed.csv", "v3", None)}[case]
    expected = {"bad_rev": "unknown revision 'v9'", "bad_path": "no such file or directory",
                "no_repo": "does not exist", "escape": "relative to the repository root",
                "unknown_remote": "no DVC remote 'x'", "unpushed": "dvc push"}[case]
    with pytest.raises(DvcDatasetError) as info:
        fetch_dvc_dataset(args[0], args[1], tmp_path / "in", rev=args[2], remote=args[3])
    msg = str(info.value)
    assert "\n" not in msg and expected in msg and args[0] in msg and args[1] in msg and args[2] in msg, msg
    assert not (tmp_path / "in").exists()


def test_fetch_remote_unreachable_and_credentials_rejected(dvc_data, dvc_env, seaweedfs, tmp_path):
    repo = str(dvc_data["repo"])
    nowhere = unused_endpoint_url()
    dvc_env.setenv("AWS_ENDPOINT_URL", nowhere)  # the environment's endpoint is the one dvc-s3 dials
    with pytest.raises(DvcDatasetError, match="unreachable") as info:
        fetch_dvc_dataset(repo, "sudoku/test.csv", tmp_path / "in", rev="v1")
    assert nowhere in str(info.value) and "v1" in str(info.value)
    dvc_env.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint_url)
    dvc_env.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key")
    with pytest.raises(DvcDatasetError, match="rejected the credentials") as info:
        fetch_dvc_dataset(repo, "sudoku/test.csv", tmp_path / "in", rev="v1")
    assert "AWS_SECRET_ACCESS_KEY" in str(info.value) and "not-the-secret-key" not in str(info.value)
    assert "\n" not in str(info.value) and not (tmp_path / "in").exists()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        dvc_env.delenv(name)
    with pytest.raises(DvcDatasetError, match="no credentials for DVC remote 'store'"):
        fetch_dvc_dataset(repo, "sudoku/test.csv", tmp_path / "in", rev="v1")


# ------------------------------------------------------------------------------------------------ stage


def test_prepare_stage_records_commit_and_md5(dvc_data, dvc_env, tmp_path):
    repo, commits, md5 = dvc_data["repo"], dvc_data["commits"], dvc_data["md5"]
    cfg = DataConfig(task="sudoku", out_dir=str(tmp_path / "unused"), n_train=8, dvc_repo=str(repo), dvc_rev="v1",
                     test_source="sudoku/test.csv")
    out = tmp_path / "artifact"
    manifest = prepare_stage(cfg, out_dir=out)  # out_dir overrides cfg.out_dir (a component's artifact path)
    assert not (tmp_path / "unused").exists()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test.jsonl", "train.jsonl"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    files = manifest["files"]
    assert (files["train"]["rows"], files["test"]["rows"]) == (8, N_TEST["v1"])
    for split in ("train", "test"):
        assert files[split]["sha256"] == sha256_file(out / f"{split}.jsonl")
    assert manifest["dvc"] == {"test": {"repo": str(repo), "rev": "v1", "commit": commits["v1"],
                                        "path": "sudoku/test.csv", "md5": md5["v1"]}}
    assert manifest["sources"]["test"] == f"{repo}@{commits['v1']}:sudoku/test.csv"
    assert manifest["sources"]["train"] == "generated(seed=42)"
    rows = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert rows[0]["puzzle"] == ROWS[0].split(",")[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the fetched copy was removed


def test_prepare_stage_without_dvc_adds_file_hashes(tmp_path):
    cfg = DataConfig(task="sudoku", out_dir=str(tmp_path / "d"), n_train=4,
                     test_source=str(ROOT / "data/benchmarks/sudoku_4x4_test_spg.csv"))
    manifest = prepare_stage(cfg)
    assert "dvc" not in manifest and manifest["files"]["test"]["rows"] == len(ROWS)
    assert manifest["files"]["train"]["sha256"] == sha256_file(tmp_path / "d/train.jsonl")
    assert "fingerprint" in manifest["files"]["train"]  # what prepare_data wrote is kept


def test_cli_prepare_data_from_dvc_at_two_revisions(dvc_data, dvc_env, tmp_path, capsys):
    repo, commits, md5 = dvc_data["repo"], dvc_data["commits"], dvc_data["md5"]
    manifests = {}
    for tag in ("v1", "v2"):
        out = tmp_path / tag
        rc, stdout, err = _run_cli(capsys, "prepare-data", "-o", f"data.out_dir={out}", "-o", "data.n_train=8",
                                   "-o", f"data.dvc_repo={repo}", "-o", f"data.dvc_rev={tag}",
                                   "-o", "data.test_source=sudoku/test.csv")
        assert rc == 0, err
        manifests[tag] = json.loads((out / "manifest.json").read_text())
        assert json.loads(stdout)["dvc"]["test"]["commit"] == commits[tag]
        assert manifests[tag]["dvc"]["test"]["md5"] == md5[tag]
        assert manifests[tag]["files"]["test"]["rows"] == N_TEST[tag]
    test1, test2 = manifests["v1"]["files"]["test"], manifests["v2"]["files"]["test"]
    assert test1["sha256"] != test2["sha256"] and test1["fingerprint"] != test2["fingerprint"]


@pytest.mark.parametrize("case", ["bad_rev", "bad_path", "unpushed"])
def test_cli_bad_revision_or_path_is_one_line_exit_2(dvc_data, dvc_env, tmp_path, capfd, case):
    repo = dvc_data["repo"]
    rev, path = {"bad_rev": ("nope-rev", "sudoku/test.csv"), "bad_path": ("v2", "sudoku/missing.csv"),
                 "unpushed": ("v3", "sudoku/unpushed.csv")}[case]
    rc, _, err = _run_cli(capfd, "prepare-data", "-o", f"data.out_dir={tmp_path / 'd'}", "-o", "data.n_train=4",
                          "-o", f"data.dvc_repo={repo}", "-o", f"data.dvc_rev={rev}", "-o", f"data.test_source={path}")
    assert rc == 2 and len(err) == 1, err
    assert str(repo) in err[0] and rev in err[0] and path in err[0]
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("overrides, message", [
    (["data.dvc_rev=v1"], "data.dvc_rev needs data.dvc_repo"),
    (["data.dvc_remote=store"], "data.dvc_remote needs data.dvc_repo"),
    (["data.dvc_repo=/some/repo"], "needs data.source and/or data.test_source"),
    (["data.dvc_repo=/r", "data.source=s3://bucket/train.jsonl"], "data.source must be a relative path"),
    (["data.dvc_repo=/r", "data.test_source=/abs/test.csv"], "data.test_source must be a relative path"),
    (["data.dvc_repo=''"], "data.dvc_repo must not be empty"),
])
def test_config_refuses_inconsistent_dvc_settings(overrides, message):
    from spg_lib.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_pipeline_config(None, overrides)


def test_config_dvc_fields_round_trip():
    cfg = load_pipeline_config(None, ["data.dvc_repo=https://example.invalid/data.git", "data.dvc_rev=v2",
                                      "data.test_source=sudoku/test.csv"])
    assert (cfg.data.dvc_repo, cfg.data.dvc_rev, cfg.data.dvc_remote) == ("https://example.invalid/data.git", "v2",
                                                                          None)

