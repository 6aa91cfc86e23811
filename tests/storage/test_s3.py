"""spg_lib.storage.s3 against real servers: env configuration, clear errors, bounded retries with backoff."""

import time

import pytest

from spg_lib.storage import (
    RetryPolicy,
    S3CredentialsError,
    S3NotFoundError,
    S3UnreachableError,
    make_client,
    parse_s3_uri,
)
from spg_lib.storage.s3 import resolve_endpoint
from tests.services import unused_endpoint_url
from tests.storage.conftest import FAST_RETRY


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


def test_retry_policy_from_env(monkeypatch):
    monkeypatch.setenv("SPG_S3_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("SPG_S3_BACKOFF_BASE", "0.125")
    p = RetryPolicy.from_env()
    assert (p.max_attempts, p.backoff_base) == (2, 0.125)
    assert 0.09 <= p.delay(1) <= 0.16 and p.delay(10) <= p.backoff_max * 1.25
    monkeypatch.setenv("SPG_S3_MAX_ATTEMPTS", "x")
    with pytest.raises(ValueError, match="SPG_S3_MAX_ATTEMPTS"):
        RetryPolicy.from_env()


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


def test_missing_bucket_and_key_are_clear_and_not_retried(seaweedfs, bucket_name):
    client = make_client(seaweedfs.endpoint_url, access_key=seaweedfs.access_key, secret_key=seaweedfs.secret_key,
                         retry=RetryPolicy(max_attempts=5, backoff_base=5.0))  # a retry would take seconds
    t0 = time.monotonic()
    with pytest.raises(S3NotFoundError, match=f"s3://{bucket_name}/ckpt/: bucket does not exist"):
        client.list_objects(bucket_name, "ckpt")
    seaweedfs.make_bucket(bucket_name)
    with pytest.raises(S3NotFoundError, match=f"s3://{bucket_name}/nope.json"):
        client.head_object(bucket_name, "nope.json")
    with pytest.raises(S3NotFoundError, match="key does not exist"):
        client.download(bucket_name, "nope.json", seaweedfs.root / "never" / "x")
    assert time.monotonic() - t0 < 3


def test_bad_credentials_are_clear_and_secret_free(seaweedfs, bucket_name):
    seaweedfs.make_bucket(bucket_name)
    wrong = "wrong-secret-value-123"
    client = make_client(seaweedfs.endpoint_url, access_key=seaweedfs.access_key, secret_key=wrong, retry=FAST_RETRY)
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
        make_client(seaweedfs.endpoint_url, retry=FAST_RETRY).list_objects("some-bucket", "x")


def test_unreachable_endpoint_bounded_retries():
    endpoint = unused_endpoint_url()
    client = make_client(endpoint, access_key="k", secret_key="s", retry=FAST_RETRY)
    t0 = time.monotonic()
    with pytest.raises(S3UnreachableError) as err:
        client.list_objects("bucket", "ckpt")
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "could not reach S3 endpoint" in msg and endpoint in msg and "after 3 attempts" in msg


@pytest.mark.parametrize("faults", [[503, 503], [500], ["reset", 429]])
def test_transient_errors_are_retried(moto_server, fault_proxy, bucket_name, faults):
    moto_server.make_bucket(bucket_name)
    moto_server.client().put_object(Bucket=bucket_name, Key="ckpt/config.json", Body=b"{}")
    proxy = fault_proxy(moto_server.endpoint_url, fail=faults)
    client = make_client(proxy.endpoint_url, access_key=moto_server.access_key, secret_key=moto_server.secret_key,
                         retry=FAST_RETRY)
    assert [o.key for o in client.list_objects(bucket_name, "ckpt")] == ["ckpt/config.json"]
    assert proxy.requests == len(faults) + 1


def test_persistent_throttling_gives_up(moto_server, fault_proxy, bucket_name):
    proxy = fault_proxy(moto_server.endpoint_url, fail=[503] * 10)
    client = make_client(proxy.endpoint_url, access_key="testing", secret_key="testing", retry=FAST_RETRY)
    with pytest.raises(S3UnreachableError, match=r"SlowDown.*after 3 attempts"):
        client.list_objects(bucket_name, "k")
    with pytest.raises(S3UnreachableError, match=r"503.*after 3 attempts"):  # HEAD: status only, no body
        client.head_object(bucket_name, "k")
    assert proxy.requests == 2 * FAST_RETRY.max_attempts
