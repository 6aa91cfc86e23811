"""Shared pieces for storage tests: a tiny checkpoint on disk and fast retry settings."""

import uuid

import pytest

from spg_lib.storage import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05, connect_timeout=2, read_timeout=10)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """builtin:tiny saved in the official layout (config.json, model.safetensors, tokenizer files)."""
    from spg_lib.storage import fetch_checkpoint

    return fetch_checkpoint("builtin:tiny", tmp_path_factory.mktemp("tiny") / "ckpt", verify_load=False)


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch, tmp_path_factory):
    """Keep boto3 off the developer's ~/.aws and off any credential endpoint that is not loopback (EC2 / ECS
    metadata at 169.254.x.x): credentials in these tests come from arguments or AWS_* variables only."""
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for k in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_PROFILE",
              "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def bucket_name():
    return f"spg-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def fast_retry_env(monkeypatch):
    """SPG_S3_* variables for tiny backoff (what the CLI reads)."""
    monkeypatch.setenv("SPG_S3_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("SPG_S3_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("SPG_S3_BACKOFF_MAX", "0.05")
    monkeypatch.setenv("SPG_S3_CONNECT_TIMEOUT", "2")


@pytest.fixture
def s3_env(monkeypatch, seaweedfs, fast_retry_env):
    """The process environment pointing at the session SeaweedFS (as a pipeline step would see it)."""
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", seaweedfs.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", seaweedfs.endpoint_url)
    return seaweedfs
