"""Reading task data (local JSONL/JSON/CSV/parquet, ``s3://``, Hugging Face hub) and atomic writes.

Every reader returns a `Table`: the rows plus, for each row, where it came from
(``file:line``), so that any later validation error can name the file and line. Bad input raises
`DataError` (a ValueError) with that location. Writers go through a temporary file in the same
directory and `os.replace`, so a crash never leaves a half-written output behind.

Sources accepted by `load_source`:
  * a local file (``.jsonl``, ``.json``, ``.csv``, ``.parquet``) or a directory holding
    ``{split}.{jsonl,json,csv,parquet}``;
  * ``s3://bucket/key`` (needs ``fsspec`` with ``s3fs``, or ``boto3``);
  * ``hf://owner/name`` or ``owner/name`` (needs ``datasets``, or falls back to downloading the
    parquet files of the split with ``huggingface_hub``); ``owner/name:config`` picks a config.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "DataError",
    "Table",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_jsonl",
    "load_source",
    "read_table",
    "sha256_file",
    "write_manifest",
    "write_rows",
]

# Version of the prepared-data layout (fields of the train/test rows + manifest.json).
SCHEMA_VERSION = 1
_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class DataError(ValueError):
    """Malformed or missing task data; the message names the file (and line when known)."""


@dataclasses.dataclass(frozen=True)
class Table:
    """Rows read from one source, with the location (``file:line``) of each row."""

    source: str
    rows: list[dict[str, Any]]
    locations: list[str]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(zip(self.locations, self.rows))


# ----------------------------------------------------------------------------------------------
# local readers
# ----------------------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> Table:
    rows, locs = [], []
    with path.open("r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            rows.append(obj)
            locs.append(f"{path}:{lineno}")
    return Table(str(path), rows, locs)


def _read_json(path: Path) -> Table:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    if isinstance(obj, dict) and isinstance(obj.get("generations"), list):
        obj = obj["generations"]  # the official eval output layout
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list of objects (or {{'generations': [...]}})")
    for i, row in enumerate(obj):
        if not isinstance(row, dict):
            raise DataError(f"{path}: item {i}: expected a JSON object, got {type(row).__name__}")
    return Table(str(path), obj, [f"{path}: item {i}" for i in range(len(obj))])


def _read_csv(path: Path) -> Table:
    # every cell stays a string (Sudoku puzzles keep their leading zeros)
    rows, locs = [], []
    with path.open("r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise DataError(f"{path}: empty dataset (no CSV header)")
        for row in reader:
            if None in row:
                raise DataError(f"{path}:{reader.line_num}: more cells than header columns")
            rows.append(dict(row))
            locs.append(f"{path}:{reader.line_num}")
    return Table(str(path), rows, locs)


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        raise DataError(f"{path}: reading parquet needs pyarrow") from exc
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: cannot read parquet ({exc})") from exc
    return Table(str(path), rows, [f"{path}: row {i + 1}" for i in range(len(rows))])


def read_table(path: str | os.PathLike[str], *, allow_empty: bool = False) -> Table:
    """Read a local ``.jsonl``/``.json``/``.csv``/``.parquet`` file.

    Raises:
        DataError: missing file, unknown suffix, malformed content, or no rows.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    suffix = p.suffix.lower()
    readers = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
    if suffix not in readers:
        raise DataError(f"{p}: unsupported file type {suffix!r} (use one of {', '.join(_SUFFIXES)})")
    table = readers[suffix](p)
    if not table.rows and not allow_empty:
        raise DataError(f"{p}: empty dataset (no rows)")
    return table


# ----------------------------------------------------------------------------------------------
# remote sources
# ----------------------------------------------------------------------------------------------
def _load_s3(uri: str) -> Table:
    suffix = Path(uri.split("?")[0]).suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(f"{uri}: unsupported file type {suffix!r} (use one of {', '.join(_SUFFIXES)})")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / f"data{suffix}"
        try:
            import fsspec

            with fsspec.open(uri, "rb") as src, local.open("wb") as dst:
                dst.write(src.read())
        except ImportError:
            try:
                import boto3
            except ImportError:
                raise DataError(
                    f"{uri}: reading s3:// needs fsspec+s3fs or boto3 (pip install s3fs), "
                    "or download the file and pass a local path"
                ) from None
            bucket, _, key = uri[len("s3://") :].partition("/")
            boto3.client("s3").download_file(bucket, key, str(local))
        except ValueError as exc:  # fsspec: protocol not available (s3fs missing)
            raise DataError(f"{uri}: cannot open ({exc}); install s3fs or pass a local path") from exc
        table = read_table(local)
    return Table(uri, table.rows, [loc.replace(str(local), uri) for loc in table.locations])


def _load_hub(repo: str, split: str, config: str | None) -> Table:
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        datasets = None
    if datasets is not None:
        ds = datasets.load_dataset(repo, config, split=split)
        rows = [dict(r) for r in ds]
        return Table(f"hf://{repo}", rows, [f"hf://{repo}[{split}] row {i + 1}" for i in range(len(rows))])
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError:
        raise DataError(
            f"hf://{repo}: loading from the Hugging Face hub needs `datasets` (pip install datasets) "
            "or huggingface_hub; or pass a local path / s3:// URI"
        ) from None
    try:
        files = HfApi().list_repo_files(repo, repo_type="dataset")
    except Exception as exc:  # network / auth / not found
        raise DataError(
            f"hf://{repo}: cannot list the dataset repository ({exc}); install datasets or pass a "
            "local path / s3:// URI"
        ) from exc
    wanted = [
        f
        for f in files
        if f.endswith(".parquet")
        and Path(f).name.startswith(split)
        and (config is None or f"/{config}/" in f"/{f}" or f.startswith(f"{config}/"))
    ]
    if not wanted:
        raise DataError(f"hf://{repo}: no parquet files for split {split!r} (config {config!r})")
    rows: list[dict[str, Any]] = []
    locs: list[str] = []
    for f in sorted(wanted):
        t = _read_parquet(Path(hf_hub_download(repo, f, repo_type="dataset")))
        rows.extend(t.rows)
        locs.extend(f"hf://{repo}/{f} row {i + 1}" for i in range(len(t.rows)))
    return Table(f"hf://{repo}", rows, locs)


def load_source(source: str, *, split: str, config: str | None = None) -> Table:
    """Load the rows of `split` from a local path, ``s3://`` URI or hub dataset id.

    Args:
        source: file, directory (holding ``{split}.jsonl`` etc.), ``s3://…``, ``hf://owner/name``
            or ``owner/name`` (``:config`` suffix optional).
        split: split name (used for directories and hub datasets).
        config: hub dataset config (overridden by a ``:config`` suffix).

    Raises:
        DataError: the source cannot be found or read, or holds no rows.
    """
    if not source:
        raise DataError("empty data source")
    if source.startswith("s3://"):
        table = _load_s3(source)
    else:
        p = Path(source)
        if p.is_dir():
            candidates = [p / f"{split}{s}" for s in _SUFFIXES]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise DataError(f"{p}: directory has none of {', '.join(c.name for c in candidates)}")
            table = read_table(found[0])
        elif p.exists() or p.suffix.lower() in _SUFFIXES or source.startswith((".", "/", "~")):
            table = read_table(p.expanduser())
        else:
            repo = source.removeprefix("hf://")
            if ":" in repo:
                repo, config = repo.split(":", 1)
            if repo.count("/") > 1 or not repo:
                raise DataError(f"{source}: not a file, directory, s3:// URI or hub dataset id")
            table = _load_hub(repo, split, config)
    if not table.rows:
        raise DataError(f"{source}: empty dataset (no rows)")
    return table


# ----------------------------------------------------------------------------------------------
# atomic writers
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of `path` for writing; `os.replace` it into place on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    with atomic_write(path) as f:
        f.write(text)


def atomic_write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line, atomically; returns the number of rows."""
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_rows(path: str | os.PathLike[str], rows: list[Mapping[str, Any]]) -> int:
    """Write rows as ``.jsonl`` or ``.parquet`` (by suffix), atomically; returns the row count."""
    p = Path(path)
    if p.suffix == ".jsonl":
        return atomic_write_jsonl(p, rows)
    if p.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_write(p, "wb") as f:
            pq.write_table(pa.Table.from_pylist([dict(r) for r in rows]), f)
        return len(rows)
    raise ValueError(f"{p}: output must end in .jsonl or .parquet")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(
    out_dir: str | os.PathLike[str],
    files: Mapping[str, tuple[str | os.PathLike[str], int]],
    **extra: Any,
) -> dict[str, Any]:
    """Write ``manifest.json`` in `out_dir`: schema version, file rows/bytes/sha256, `extra`.

    Args:
        out_dir: directory holding the files.
        files: split name -> (path, number of rows).
        extra: JSON-serialisable metadata (task, source, seed, ...).
    """
    out = Path(out_dir)
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created_unix": int(time.time()),
        **extra,
        "files": {
            split: {
                "path": Path(p).name,
                "rows": int(n),
                "bytes": Path(p).stat().st_size,
                "sha256": sha256_file(p),
            }
            for split, (p, n) in files.items()
        },
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
