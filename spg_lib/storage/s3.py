"""S3 access for checkpoints, artifacts and data: a client factory configured from the environment, botocore's
retries, boto3's transfer manager, and one clear exception per kind of permanent failure.

Environment (the standard AWS names, so boto3 / s3fs / dvc-s3 / mlflow share one configuration):
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   credentials (else boto3's usual chain: ~/.aws, instance role, ...)
  AWS_DEFAULT_REGION (or AWS_REGION)         region, default "us-east-1"
  AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL endpoint of an S3-compatible store (SeaweedFS, MinIO, ...), unless
                                             an explicit `endpoint_url` is given; unset = AWS itself
  AWS_RETRY_MODE                             botocore retry mode; default "standard" (not botocore's "legacy")
  AWS_MAX_ATTEMPTS                           attempts per request, read by botocore (standard mode default: 3)
  SPG_S3_CONNECT_TIMEOUT, SPG_S3_READ_TIMEOUT socket timeouts in seconds (5 / 60)

botocore's standard mode retries throttling (SlowDown, ...), HTTP 500/502/503/504, RequestTimeout and connection
errors with jittered exponential backoff; files move through boto3's transfer manager (multipart above 8 MiB, and
a dropped download stream is resumed). Addressing is path-style (http://endpoint/bucket/key), which every
S3-compatible server accepts.

Errors (all `S3Error`, messages name the s3:// URI and never contain the secret key):
  S3NotFoundError     missing bucket / key / empty prefix
  S3CredentialsError  no credentials, or the server rejected them (403 signature / unknown key / access denied);
                      says which environment variables to check
  S3UnreachableError  connection refused / timeouts / 5xx / throttling still failing after botocore's last attempt

Test: `python -m pytest -q tests/storage/test_s3.py`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlparse

from spg_lib.io import URIError, parse_uri, sha256_file

T = TypeVar("T")
RetryMode = Literal["standard", "adaptive", "legacy"]

DEFAULT_REGION = "us-east-1"
CREDENTIAL_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
ENDPOINT_ENV_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload"}
_CREDENTIAL_CODES = {
    "403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken",
    "InvalidClientTokenId", "AuthorizationHeaderMalformed", "MissingSecurityHeader", "Forbidden",
}
# what is still failing after botocore's retries (its transient and throttling codes, and servers' own names)
_TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "TooManyRequestsException",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable", "BadGateway",
    "RequestLimitExceeded", "Busy", "PriorRequestNotComplete", "OperationAborted",
}
# botocore's default attempts per retry mode when neither the client config nor AWS_MAX_ATTEMPTS sets them
_DEFAULT_ATTEMPTS = {"standard": 3, "adaptive": 3, "legacy": 5}


class S3Error(RuntimeError):
    """An S3 operation failed (base class)."""


class S3NotFoundError(S3Error, FileNotFoundError):
    """The bucket, key or prefix does not exist."""


class S3CredentialsError(S3Error, PermissionError):
    """Missing credentials, or the server rejected them."""


class S3UnreachableError(S3Error, ConnectionError):
    """The endpoint could not be reached (or kept failing transiently) after botocore's last attempt."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be > 0 seconds")
    return value


@dataclasses.dataclass(frozen=True)
class S3Settings:
    """Retry mode and attempts (handed to botocore) and socket timeouts of an S3 client."""

    retry_mode: RetryMode = "standard"
    max_attempts: int | None = None  # None: botocore's own resolution (AWS_MAX_ATTEMPTS, ~/.aws/config, default)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.retry_mode not in get_args(RetryMode):
            raise ValueError(f"S3 retry mode must be one of {', '.join(get_args(RetryMode))}, "
                             f"got {self.retry_mode!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"S3Settings.max_attempts must be >= 1, got {self.max_attempts}")

    @classmethod
    def from_env(cls) -> S3Settings:
        """AWS_RETRY_MODE (default "standard"), SPG_S3_CONNECT_TIMEOUT, SPG_S3_READ_TIMEOUT; attempts stay
        botocore's to read (AWS_MAX_ATTEMPTS)."""
        d = cls()
        mode = os.environ.get("AWS_RETRY_MODE", "").strip() or d.retry_mode
        if mode not in get_args(RetryMode):
            raise ValueError(f"AWS_RETRY_MODE={mode!r} is not one of {', '.join(get_args(RetryMode))}")
        return cls(
            retry_mode=mode,  # type: ignore[arg-type]
            connect_timeout=_env_float("SPG_S3_CONNECT_TIMEOUT", d.connect_timeout),
            read_timeout=_env_float("SPG_S3_READ_TIMEOUT", d.read_timeout),
        )

    def config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `botocore.config.Config`: path-style addressing, retries, timeouts."""
        retries: dict[str, Any] = {"mode": self.retry_mode}
        if self.max_attempts is not None:
            retries["total_max_attempts"] = self.max_attempts
        return {"s3": {"addressing_style": "path"}, "retries": retries, "connect_timeout": self.connect_timeout,
                "read_timeout": self.read_timeout}


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
    try:
        parsed = parse_uri(uri)
    except URIError as err:
        raise ValueError(str(err)) from None
    if parsed.scheme != "s3":
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return parsed.bucket, parsed.key


def s3_uri(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


def fsspec_options(endpoint_url: str | None = None, *, region: str | None = None,
                   settings: S3Settings | None = None) -> dict[str, Any]:
    """`storage_options` for fsspec / s3fs (e.g. `datasets.load_dataset(..., storage_options=...)`) with this
    module's endpoint, region, path-style addressing, retries and timeouts; credentials stay the AWS_* chain."""
    settings = settings or S3Settings.from_env()
    client_kwargs: dict[str, Any] = {"region_name": resolve_region(region)}
    endpoint = resolve_endpoint(endpoint_url)
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    return {"client_kwargs": client_kwargs, "config_kwargs": settings.config_kwargs()}


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


@dataclasses.dataclass
class S3Client:
    """A boto3 S3 client plus the context needed for clear errors. `.raw` is the boto3 client."""

    raw: Any
    endpoint_url: str | None
    region: str
    settings: S3Settings
    _secret: str | None = dataclasses.field(default=None, repr=False)

    # ---- error handling -------------------------------------------------------------------------------------

    @property
    def max_attempts(self) -> int:
        """Attempts per request as botocore resolved them (client config, AWS_MAX_ATTEMPTS, or its default)."""
        retries = getattr(self.raw.meta.config, "retries", None) or {}
        return int(retries.get("total_max_attempts") or _DEFAULT_ATTEMPTS.get(retries.get("mode", ""), 3))

    def where(self) -> str:
        """The endpoint for messages: " at endpoint <url>", or "" for AWS itself."""
        return f" at endpoint {self.endpoint_url}" if self.endpoint_url else ""

    def _redact(self, text: str) -> str:
        # (real secrets are 40 characters; a very short one would mangle unrelated text)
        return text.replace(self._secret, "***") if self._secret and len(self._secret) >= 8 else text

    def _gave_up(self, attempts: int) -> str:
        return f" (gave up after {attempts} attempt{'s' if attempts != 1 else ''})"

    def classify(self, err: BaseException, uri: str) -> BaseException:
        """The `S3Error` to raise for an exception from botocore / s3transfer (`err` itself when not S3's)."""
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
        from s3transfer.exceptions import RetriesExceededError

        if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
            return S3CredentialsError(
                f"no S3 credentials found for {uri}: set {' and '.join(CREDENTIAL_ENV_VARS)} "
                f"(or configure a boto3 credentials profile)"
            )
        if isinstance(err, ClientError):
            error = err.response.get("Error", {}) or {}
            meta = err.response.get("ResponseMetadata", {}) or {}
            code = str(error.get("Code", ""))
            status = int(meta.get("HTTPStatusCode") or 0)
            message = self._redact(str(error.get("Message", "")))
            if code in _NOT_FOUND_CODES or status == 404:
                what = {"NoSuchBucket": "bucket does not exist", "NoSuchKey": "key does not exist"}.get(
                    code, "not found")
                return S3NotFoundError(f"{uri}: {what}{self.where()} ({code or status})")
            if code in _CREDENTIAL_CODES or status in (401, 403):
                return S3CredentialsError(
                    f"{uri}: S3 rejected the credentials{self.where()} ({code or status}"
                    f"{': ' + message if message and message != code else ''}); check "
                    f"{' / '.join(CREDENTIAL_ENV_VARS)}"
                )
            detail = f"({code or status}: {message or 'no message'})"
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                attempts = int(meta.get("RetryAttempts", 0)) + 1
                return S3UnreachableError(f"{uri}: S3 kept failing{self.where()} {detail}{self._gave_up(attempts)}")
            return S3Error(f"{uri}: S3 error{self.where()} {detail}")
        if isinstance(err, (BotoConnectionError, HTTPClientError)):
            return S3UnreachableError(
                f"{uri}: could not reach S3 endpoint {self.endpoint_url or '(AWS default)'}: "
                f"{self._redact(str(err))}{self._gave_up(self.max_attempts)}")
        if isinstance(err, RetriesExceededError):  # the transfer manager's resumes of a dropped download stream
            return S3UnreachableError(f"{uri}: the download from {self.endpoint_url or 'AWS'} kept breaking off "
                                      f"({self._redact(str(err.last_exception))})")
        if isinstance(err, BotoCoreError):
            return S3Error(f"{uri}: {self._redact(str(err))}")
        return err

    def call(self, fn: Callable[[], T], uri: str) -> T:
        """Run `fn()` (botocore retries inside it); raise an `S3Error` subclass for S3 failures."""
        try:
            return fn()
        except Exception as err:
            mapped = self.classify(err, uri)
            if mapped is err:
                raise
            raise mapped from err

    # ---- operations -----------------------------------------------------------------------------------------

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """All objects under `prefix` (a 'directory': the prefix is matched up to a '/' boundary)."""
        key_prefix = prefix.strip("/")
        key_prefix = f"{key_prefix}/" if key_prefix else ""
        paginator = self.raw.get_paginator("list_objects_v2")

        def pages() -> list[ObjectInfo]:
            return [ObjectInfo(key=obj["Key"], size=int(obj["Size"]), etag=str(obj.get("ETag", "")).strip('"'))
                    for page in paginator.paginate(Bucket=bucket, Prefix=key_prefix)
                    for obj in page.get("Contents", []) or []]

        return self.call(pages, s3_uri(bucket, key_prefix))

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        resp = self.call(lambda: self.raw.head_object(Bucket=bucket, Key=key), s3_uri(bucket, key))
        return ObjectInfo(key=key, size=int(resp["ContentLength"]), etag=str(resp.get("ETag", "")).strip('"'))

    def download(self, bucket: str, key: str, dest: Path, expected_size: int | None = None,
                 etag: str | None = None) -> str:
        """Download s3://bucket/key to `dest` with boto3's transfer manager; return the file's sha256 hex.

        The transfer manager writes a temporary sibling and renames it into place when complete. Given the size and
        etag of a listing it skips its HEAD request and downloads only that version of the object (If-Match).
        """
        from boto3.s3.transfer import TransferConfig, create_transfer_manager
        from s3transfer.subscribers import BaseSubscriber

        class _Listed(BaseSubscriber):
            def on_queued(self, future: Any, **kwargs: Any) -> None:
                future.meta.provide_transfer_size(expected_size)
                future.meta.provide_object_etag(f'"{etag}"')

        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        subscribers = [_Listed()] if expected_size is not None and etag else []

        def fetch() -> None:
            with create_transfer_manager(self.raw, TransferConfig()) as manager:
                manager.download(bucket, key, str(dest), subscribers=subscribers).result()

        self.call(fetch, s3_uri(bucket, key))
        return sha256_file(dest)

    def upload_file(self, path: Path, bucket: str, key: str) -> None:
        """Upload one file with boto3's transfer manager (multipart above its threshold)."""
        self.call(lambda: self.raw.upload_file(str(path), bucket, key), s3_uri(bucket, key))

    def upload_dir(self, directory: Path, bucket: str, prefix: str) -> list[str]:
        """Upload every file under `directory` to s3://bucket/prefix/<relative path>; return the keys."""
        keys = []
        for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            key = f"{prefix.strip('/')}/{path.relative_to(directory).as_posix()}".lstrip("/")
            self.upload_file(path, bucket, key)
            keys.append(key)
        return keys


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
    settings: S3Settings | None = None,
) -> S3Client:
    """An `S3Client` (path-style, botocore retries) configured from arguments, then the environment.

    Args:
        endpoint_url: S3 endpoint; default AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS.
        region: default AWS_DEFAULT_REGION / AWS_REGION, else us-east-1.
        access_key, secret_key: default boto3's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY first).
        settings: retry mode / attempts / timeouts; default `S3Settings.from_env()`.
    """
    import boto3
    from botocore.config import Config

    settings = settings or S3Settings.from_env()
    endpoint = resolve_endpoint(endpoint_url)
    if endpoint is not None:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"S3 endpoint {endpoint!r} is not an http(s)://host[:port] URL")
    region_name = resolve_region(region)
    session = boto3.session.Session(botocore_session=_botocore_session())
    raw = session.client(
        "s3", endpoint_url=endpoint, region_name=region_name,
        config=Config(signature_version="s3v4", **settings.config_kwargs()),
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
    )
    secret = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY") or None
    return S3Client(raw=raw, endpoint_url=endpoint, region=region_name, settings=settings, _secret=secret)
