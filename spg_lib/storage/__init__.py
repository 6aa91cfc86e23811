"""Object storage and checkpoint fetching.

Modules:
  s3     `make_client` (boto3 from AWS_* environment, path-style, retries with exponential backoff), `S3Client`
         (list / head / download / upload with clear `S3NotFoundError` / `S3CredentialsError` /
         `S3UnreachableError`), `RetryPolicy` (SPG_S3_* environment), `parse_s3_uri`
  fetch  `fetch_checkpoint(uri, out_dir)` for builtin:tiny, file:// / local paths, s3://bucket/prefix and
         hf://org/name[@revision]: `<out_dir>.partial` (resumable), `spg_manifest.json`, load check, atomic rename

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
    RetryPolicy,
    S3Client,
    S3CredentialsError,
    S3Error,
    S3NotFoundError,
    S3UnreachableError,
    make_client,
    parse_s3_uri,
)

__all__ = [
    "MANIFEST_NAME",
    "CheckpointURIError",
    "FetchError",
    "FetchResult",
    "RetryPolicy",
    "S3Client",
    "S3CredentialsError",
    "S3Error",
    "S3NotFoundError",
    "S3UnreachableError",
    "fetch_checkpoint",
    "fetch_checkpoint_result",
    "make_client",
    "parse_checkpoint_uri",
    "parse_s3_uri",
    "read_manifest",
    "verify_checkpoint",
    "verify_manifest",
]
