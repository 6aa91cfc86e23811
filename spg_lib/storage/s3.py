"""S3 access for checkpoints and artifacts: a client factory configured from the environment, retries with
exponential backoff for transient failures, and one clear exception per kind of permanent failure.

Environment (the standard AWS names, so boto3 / dvc-s3 / mlflow share one configuration):
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   credentials (else boto3's usual chain: ~/.aws, instance role, ...)
  AWS_DEFAULT_REGION (or AWS_REGION)         region, default "us-east-1"
  AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL endpoint of an S3-compatible store (SeaweedFS, MinIO, ...), unless
                                             an explicit `endpoint_url` is given; unset = AWS itself
  SPG_S3_MAX_ATTEMPTS                        attempts per request for transient errors (default 5)
  SPG_S3_BACKOFF_BASE, SPG_S3_BACKOFF_MAX    backoff seconds: base * 2**(attempt-1) capped at max (0.5 / 8)
  SPG_S3_CONNECT_TIMEOUT, SPG_S3_READ_TIMEOUT socket timeouts in seconds (5 / 60)

Addressing is path-style (http://endpoint/bucket/key), which every S3-compatible server accepts.

Errors (all `S3Error`, messages name the s3:// URI and never contain the secret key):
  S3NotFoundError     missing bucket / key / empty prefix; not retried
  S3CredentialsError  no credentials, or the server rejected them (403 signature / unknown key / access denied);
                      not retried; says which environment variables to check
  S3UnreachableError  connection refused / timeouts / 5xx / throttling still failing after the last attempt
Transient errors (connection errors, timeouts, HTTP 5xx, 429, SlowDown / Throttling / RequestTimeout) are retried.

Test: `python -m pytest -q tests/storage/test_s3.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

DEFAULT_REGION = "us-east-1"
CREDENTIAL_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
ENDPOINT_ENV_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload"}
_CREDENTIAL_CODES = {
    "403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken",
    "InvalidClientTokenId", "AuthorizationHeaderMalformed", "MissingSecurityHeader", "Forbidden",
}
_TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "TooManyRequestsException",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable", "BadGateway",
    "RequestLimitExceeded", "Busy", "PriorRequestNotComplete", "OperationAborted",
}


class S3Error(RuntimeError):
    """An S3 operation failed (base class)."""


class S3NotFoundError(S3Error, FileNotFoundError):
    """The bucket, key or prefix does not exist."""


class S3CredentialsError(S3Error, PermissionError):
    """Missing credentials, or the server rejected them."""


class S3UnreachableError(S3Error, ConnectionError):
    """The endpoint could not be reached (or kept failing transiently) after all retry attempts."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as err:
        raise ValueError(f"{name}={raw!r} is not a number") from err


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Attempts and exponential backoff (with +-25 % jitter) for transient S3 errors."""

    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("RetryPolicy backoff seconds must be >= 0")

    @classmethod
    def from_env(cls) -> RetryPolicy:
        d = cls()
        return cls(
            max_attempts=int(_env_float("SPG_S3_MAX_ATTEMPTS", d.max_attempts)),
            backoff_base=_env_float("SPG_S3_BACKOFF_BASE", d.backoff_base),
            backoff_max=_env_float("SPG_S3_BACKOFF_MAX", d.backoff_max),
            connect_timeout=_env_float("SPG_S3_CONNECT_TIMEOUT", d.connect_timeout),
            read_timeout=_env_float("SPG_S3_READ_TIMEOUT", d.read_timeout),
        )

    def delay(self, attempt: int) -> float:
        """Seconds to sleep after failed attempt number `attempt` (1-based)."""
        base = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return base * random.uniform(0.75, 1.25)


def resolve_endpoint(endpoint_url: str | None = None) -> str | None:
    """The explicit endpoint, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else None (AWS)."""
    if endpoint_url:
        return endpoint_url
    for name in ENDPOINT_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def resolve_region(region: str | None = None) -> str:
    return region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or DEFAULT_REGION


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix") (prefix without leading/trailing slashes)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    if parsed.query or parsed.fragment:
        raise ValueError(f"{uri!r}: s3 URIs take no query or fragment")
    return parsed.netloc, parsed.path.strip("/")


def s3_uri(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


@dataclasses.dataclass
class S3Client:
    """A boto3 S3 client plus the context needed for clear errors and retries. `.raw` is the boto3 client."""

    raw: Any
    endpoint_url: str | None
    region: str
    retry: RetryPolicy
    _secret: str | None = dataclasses.field(default=None, repr=False)

    # ---- error handling -------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f" at endpoint {self.endpoint_url}" if self.endpoint_url else ""

    def _redact(self, text: str) -> str:
        # (real secrets are 40 characters; a very short one would mangle unrelated text)
        return text.replace(self._secret, "***") if self._secret and len(self._secret) >= 8 else text

    def classify(self, err: BaseException, uri: str) -> tuple[bool, BaseException]:
        """(retryable, exception to raise) for an exception from botocore."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )

        if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
            return False, S3CredentialsError(
                f"no S3 credentials found for {uri}: set {' and '.join(CREDENTIAL_ENV_VARS)} "
                f"(or configure a boto3 credentials profile)"
            )
        if isinstance(err, ClientError):
            error = err.response.get("Error", {}) or {}
            code = str(error.get("Code", ""))
            status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = self._redact(str(error.get("Message", "")))
            if code in _NOT_FOUND_CODES or status == 404:
                what = {"NoSuchBucket": "bucket does not exist", "NoSuchKey": "key does not exist"}.get(
                    code, "not found")
                return False, S3NotFoundError(f"{uri}: {what}{self._where()} ({code or status})")
            if code in _CREDENTIAL_CODES or status in (401, 403):
                return False, S3CredentialsError(
                    f"{uri}: S3 rejected the credentials{self._where()} ({code or status}"
                    f"{': ' + message if message and message != code else ''}); check "
                    f"{' / '.join(CREDENTIAL_ENV_VARS)}"
                )
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return True, S3UnreachableError(
                    f"{uri}: S3 kept failing{self._where()} ({code or status}: {message or 'no message'})")
            return False, S3Error(f"{uri}: S3 error{self._where()} ({code or status}: {message or 'no message'})")
        if isinstance(err, (BotoConnectionError, HTTPClientError)):
            return True, S3UnreachableError(
                f"{uri}: could not reach S3 endpoint {self.endpoint_url or '(AWS default)'}: "
                f"{self._redact(str(err))}")
        if isinstance(err, BotoCoreError):
            return False, S3Error(f"{uri}: {self._redact(str(err))}")
        if isinstance(err, (ConnectionError, TimeoutError)):  # raised while streaming a body
            return True, S3UnreachableError(f"{uri}: connection to {self.endpoint_url} failed: {err}")
        return False, err

    def call(self, fn: Callable[[], T], uri: str) -> T:
        """Run `fn()` with retries for transient errors; raise an `S3Error` subclass otherwise."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as err:
                retryable, mapped = self.classify(err, uri)
                if mapped is err:
                    raise
                if not retryable or attempt >= self.retry.max_attempts:
                    if retryable:
                        mapped = type(mapped)(f"{mapped} (gave up after {attempt} attempt"
                                              f"{'s' if attempt > 1 else ''})")
                    raise mapped from err
            time.sleep(self.retry.delay(attempt))

    # ---- operations -----------------------------------------------------------------------------------------

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """All objects under `prefix` (a 'directory': the prefix is matched up to a '/' boundary)."""
        key_prefix = prefix.strip("/")
        key_prefix = f"{key_prefix}/" if key_prefix else ""
        uri = s3_uri(bucket, key_prefix)
        out: list[ObjectInfo] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key_prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.call(lambda kw=kwargs: self.raw.list_objects_v2(**kw), uri)
            for obj in page.get("Contents", []) or []:
                out.append(ObjectInfo(key=obj["Key"], size=int(obj["Size"]), etag=str(obj.get("ETag", "")).strip('"')))
            if not page.get("IsTruncated"):
                return out
            token = page.get("NextContinuationToken")

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        resp = self.call(lambda: self.raw.head_object(Bucket=bucket, Key=key), s3_uri(bucket, key))
        return ObjectInfo(key=key, size=int(resp["ContentLength"]), etag=str(resp.get("ETag", "")).strip('"'))

    def download(self, bucket: str, key: str, dest: Path, expected_size: int | None = None,
                 chunk_size: int = 1 << 20) -> str:
        """Stream s3://bucket/key to `dest` through `dest.part` (renamed when complete); return the sha256 hex.

        The whole GET (including the body stream) is retried on transient errors.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        uri = s3_uri(bucket, key)

        def fetch() -> str:
            resp = self.raw.get_object(Bucket=bucket, Key=key)
            digest = hashlib.sha256()
            n = 0
            with open(tmp, "wb") as f:
                for chunk in resp["Body"].iter_chunks(chunk_size):
                    f.write(chunk)
                    digest.update(chunk)
                    n += len(chunk)
            if expected_size is not None and n != expected_size:
                raise ConnectionError(f"short read: got {n} of {expected_size} bytes")
            return digest.hexdigest()

        try:
            sha = self.call(fetch, uri)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, dest)
        return sha

    def upload_file(self, path: Path, bucket: str, key: str) -> None:
        self.call(lambda: self.raw.upload_file(str(path), bucket, key), s3_uri(bucket, key))

    def upload_dir(self, directory: Path, bucket: str, prefix: str) -> list[str]:
        """Upload every file under `directory` to s3://bucket/prefix/<relative path>; return the keys."""
        keys = []
        for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            key = f"{prefix.strip('/')}/{path.relative_to(directory).as_posix()}".lstrip("/")
            self.upload_file(path, bucket, key)
            keys.append(key)
        return keys


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # without quotes; a plain md5 hex unless multipart ("<hex>-<parts>")

    @property
    def md5(self) -> str | None:
        """The content md5 when the etag is one (single-part upload without SSE-KMS), else None."""
        e = self.etag.lower()
        return e if len(e) == 32 and all(c in "0123456789abcdef" for c in e) else None


_DATA_LOADER: Any = None


def _botocore_session() -> Any:
    """A fresh botocore session (credentials resolved anew from the environment) sharing one service-model
    loader, so that creating a client costs ~0.05 s instead of re-parsing the S3 model (~0.5 s)."""
    import botocore.session

    global _DATA_LOADER
    session = botocore.session.get_session()
    if _DATA_LOADER is None:
        _DATA_LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _DATA_LOADER)
    return session


def make_client(
    endpoint_url: str | None = None,
    *,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    retry: RetryPolicy | None = None,
) -> S3Client:
    """An `S3Client` (path-style, our own retries) configured from arguments, then the environment.

    Args:
        endpoint_url: S3 endpoint; default AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS.
        region: default AWS_DEFAULT_REGION / AWS_REGION, else us-east-1.
        access_key, secret_key: default boto3's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY first).
        retry: attempts / backoff / timeouts; default `RetryPolicy.from_env()`.
    """
    import boto3
    from botocore.config import Config

    retry = retry or RetryPolicy.from_env()
    endpoint = resolve_endpoint(endpoint_url)
    if endpoint is not None:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"S3 endpoint {endpoint!r} is not an http(s)://host[:port] URL")
    region_name = resolve_region(region)
    config = Config(
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},  # retries are ours (S3Client.call), with classification
        connect_timeout=retry.connect_timeout,
        read_timeout=retry.read_timeout,
        signature_version="s3v4",
    )
    session = boto3.session.Session(botocore_session=_botocore_session())
    raw = session.client(
        "s3", endpoint_url=endpoint, region_name=region_name, config=config,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
    )
    secret = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY") or None
    return S3Client(raw=raw, endpoint_url=endpoint, region=region_name, retry=retry, _secret=secret)

