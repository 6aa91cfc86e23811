"""`fetch_checkpoint(uri, out_dir)`: materialise a model checkpoint directory from a URI, atomically, with a manifest.

Sources:
  builtin:tiny                 the tiny LLaDA (seed 0) + character tokenizer, saved in the official layout by the
                               caller's `write_builtin` (storage imports no model code)
  file:///abs/path, a/path     a local checkpoint directory (copied)
  s3://bucket/prefix           every object under prefix/ (S3 / SeaweedFS / MinIO; see spg_lib.storage.s3 for the
                               endpoint, credentials and retry environment variables)
  hf://org/name[@revision]     a Hugging Face Hub snapshot via huggingface_hub.snapshot_download (revision: branch,
                               tag or commit; the resolved commit is recorded). Needs network + HF_TOKEN for gated
                               repos; not exercised by the test-suite (no hub access there).

Protocol:
  1. If `out_dir` exists with a `spg_manifest.json` for the same URI and every listed file still has its sha256,
     it is reused as is (no network). A non-empty `out_dir` that is anything else is an error unless force=True.
  2. Files are fetched into `<out_dir>.partial/`. For s3:// this is resumable: a file already there with the
     remote size and etag (recorded in `.spg_partial.json` after each completed file, or equal to the md5 of a
     single-part etag) is not downloaded again; each file comes through boto3's transfer manager, which writes
     a temporary sibling and renames it when complete (a leftover of an interrupted one is removed next time).
  3. `spg_manifest.json` is written: uri, source details (endpoint / etags / revision), per-file size + sha256,
     creation time.
  4. The result is verified: config.json parses, weights are present (model.safetensors, a complete sharded
     index, or pytorch_model.bin); with a `load_check` (the CLI and pipeline pass `spg_lib.models.load_model`)
     the checkpoint is also loaded.
  5. `<out_dir>.partial` is renamed to `out_dir` (atomic on one filesystem).
  A failure at any step raises `FetchError` (or an `S3Error` subclass, both with clear messages) and leaves
  no `out_dir` behind; a `.partial` directory may remain for the next attempt to resume. One fetch per out_dir
  at a time (no locking).

Test: `python -m pytest -q tests/storage`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from spg_lib.io import (
    URI,
    InputError,
    URIError,
    atomic_write_json,
    is_hub_id,
    parse_uri,
    read_json,
    remove_path,
    replace_dir,
    sha256_file,
)
from spg_lib.storage.s3 import ObjectInfo, S3Client, S3NotFoundError, S3Settings, make_client

MANIFEST_NAME = "spg_manifest.json"
PARTIAL_STATE_NAME = ".spg_partial.json"
MANIFEST_FORMAT = 1
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
#: checks that a checkpoint directory loads (e.g. `spg_lib.models.load_model`); raises when it does not
LoadCheck = Callable[[str], object]
#: writes the checkpoint of a builtin URI (e.g. builtin:tiny) into a directory (e.g. `models.loading.save_model_dir`)
WriteBuiltin = Callable[[str, Path], None]


class FetchError(RuntimeError):
    """A checkpoint could not be fetched / verified (bad URI, not a checkpoint, conflicting out_dir, ...)."""


class CheckpointURIError(FetchError, URIError):
    """The URI is malformed or uses an unsupported scheme."""


def parse_checkpoint_uri(uri: str) -> URI:
    """`spg_lib.io.parse_uri`, plus what a checkpoint needs: an s3:// URI names a prefix inside its bucket."""
    try:
        parsed = parse_uri(uri)
    except URIError as err:
        raise CheckpointURIError(str(err)) from None
    if parsed.scheme == "s3" and not parsed.key:
        raise CheckpointURIError(f"{uri!r}: give the checkpoint prefix inside the bucket (s3://bucket/prefix)")
    return parsed


# ------------------------------------------------------------------------------------------------ helpers


def md5_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _checkpoint_files(directory: Path) -> list[str]:
    """Relative POSIX paths of the checkpoint's files (manifest, partial state and *.part excluded)."""
    out = []
    for p in directory.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(directory).as_posix()
        if rel in (MANIFEST_NAME, PARTIAL_STATE_NAME) or rel.endswith(".part"):
            continue
        out.append(rel)
    return sorted(out)


def _safe_relpath(rel: str, uri: str) -> str:
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or any(part in ("..", "") for part in rel.split("/")):
        raise FetchError(f"{uri}: refusing unsafe object path {rel!r}")
    return pure.as_posix()


# ------------------------------------------------------------------------------------------------ manifest


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The parsed `spg_manifest.json` of `directory`, or None when absent / unreadable."""
    try:
        data = read_json(Path(directory) / MANIFEST_NAME)
    except InputError:
        return None
    return data if isinstance(data.get("files"), dict) else None


def verify_manifest(directory: Path, manifest: dict[str, Any] | None = None) -> list[str]:
    """Problems with `directory` against its manifest (missing files, size or sha256 mismatches); [] = intact."""
    directory = Path(directory)
    manifest = manifest if manifest is not None else read_manifest(directory)
    if manifest is None:
        return [f"{directory}: no readable {MANIFEST_NAME}"]
    problems = []
    for rel, info in sorted(manifest["files"].items()):
        path = directory / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != info.get("size"):
            problems.append(f"{rel}: size {path.stat().st_size} != {info.get('size')}")
        elif sha256_file(path) != info.get("sha256"):
            problems.append(f"{rel}: sha256 mismatch")
    return problems


def build_manifest(directory: Path, uri: URI, source: dict[str, Any],
                   known_sha: dict[str, str] | None = None) -> dict[str, Any]:
    known_sha = known_sha or {}
    files: dict[str, Any] = {}
    for rel in _checkpoint_files(directory):
        path = directory / rel
        entry: dict[str, Any] = {"size": path.stat().st_size, "sha256": known_sha.get(rel) or sha256_file(path)}
        etag = (source.get("etags") or {}).get(rel)
        if etag:
            entry["etag"] = etag
        files[rel] = entry
    return {
        "format": MANIFEST_FORMAT,
        "uri": uri.canonical,
        "scheme": uri.scheme,
        "source": {k: v for k, v in source.items() if k != "etags"},
        "files": files,
        "total_bytes": sum(f["size"] for f in files.values()),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------------------ verification


def verify_checkpoint(directory: Path, load_check: LoadCheck | None = None) -> dict[str, Any]:
    """Check that `directory` is a checkpoint (config.json, complete weights) and, with `load_check`, that it loads;
    return its parsed config.json.

    Raises FetchError: no / invalid config.json, no weights, missing shards, or `load_check(str(directory))` failing.
    """
    directory = Path(directory)
    try:
        config = read_json(directory / "config.json", what="checkpoint config",
                           hint="not a Hugging Face checkpoint directory")
    except InputError as err:
        raise FetchError(str(err)) from None
    indexes = [directory / n for n in WEIGHT_INDEXES if (directory / n).is_file()]
    if indexes:
        try:
            weight_map = read_json(indexes[0], what="shard index").get("weight_map") or {}
        except InputError as err:
            raise FetchError(str(err)) from None
        missing = sorted({s for s in weight_map.values() if not (directory / s).is_file()})
        if not weight_map or missing:
            raise FetchError(f"{indexes[0]}: missing weight shards {missing[:5]}{'...' if len(missing) > 5 else ''}")
    elif not any((directory / n).is_file() for n in WEIGHT_FILES):
        raise FetchError(f"{directory}: no weights ({' / '.join(WEIGHT_FILES + WEIGHT_INDEXES)})")
    if load_check is not None:
        try:
            load_check(str(directory))
        except Exception as err:
            raise FetchError(f"{directory}: checkpoint does not load: {type(err).__name__}: {err}") from err
    return config


# ------------------------------------------------------------------------------------------------ sources


def _fetch_builtin(uri: URI, partial: Path, write_builtin: WriteBuiltin | None) -> dict[str, Any]:
    if write_builtin is None:
        raise FetchError(f"{uri.canonical} is built by the model layer: pass write_builtin (e.g. "
                         "spg_lib.models.loading.save_model_dir)")
    remove_path(partial)
    partial.mkdir(parents=True)
    write_builtin(uri.canonical, partial)
    return {"builtin": uri.canonical.removeprefix("builtin:"), "seed": 0}


def _fetch_file(uri: URI, partial: Path) -> dict[str, Any]:
    src = uri.path
    assert src is not None
    if not src.exists():
        hint = " (for a Hugging Face repo use hf://org/name)" if uri.is_plain_path and is_hub_id(uri.raw) else ""
        raise FetchError(f"{uri.canonical}: local path {src} does not exist{hint}")
    if not src.is_dir():
        raise FetchError(f"{uri.canonical}: {src} is not a directory (a checkpoint is a directory)")
    remove_path(partial)
    partial.mkdir(parents=True)
    for rel in _checkpoint_files(src):
        dest = partial / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dest)
    return {"path": str(src)}


def _fetch_s3(uri: URI, partial: Path, client: S3Client) -> tuple[dict[str, Any], dict[str, str]]:
    objects = client.list_objects(uri.bucket, uri.key)
    key_prefix = uri.key + "/"
    wanted: dict[str, ObjectInfo] = {}
    for obj in objects:
        if obj.key.endswith("/"):  # "directory" marker objects
            continue
        wanted[_safe_relpath(obj.key[len(key_prefix):], uri.canonical)] = obj
    if not wanted:
        raise S3NotFoundError(f"{uri.canonical}/: no objects under this prefix{client.where()}")

    partial.mkdir(parents=True, exist_ok=True)
    state_path = partial / PARTIAL_STATE_NAME
    try:
        state = read_json(state_path)
    except InputError:
        state = None
    if isinstance(state, dict) and state.get("uri") != uri.canonical:
        remove_path(partial)  # a partial download of another checkpoint: start over
        partial.mkdir(parents=True)
    if not isinstance(state, dict) or state.get("uri") != uri.canonical:
        # files without a record are still reused when their size and single-part md5 etag match
        state = {"uri": uri.canonical, "files": {}}
    done: dict[str, Any] = state.setdefault("files", {})
    # drop leftovers that are not part of this checkpoint (stale files, interrupted downloads' temporaries)
    for p in sorted(partial.rglob("*"), reverse=True):
        rel = p.relative_to(partial).as_posix()
        if p.is_file() and rel != PARTIAL_STATE_NAME and rel not in wanted:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()

    sha: dict[str, str] = {}
    skipped = 0
    for rel, obj in sorted(wanted.items()):
        dest = partial / rel
        if dest.is_file() and dest.stat().st_size == obj.size:
            rec = done.get(rel) or {}
            if rec.get("etag") == obj.etag and rec.get("size") == obj.size and rec.get("sha256"):
                sha[rel] = rec["sha256"]
                skipped += 1
                continue
            if obj.md5 is not None and md5_file(dest) == obj.md5:
                sha[rel] = sha256_file(dest)
                skipped += 1
                continue
        sha[rel] = client.download(uri.bucket, obj.key, dest, expected_size=obj.size, etag=obj.etag)
        done[rel] = {"etag": obj.etag, "size": obj.size, "sha256": sha[rel]}
        atomic_write_json(state_path, state, sort_keys=True)
    source = {
        "endpoint_url": client.endpoint_url,
        "bucket": uri.bucket,
        "prefix": uri.key,
        "etags": {rel: obj.etag for rel, obj in wanted.items()},
        "resumed_files": skipped,
    }
    return source, sha


def _fetch_hf(uri: URI, partial: Path) -> dict[str, Any]:  # pragma: no cover - needs the hub
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError as err:
        raise FetchError(f"{uri.canonical}: huggingface_hub is not installed") from err
    try:
        commit = HfApi().model_info(uri.repo_id, revision=uri.revision).sha
        partial.mkdir(parents=True, exist_ok=True)
        snapshot_download(repo_id=uri.repo_id, revision=commit or uri.revision, local_dir=str(partial))
    except Exception as err:
        raise FetchError(f"{uri.canonical}: Hugging Face download failed: {type(err).__name__}: {err}") from err
    remove_path(partial / ".cache")  # huggingface_hub's local_dir bookkeeping
    return {"repo_id": uri.repo_id, "revision": uri.revision, "commit": commit}


# ------------------------------------------------------------------------------------------------ entry point


@dataclasses.dataclass(frozen=True)
class FetchResult:
    path: Path
    manifest: dict[str, Any]
    reused: bool
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.path), "uri": self.manifest["uri"], "reused": self.reused,
            "files": len(self.manifest["files"]), "total_bytes": self.manifest.get("total_bytes"),
            "created": self.manifest.get("created"), "seconds": round(self.seconds, 3),
        }


def fetch_checkpoint(uri: str, out_dir: str | os.PathLike[str], **options: Any) -> Path:
    """`fetch_checkpoint_result(uri, out_dir, **options).path`."""
    return fetch_checkpoint_result(uri, out_dir, **options).path


def fetch_checkpoint_result(
    uri: str,
    out_dir: str | os.PathLike[str],
    *,
    load_check: LoadCheck | None = None,
    write_builtin: WriteBuiltin | None = None,
    endpoint_url: str | None = None,
    force: bool = False,
    settings: S3Settings | None = None,
    client: S3Client | None = None,
) -> FetchResult:
    """Fetch the checkpoint at `uri` into `out_dir` (see the module docstring); report the manifest and whether an
    existing out_dir was reused.

    Args:
        uri: builtin:tiny | file:///path | local path | s3://bucket/prefix | hf://org/name[@revision].
        out_dir: destination directory (created; its parent too).
        load_check: called with the fetched directory before publishing; raises when it does not load (the CLI
            and pipeline pass `spg_lib.models.load_model`); None checks the file layout only.
        write_builtin: writes a builtin URI's checkpoint into a directory (needed for builtin:tiny).
        endpoint_url: S3 endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
        force: replace an existing out_dir that is not a valid fetch of `uri`.
        settings: S3 retry mode / attempts / timeouts (default `S3Settings.from_env()`).
        client: a ready `S3Client` (overrides endpoint_url / settings).
    Raises:
        CheckpointURIError, FetchError, spg_lib.storage.s3.S3Error (S3NotFoundError, S3CredentialsError,
        S3UnreachableError).
    """
    t0 = time.monotonic()
    parsed = parse_checkpoint_uri(uri)
    out = Path(out_dir).expanduser().absolute()
    if parsed.scheme == "file" and parsed.path == out.resolve():
        raise FetchError(f"{uri}: source and out_dir are the same directory")

    # 1. reuse
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise FetchError(f"{out}: exists and is not a directory")
        if not any(out.iterdir()):
            out.rmdir()
        else:
            manifest = read_manifest(out)
            problems = (["manifest is for " + str(manifest.get("uri"))] if manifest and manifest.get("uri")
                        != parsed.canonical else verify_manifest(out, manifest))
            if not problems and manifest is not None:
                return FetchResult(out, manifest, reused=True, seconds=time.monotonic() - t0)
            if not force:
                raise FetchError(
                    f"{out}: exists but is not an intact fetch of {parsed.canonical} ({'; '.join(problems[:3])}); "
                    "remove it or pass force=True / --force")

    # 2. fetch into <out>.partial
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    known_sha: dict[str, str] = {}
    if parsed.scheme == "builtin":
        source = _fetch_builtin(parsed, partial, write_builtin)
    elif parsed.scheme == "file":
        source = _fetch_file(parsed, partial)
    elif parsed.scheme == "s3":
        s3 = client or make_client(endpoint_url, settings=settings)
        source, known_sha = _fetch_s3(parsed, partial, s3)
    elif parsed.scheme == "hf":
        source = _fetch_hf(parsed, partial)
    else:  # pragma: no cover - parse_checkpoint_uri guards
        raise CheckpointURIError(f"{uri}: unsupported scheme {parsed.scheme!r}")

    # 3. verify, then manifest (the manifest is the completeness marker, written last inside .partial)
    verify_checkpoint(partial, load_check)
    manifest = build_manifest(partial, parsed, source, known_sha)
    (partial / PARTIAL_STATE_NAME).unlink(missing_ok=True)
    atomic_write_json(partial / MANIFEST_NAME, manifest, sort_keys=True)

    # 4. publish atomically (force=True over an invalid out_dir: it is moved aside first)
    replace_dir(partial, out)
    return FetchResult(out, manifest, reused=False, seconds=time.monotonic() - t0)
