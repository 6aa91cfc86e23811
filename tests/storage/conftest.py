"""Shared pieces for storage tests: a tiny checkpoint on disk, three attempts per request, short backoff."""

import uuid

import pytest

from spg_lib.models.loading import save_model_dir
from spg_lib.storage import S3Settings

FAST = S3Settings(max_attempts=3, connect_timeout=2, read_timeout=10)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """builtin:tiny saved in the official layout (config.json, model.safetensors, tokenizer files)."""
    from spg_lib.storage import fetch_checkpoint

    return fetch_checkpoint("builtin:tiny", tmp_path_factory.mktemp("tiny") / "ckpt", write_builtin=save_model_dir)


@pytest.fixture(autouse=True)
def _short_backoff(monkeypatch):
    """botocore's standard-mode backoff (up to 1 s, 2 s, ... between attempts) cut to 10 ms: the attempts and their
    classification are botocore's own, only the waiting is shortened."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch, tmp_path_factory):
    """Keep boto3 off the developer's ~/.aws and off any credential endpoint that is not loopback (EC2 / ECS
    metadata at 169.254.x.x): credentials in these tests come from arguments or AWS_* variables only."""
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for k in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_PROFILE",
              "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def bucket_name():
    return f"spg-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def fast_retry_env(monkeypatch):
    """The retry / timeout variables the CLI reads: botocore's AWS_MAX_ATTEMPTS and AWS_RETRY_MODE, and ours."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
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
