"""spg_lib.storage.s3 against real servers: env configuration, clear errors, botocore's bounded retries, the
transfer manager."""

import time

import pytest

from spg_lib.io import sha256_file
from spg_lib.storage import (
    S3CredentialsError,
    S3NotFoundError,
    S3Settings,
    S3UnreachableError,
    fsspec_options,
    make_client,
    parse_s3_uri,
)
from spg_lib.storage.s3 import resolve_endpoint
from tests.services import unused_endpoint_url
from tests.storage.conftest import FAST


def test_parse_s3_uri():
    assert parse_s3_uri("s3://b/x/y/") == ("b", "x/y")
    assert parse_s3_uri("s3://b") == ("b", "")
    for bad in ("s3:///x", "gs://b/x", "s3://b/x?v=1"):
        with pytest.raises(ValueError):
            parse_s3_uri(bad)


def test_endpoint_resolution(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert resolve_endpoint() is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert resolve_endpoint() == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    assert resolve_endpoint() == "http://127.0.0.1:2"
    assert resolve_endpoint("http://127.0.0.1:3") == "http://127.0.0.1:3"
    with pytest.raises(ValueError, match="not an http"):
        make_client("127.0.0.1:9000")


def test_settings_from_env(monkeypatch):
    s = S3Settings.from_env()
    assert (s.retry_mode, s.max_attempts, s.connect_timeout, s.read_timeout) == ("standard", None, 5.0, 60.0)
    client = make_client("http://127.0.0.1:1", access_key="k", secret_key="s")
    assert client.raw.meta.config.retries["mode"] == "standard" and client.max_attempts == 3  # botocore's default
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")  # read by botocore itself
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("SPG_S3_READ_TIMEOUT", "12.5")
    client = make_client("http://127.0.0.1:1", access_key="k", secret_key="s")
    assert (client.raw.meta.config.retries["mode"], client.max_attempts) == ("adaptive", 7)
    assert client.raw.meta.config.read_timeout == 12.5
    assert fsspec_options("http://127.0.0.1:1")["config_kwargs"]["read_timeout"] == 12.5
    for name, value in (("SPG_S3_READ_TIMEOUT", "x"), ("SPG_S3_CONNECT_TIMEOUT", "0"), ("AWS_RETRY_MODE", "fast")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name):
            S3Settings.from_env()
        monkeypatch.delenv(name)


def test_client_from_env_roundtrip(s3_env, bucket_name, tmp_path):
    s3_env.make_bucket(bucket_name)
    client = make_client()  # everything from the environment
    assert client.endpoint_url == s3_env.endpoint_url
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    assert client.upload_dir(src, bucket_name, "ckpt") == ["ckpt/a.txt", "ckpt/sub/b.bin"]
    objs = client.list_objects(bucket_name, "ckpt")
    assert [(o.key, o.size) for o in objs] == [("ckpt/a.txt", 5), ("ckpt/sub/b.bin", 2560)]
    assert client.list_objects(bucket_name, "ckp") == []  # prefixes match whole path components
    import hashlib

    sha = client.download(bucket_name, "ckpt/sub/b.bin", tmp_path / "out" / "b.bin", expected_size=2560)
    assert sha == hashlib.sha256(bytes(range(256)) * 10).hexdigest()
    assert not (tmp_path / "out" / "b.bin.part").exists()


def test_missing_bucket_and_key_are_clear_and_not_retried(seaweedfs, fault_proxy, bucket_name, tmp_path):
    proxy = fault_proxy(seaweedfs.endpoint_url, fail=[])  # counts requests, breaks none
    client = make_client(proxy.endpoint_url, access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key,
                         settings=S3Settings(max_attempts=5))
    with pytest.raises(S3NotFoundError, match=f"s3://{bucket_name}/ckpt/: bucket does not exist"):
        client.list_objects(bucket_name, "ckpt")
    seaweedfs.make_bucket(bucket_name)
    with pytest.raises(S3NotFoundError, match=f"s3://{bucket_name}/nope.json"):
        client.head_object(bucket_name, "nope.json")
    with pytest.raises(S3NotFoundError, match="key does not exist"):
        client.download(bucket_name, "nope.json", tmp_path / "never" / "x", expected_size=3, etag="0" * 32)
    assert proxy.requests == 3  # one each: a missing object is never retried
    assert not (tmp_path / "never" / "x").exists()


def test_bad_credentials_are_clear_and_secret_free(seaweedfs, bucket_name):
    seaweedfs.make_bucket(bucket_name)
    wrong = "wrong-secret-value-123"
    client = make_client(seaweedfs.endpoint_url, access_key=seaweedfs.access_key, secret_key=wrong, settings=FAST)
    for op in (lambda: client.list_objects(bucket_name, "x"), lambda: client.head_object(bucket_name, "x")):
        with pytest.raises(S3CredentialsError) as err:
            op()
        msg = str(err.value)
        assert "rejected the credentials" in msg and "AWS_SECRET_ACCESS_KEY" in msg and bucket_name in msg
        assert wrong not in msg and seaweedfs.secret_key not in msg


def test_no_credentials(monkeypatch, seaweedfs):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    # (the autouse _no_ambient_aws fixture points the config files nowhere and disables the metadata endpoints)
    with pytest.raises(S3CredentialsError, match=r"no S3 credentials found.*AWS_ACCESS_KEY_ID"):
        make_client(seaweedfs.endpoint_url, settings=FAST).list_objects("some-bucket", "x")


def test_unreachable_endpoint_bounded_retries():
    endpoint = unused_endpoint_url()
    client = make_client(endpoint, access_key="k", secret_key="s", settings=FAST)
    t0 = time.monotonic()
    with pytest.raises(S3UnreachableError) as err:
        client.list_objects("bucket", "ckpt")
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "could not reach S3 endpoint" in msg and endpoint in msg and "after 3 attempts" in msg


@pytest.mark.parametrize("faults", [[503, 503], [500], ["reset", 502]])
def test_transient_errors_are_retried(moto_server, fault_proxy, bucket_name, faults):
    moto_server.make_bucket(bucket_name)
    moto_server.client().put_object(Bucket=bucket_name, Key="ckpt/config.json", Body=b"{}")
    proxy = fault_proxy(moto_server.endpoint_url, fail=faults)
    client = make_client(proxy.endpoint_url, access_key=moto_server.access_key, secret_key=moto_server.secret_key,
                         settings=FAST)
    assert [o.key for o in client.list_objects(bucket_name, "ckpt")] == ["ckpt/config.json"]
    assert proxy.requests == len(faults) + 1


def test_persistent_throttling_gives_up(moto_server, fault_proxy, bucket_name):
    proxy = fault_proxy(moto_server.endpoint_url, fail=[503] * 10)
    client = make_client(proxy.endpoint_url, access_key="testing", secret_key="testing", settings=FAST)
    with pytest.raises(S3UnreachableError, match=r"SlowDown.*after 3 attempts"):
        client.list_objects(bucket_name, "k")
    with pytest.raises(S3UnreachableError, match=r"503.*after 3 attempts"):  # HEAD: status only, no body
        client.head_object(bucket_name, "k")
    assert proxy.requests == 2 * FAST.max_attempts


def test_large_file_goes_through_the_transfer_manager(s3_env, bucket_name, tmp_path):
    """Above boto3's 8 MiB threshold, upload and download are multipart (the etag names its parts)."""
    s3_env.make_bucket(bucket_name)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (9 * 4096))  # 9 MiB
    client = make_client()
    client.upload_file(big, bucket_name, "ckpt/big.bin")
    (info,) = client.list_objects(bucket_name, "ckpt")
    assert info.size == big.stat().st_size and info.etag.endswith("-2") and info.md5 is None
    assert client.download(bucket_name, info.key, tmp_path / "out" / "big.bin", info.size, info.etag) == \
        sha256_file(big)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["big.bin"]  # no temporary left
