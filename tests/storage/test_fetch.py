"""fetch_checkpoint / `spg fetch-checkpoint`: builtin:tiny, file://, s3:// (SeaweedFS), resume, reuse, errors."""

import json
import os
import subprocess
import sys
import time

import pytest

from spg_lib.cli import main
from spg_lib.io import sha256_file
from spg_lib.models import load_model
from spg_lib.models.loading import save_model_dir
from spg_lib.storage import (
    MANIFEST_NAME,
    CheckpointURIError,
    FetchError,
    S3CredentialsError,
    S3NotFoundError,
    S3UnreachableError,
    fetch_checkpoint,
    fetch_checkpoint_result,
    make_client,
    parse_checkpoint_uri,
    read_manifest,
    verify_manifest,
)
from tests.services import unused_endpoint_url
from tests.storage.conftest import FAST

LOADS = {"load_check": load_model, "write_builtin": save_model_dir}  # what the CLI and the pipeline pass


def _hashes(directory):
    return {p.relative_to(directory).as_posix(): sha256_file(p)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST_NAME}


def _upload(server, bucket, prefix, directory):
    server.make_bucket(bucket)
    c = server.client()
    for rel in _hashes(directory):
        c.upload_file(str(directory / rel), bucket, f"{prefix}/{rel}")


def _assert_nothing_published(out):
    assert not out.exists()
    assert not (out / MANIFEST_NAME).exists()


# ---------------------------------------------------------------------------------------------- URIs


def test_parse_checkpoint_uri(tmp_path):
    assert parse_checkpoint_uri("builtin:tiny").scheme == "builtin"
    u = parse_checkpoint_uri("s3://bkt/models/tiny/")
    assert (u.scheme, u.bucket, u.key, u.canonical) == ("s3", "bkt", "models/tiny", "s3://bkt/models/tiny")
    u = parse_checkpoint_uri("hf://GSAI-ML/LLaDA-8B-Instruct@v1.0")
    assert (u.repo_id, u.revision, u.canonical) == ("GSAI-ML/LLaDA-8B-Instruct", "v1.0",
                                                    "hf://GSAI-ML/LLaDA-8B-Instruct@v1.0")
    assert parse_checkpoint_uri("hf://org/name").revision is None
    assert parse_checkpoint_uri(f"file://{tmp_path}").canonical == parse_checkpoint_uri(str(tmp_path)).canonical
    assert parse_checkpoint_uri(f"file://localhost{tmp_path}").path == tmp_path.resolve()
    for bad, pattern in [("gs://b/x", "unsupported scheme 'gs'"), ("builtin:huge", "unknown builtin"),
                         ("s3://bucket", "prefix"), ("hf://org/name@", "hf://org/name"), ("", "empty"),
                         ("file://host/x", "local")]:
        with pytest.raises(CheckpointURIError, match=pattern):
            parse_checkpoint_uri(bad)


def test_bad_scheme_cli(tmp_path, capsys):
    assert main(["fetch-checkpoint", "--uri", "ftp://host/x", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spg fetch-checkpoint: error:") and "unsupported scheme 'ftp'" in err
    assert len(err.splitlines()) == 1
    _assert_nothing_published(tmp_path / "o")


# ---------------------------------------------------------------------------------------------- local sources


def test_builtin_tiny_manifest_load_and_reuse(tmp_path):
    out = tmp_path / "models" / "tiny"
    result = fetch_checkpoint_result("builtin:tiny", out, **LOADS)
    assert result.path == out and not result.reused
    assert not out.with_name("tiny.partial").exists()
    manifest = read_manifest(out)
    assert manifest["uri"] == "builtin:tiny" and manifest["scheme"] == "builtin"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == _hashes(out)
    assert manifest["total_bytes"] == sum(v["size"] for v in manifest["files"].values())
    assert load_model(str(out)).config.model_type == "llada"
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    again = fetch_checkpoint_result("builtin:tiny", out, **LOADS)
    assert again.reused and (out / "model.safetensors").stat().st_mtime_ns == mtime
    # a corrupted file is detected: no silent reuse, --force refetches
    with open(out / "config.json", "a") as f:
        f.write(" ")
    assert verify_manifest(out) == ["config.json: size mismatch"] or "config.json" in verify_manifest(out)[0]
    with pytest.raises(FetchError, match="not an intact fetch"):
        fetch_checkpoint("builtin:tiny", out, **LOADS)
    assert not fetch_checkpoint_result("builtin:tiny", out, force=True, **LOADS).reused
    assert verify_manifest(out) == []


def test_builtin_needs_the_model_layer_and_storage_imports_none(tmp_path):
    with pytest.raises(FetchError, match="write_builtin"):
        fetch_checkpoint("builtin:tiny", tmp_path / "o")
    _assert_nothing_published(tmp_path / "o")
    code = "import sys, spg_lib.storage; sys.exit(sorted(m for m in sys.modules if m.startswith('spg_lib.models')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr == "[]\n"


def test_file_uri_and_plain_path(tiny_checkpoint, tmp_path, capsys):
    src_hashes = _hashes(tiny_checkpoint)
    a = fetch_checkpoint(f"file://{tiny_checkpoint}", tmp_path / "a")
    assert _hashes(a) == src_hashes
    assert main(["fetch-checkpoint", "--uri", str(tiny_checkpoint), "--out", str(tmp_path / "b")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == str(tmp_path / "b")
    summary = json.loads(lines[1])
    assert summary["reused"] is False and summary["files"] == len(src_hashes)
    assert summary["uri"] == tiny_checkpoint.resolve().as_uri()
    assert _hashes(tmp_path / "b") == src_hashes
    # a different URI for the same out dir is refused
    with pytest.raises(FetchError, match="manifest is for"):
        fetch_checkpoint("builtin:tiny", tmp_path / "b", **LOADS)


def test_not_a_checkpoint_and_missing_path(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "readme.txt").write_text("no config")
    with pytest.raises(FetchError, match=r"checkpoint config .*config\.json does not exist"):
        fetch_checkpoint(str(tmp_path / "src"), tmp_path / "out")
    _assert_nothing_published(tmp_path / "out")
    (tmp_path / "src" / "config.json").write_text('{"model_type": "llada"}')
    with pytest.raises(FetchError, match="no weights"):
        fetch_checkpoint(str(tmp_path / "src"), tmp_path / "out")
    _assert_nothing_published(tmp_path / "out")
    assert main(["fetch-checkpoint", "--uri", "org/does-not-exist", "--out", str(tmp_path / "o2")]) == 2
    assert "hf://org/name" in capsys.readouterr().err


def test_broken_weights_fail_the_load_check(tiny_checkpoint, tmp_path):
    src = fetch_checkpoint(str(tiny_checkpoint), tmp_path / "src")
    (src / "model.safetensors").write_bytes(b"not safetensors")
    os.remove(src / MANIFEST_NAME)
    with pytest.raises(FetchError, match="does not load"):
        fetch_checkpoint(str(src), tmp_path / "out", load_check=load_model)
    _assert_nothing_published(tmp_path / "out")
    # without the load check only the layout is verified
    assert fetch_checkpoint(str(src), tmp_path / "out") == tmp_path / "out"


# ---------------------------------------------------------------------------------------------- S3 (SeaweedFS)


def test_s3_fetch_api_and_cli(s3_env, tiny_checkpoint, bucket_name, tmp_path, capsys):
    _upload(s3_env, bucket_name, "models/tiny", tiny_checkpoint)
    t0 = time.monotonic()
    out = fetch_checkpoint(f"s3://{bucket_name}/models/tiny", tmp_path / "api")  # env: endpoint + credentials
    api_s = time.monotonic() - t0
    assert _hashes(out) == _hashes(tiny_checkpoint)
    manifest = read_manifest(out)
    assert manifest["uri"] == f"s3://{bucket_name}/models/tiny"
    assert manifest["source"]["endpoint_url"] == s3_env.endpoint_url
    assert all(len(f["etag"]) >= 32 for f in manifest["files"].values())
    model = load_model(str(out))
    assert model.config.vocab_size == load_model(str(tiny_checkpoint)).config.vocab_size
    assert api_s < 20

    cli_out = tmp_path / "cli"
    assert main(["fetch-checkpoint", "--uri", f"s3://{bucket_name}/models/tiny/", "--out", str(cli_out),
                 "--endpoint-url", s3_env.endpoint_url, "--no-verify-load"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == str(cli_out) and json.loads(printed[1])["files"] == len(manifest["files"])
    assert _hashes(cli_out) == _hashes(tiny_checkpoint)
    # second call: reused without touching the network (the endpoint may even be down)
    assert main(["fetch-checkpoint", "--uri", f"s3://{bucket_name}/models/tiny", "--out", str(cli_out),
                 "--endpoint-url", unused_endpoint_url()]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[1])["reused"] is True


def test_s3_resume_partial(seaweedfs, tiny_checkpoint, bucket_name, tmp_path):
    _upload(seaweedfs, bucket_name, "ckpt", tiny_checkpoint)
    out = tmp_path / "out"
    partial = tmp_path / "out.partial"
    partial.mkdir()
    # one file already complete, one stale leftover, one interrupted download
    (partial / "model.safetensors").write_bytes((tiny_checkpoint / "model.safetensors").read_bytes())
    before = (partial / "model.safetensors").stat().st_mtime_ns
    (partial / "stale.bin").write_bytes(b"old")
    (partial / "config.json.part").write_bytes(b"{")
    client = make_client(seaweedfs.endpoint_url, access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key,
                         settings=FAST)
    result = fetch_checkpoint_result(f"s3://{bucket_name}/ckpt", out, client=client)
    assert result.manifest["source"]["resumed_files"] == 1
    assert (out / "model.safetensors").stat().st_mtime_ns == before  # not downloaded again
    assert _hashes(out) == _hashes(tiny_checkpoint)
    assert not partial.exists() and not (out / ".spg_partial.json").exists()


def test_s3_interrupted_fetch_resumes(seaweedfs, fault_proxy, tiny_checkpoint, bucket_name, tmp_path):
    """A download that dies midway (3rd request onwards fails) leaves only .partial; the rerun resumes."""
    _upload(seaweedfs, bucket_name, "ckpt", tiny_checkpoint)
    proxy = fault_proxy(seaweedfs.endpoint_url, fail=[None, None] + [503] * FAST.max_attempts)
    client = make_client(proxy.endpoint_url, access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key,
                         settings=FAST)
    out = tmp_path / "out"
    with pytest.raises(S3UnreachableError, match="SlowDown"):  # request 1 lists, 2 gets the first file
        fetch_checkpoint(f"s3://{bucket_name}/ckpt", out, client=client)
    _assert_nothing_published(out)
    first = sorted(_hashes(tiny_checkpoint))[0]
    assert (tmp_path / "out.partial" / first).is_file()
    assert json.loads((tmp_path / "out.partial" / ".spg_partial.json").read_text())["files"].keys() == {first}
    result = fetch_checkpoint_result(f"s3://{bucket_name}/ckpt", out, client=client)
    assert result.manifest["source"]["resumed_files"] == 1
    assert _hashes(out) == _hashes(tiny_checkpoint)
    assert proxy.requests == 2 + FAST.max_attempts + 1 + (len(_hashes(tiny_checkpoint)) - 1)


def test_s3_missing_key_leaves_nothing(s3_env, bucket_name, tmp_path, capsys):
    s3_env.make_bucket(bucket_name)
    out = tmp_path / "out"
    with pytest.raises(S3NotFoundError, match=f"s3://{bucket_name}/no/such/ckpt/: no objects"):
        fetch_checkpoint(f"s3://{bucket_name}/no/such/ckpt", out)
    _assert_nothing_published(out)
    assert main(["fetch-checkpoint", "--uri", f"s3://{bucket_name}-missing/x", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bucket does not exist" in err and f"s3://{bucket_name}-missing/x" in err
    _assert_nothing_published(out)


def test_s3_missing_weights_leaves_nothing(s3_env, tiny_checkpoint, bucket_name, tmp_path):
    s3_env.make_bucket(bucket_name)
    s3_env.client().upload_file(str(tiny_checkpoint / "config.json"), bucket_name, "half/config.json")
    with pytest.raises(FetchError, match="no weights"):
        fetch_checkpoint(f"s3://{bucket_name}/half", tmp_path / "out")
    _assert_nothing_published(tmp_path / "out")


def test_s3_bad_credentials_cli(s3_env, bucket_name, tmp_path, capsys, monkeypatch):
    s3_env.make_bucket(bucket_name)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "definitely-wrong-secret")
    assert main(["fetch-checkpoint", "--uri", f"s3://{bucket_name}/ckpt", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "rejected the credentials" in err and "AWS_ACCESS_KEY_ID" in err and "AWS_SECRET_ACCESS_KEY" in err
    assert "definitely-wrong-secret" not in err and s3_env.secret_key not in err
    with pytest.raises(S3CredentialsError):
        fetch_checkpoint(f"s3://{bucket_name}/ckpt", tmp_path / "o")
    _assert_nothing_published(tmp_path / "o")


def test_s3_unreachable_endpoint_cli(fast_retry_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    endpoint = unused_endpoint_url()
    t0 = time.monotonic()
    assert main(["fetch-checkpoint", "--uri", "s3://bucket/ckpt", "--out", str(tmp_path / "o"),
                 "--endpoint-url", endpoint]) == 2
    assert time.monotonic() - t0 < 10
    err = capsys.readouterr().err
    assert "could not reach S3 endpoint" in err and endpoint in err and "after 3 attempts" in err
    _assert_nothing_published(tmp_path / "o")


def test_s3_server_stopped_then_restarted(seaweedfs_private, tiny_checkpoint, tmp_path):
    """A real server going away: a clear error after bounded retries; after restart the fetch completes."""
    server = seaweedfs_private
    bucket = server.make_bucket("restart-test")
    _upload(server, bucket, "ckpt", tiny_checkpoint)
    client = make_client(server.endpoint_url, access_key=server.access_key, secret_key=server.secret_key,
                         settings=FAST)
    server.stop()
    out = tmp_path / "out"
    with pytest.raises(S3UnreachableError, match="after 3 attempts"):
        fetch_checkpoint(f"s3://{bucket}/ckpt", out, client=client)
    _assert_nothing_published(out)
    server.start()
    assert _hashes(fetch_checkpoint(f"s3://{bucket}/ckpt", out, client=client)) == _hashes(tiny_checkpoint)
