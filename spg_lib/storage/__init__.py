"""Object storage and checkpoint fetching.

Modules:
  s3     `make_client` (boto3 from AWS_* environment, path-style, botocore's standard retries), `S3Client`
         (list / head / download / upload through boto3's transfer manager, with clear `S3NotFoundError` /
         `S3CredentialsError` / `S3UnreachableError`), `S3Settings` (retry mode, attempts, timeouts),
         `fsspec_options` (the same configuration for s3fs), `parse_s3_uri`
  fetch  `fetch_checkpoint(uri, out_dir)` for builtin:tiny, file:// / local paths, s3://bucket/prefix and
         hf://org/name[@revision]: `<out_dir>.partial` (resumable), `spg_manifest.json`, the caller's load check,
         atomic rename

CLI: `spg fetch-checkpoint --uri URI --out DIR`. Test: `python -m pytest -q tests/storage`.
"""

from spg_lib.storage.fetch import (
    MANIFEST_NAME,
    CheckpointURIError,
    FetchError,
    FetchResult,
    fetch_checkpoint,
    fetch_checkpoint_result,
    parse_checkpoint_uri,
    read_manifest,
    verify_checkpoint,
    verify_manifest,
)
from spg_lib.storage.s3 import (
    S3Client,
    S3CredentialsError,
    S3Error,
    S3NotFoundError,
    S3Settings,
    S3UnreachableError,
    fsspec_options,
    make_client,
    parse_s3_uri,
)

__all__ = [
    "MANIFEST_NAME",
    "CheckpointURIError",
    "FetchError",
    "FetchResult",
    "S3Client",
    "S3CredentialsError",
    "S3Error",
    "S3NotFoundError",
    "S3Settings",
    "S3UnreachableError",
    "fetch_checkpoint",
    "fetch_checkpoint_result",
    "fsspec_options",
    "make_client",
    "parse_checkpoint_uri",
    "parse_s3_uri",
    "read_manifest",
    "verify_checkpoint",
    "verify_manifest",
]
