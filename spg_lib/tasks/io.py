"""Task data through Hugging Face `datasets`, with the location of every row for errors, and the manifest.

Sources accepted by `load_source`:
  * a local ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet`` file, or a directory holding ``{split}.<suffix>``;
  * ``s3://bucket/key.<suffix>``, read through fsspec / s3fs with the endpoint, region, retries and credentials of
    `spg_lib.storage.s3` (the AWS_* environment);
  * ``hf://owner/name[@revision]`` or ``owner/name`` (``:config`` suffix optional), from the Hugging Face hub.

`datasets` parses and caches the files (under ``HF_DATASETS_CACHE``); what it does not do stays here: the location
of every row (``file:line`` for JSON Lines and CSV, ``file: item i`` / ``row i`` otherwise) so that later
validation errors name it, one-line `DataError` messages for unreadable files (a malformed JSON line is named by
its line), CSV cells kept as strings (Sudoku puzzles keep their leading zeros), the official ``{"generations":
[...]}`` JSON layout, atomic writes, and the manifest. Keys whose value is null are dropped from rows (`datasets`
gives every row every column of the file, null where a row lacks it), so "missing" and "null" read the same.

A split's content hash is its `datasets` fingerprint (`Table.fingerprint`): a hash of the loaded rows, the same
whatever the file's path, time stamps or byte layout.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from spg_lib.io import (
    InputError,
    URIError,
    atomic_write,
    atomic_write_json,
    atomic_write_jsonl,
    is_hub_id,
    parse_uri,
    read_json,
    read_jsonl,
)

__all__ = [
    "SCHEMA_VERSION",
    "DataError",
    "Table",
    "fingerprint",
    "load_source",
    "read_table",
    "write_manifest",
    "write_rows",
]

# Version of the prepared-data layout (fields of the train/test rows + manifest.json).
SCHEMA_VERSION = 2
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(InputError):
    """Malformed or missing task data; the message names the file (and line when known)."""


def fingerprint(rows: list[Mapping[str, Any]]) -> str:
    """The `datasets` fingerprint of `rows` as an in-memory dataset (a content hash of the rows)."""
    import datasets
    from datasets.fingerprint import generate_fingerprint

    return str(generate_fingerprint(datasets.Dataset.from_list([dict(r) for r in rows])))


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

    @functools.cached_property
    def fingerprint(self) -> str:
        """`fingerprint(self.rows)`."""
        return fingerprint(self.rows)


# ----------------------------------------------------------------------------------------------
# reading through datasets
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """No progress bars while `datasets` converts a file (instant for task data); restored afterwards."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _open(url: str, options: Mapping[str, Any]) -> Any:
    import fsspec

    return fsspec.open(url, "rt", encoding="utf-8", newline="", **options)


def _line_numbers(url: str, suffix: str, options: Mapping[str, Any]) -> list[int]:
    """The line on which each row of a JSON Lines or CSV file starts (blank lines and the CSV header skipped)."""
    with _open(url, options) as f:
        if suffix == ".jsonl":
            return [n for n, line in enumerate(f, start=1) if line.strip()]
        reader = csv.reader(f)
        next(reader, None)
        lines, start = [], reader.line_num + 1
        for row in reader:
            if row:
                lines.append(start)
            start = reader.line_num + 1
        return lines


def _diagnose(path: Path, suffix: str) -> None:
    """Raise a `DataError` naming the bad line (JSON Lines) or layout (JSON) of a file `datasets` could not read."""
    try:
        if suffix == ".jsonl":
            read_jsonl(path)
        elif suffix == ".json":
            value = read_json(path, expect=None)
            if isinstance(value, dict) and isinstance(value.get("generations"), list):
                value = value["generations"]
            if not isinstance(value, list):
                raise DataError(f"{path}: expected a JSON list of objects (or {{'generations': [...]}})")
            for i, row in enumerate(value):
                if not isinstance(row, dict):
                    raise DataError(f"{path}: item {i}: expected a JSON object, got {type(row).__name__}")
    except InputError as exc:
        raise DataError(str(exc)) from None


def _load_file(url: str, label: str, options: Mapping[str, Any], *, allow_empty: bool) -> Table:
    """Rows of one local or s3:// data file (`label` is how messages name it)."""
    import datasets

    suffix = Path(url.split("?")[0]).suffix.lower()
    if suffix not in _BUILDERS:
        raise DataError(f"{label}: unsupported file type {suffix!r} (use one of {', '.join(_BUILDERS)})")
    kwargs: dict[str, Any] = {"storage_options": dict(options)} if options else {}
    if suffix in (".jsonl", ".json", ".csv"):
        try:
            with _open(url, options) as f:
                head = f.read(1 << 16)
        except FileNotFoundError:
            raise DataError(f"data file {label} does not exist") from None
        except OSError as exc:  # s3: credentials rejected, endpoint unreachable, ...
            raise DataError(f"{label}: cannot open ({type(exc).__name__}: {_cause(exc)})") from None
        if not head.strip():
            if allow_empty:
                return Table(label, [], [])
            raise DataError(f"{label}: empty dataset (no rows)")
        if suffix == ".csv":  # every cell a string, empty cells "" (not NaN)
            header = next(csv.reader(head.splitlines()), [])
            kwargs.update(features=datasets.Features({name: datasets.Value("string") for name in header}),
                          keep_default_na=False)
        if suffix == ".json" and head.lstrip().startswith("{"):
            kwargs["field"] = "generations"  # the official evaluation output layout
    try:
        with _quiet_progress():
            rows = datasets.load_dataset(_BUILDERS[suffix], data_files=url, split="train", **kwargs).to_list()
    except Exception as exc:
        if not options:  # a local file: name the line, or what is wrong with the layout
            _diagnose(Path(url), suffix)
        raise DataError(f"{label}: cannot read {suffix} data ({_cause(exc)})") from None
    rows = [{k: v for k, v in row.items() if v is not None} for row in rows]
    if suffix in (".jsonl", ".csv"):
        lines = _line_numbers(url, suffix, options)
        locations = ([f"{label}:{n}" for n in lines] if len(lines) == len(rows)
                     else [f"{label}: row {i + 1}" for i in range(len(rows))])
    elif suffix == ".json":
        locations = [f"{label}: item {i}" for i in range(len(rows))]
    else:
        locations = [f"{label}: row {i + 1}" for i in range(len(rows))]
    if not rows and not allow_empty:
        raise DataError(f"{label}: empty dataset (no rows)")
    return Table(label, rows, locations)


def read_table(path: str | os.PathLike[str], *, allow_empty: bool = False) -> Table:
    """Read a local ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet`` file.

    Raises:
        DataError: missing file, unknown suffix, malformed content, or no rows.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {p} {'is not a file' if p.exists() else 'does not exist'}")
    return _load_file(str(p), str(p), {}, allow_empty=allow_empty)


def _load_hub(repo: str, revision: str | None, split: str, config: str | None) -> Table:
    import datasets

    label = f"hf://{repo}" + (f"@{revision}" if revision else "")
    try:
        ds = datasets.load_dataset(repo, config, split=split, revision=revision)
    except Exception as exc:  # network, authentication, unknown repo / config / split
        raise DataError(f"{label}: cannot load split {split!r} from the Hugging Face hub ({_cause(exc)}); "
                        "pass a local path or an s3:// URI instead") from None
    rows = [{k: v for k, v in row.items() if v is not None} for row in ds.to_list()]
    return Table(label, rows, [f"{label}[{split}] row {i + 1}" for i in range(len(rows))])


def load_source(source: str, *, split: str, config: str | None = None) -> Table:
    """Load the rows of `split` from a local path, ``s3://`` URI or hub dataset id.

    Args:
        source: file, directory (holding ``{split}.jsonl`` etc.), ``s3://…``, ``hf://owner/name[@revision]``
            or ``owner/name`` (``:config`` suffix optional).
        split: split name (used for directories and hub datasets).
        config: hub dataset config (overridden by a ``:config`` suffix).

    Raises:
        DataError: the source cannot be found or read, or holds no rows.
    """
    if not source:
        raise DataError("empty data source")
    head, sep, named = source.rpartition(":")
    if sep and head and named and "/" not in named and not source.startswith(("s3:", "file:")) \
            and not Path(source).exists():
        source, config = head, named  # "owner/name:config"
    try:
        uri = parse_uri(source)
    except URIError as exc:
        raise DataError(str(exc)) from None
    if uri.scheme == "s3":
        from spg_lib.storage.s3 import fsspec_options

        table = _load_file(uri.canonical, uri.canonical, fsspec_options(), allow_empty=False)
    elif uri.scheme == "hf":
        table = _load_hub(uri.repo_id, uri.revision, split, config)
    elif uri.scheme == "file" and uri.path is not None:
        path = Path(source).expanduser() if uri.is_plain_path else uri.path  # messages name the path as given
        if path.is_dir():
            candidates = [path / f"{split}{s}" for s in _BUILDERS]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise DataError(f"{path}: directory has none of {', '.join(c.name for c in candidates)}")
            table = read_table(found[0])
        elif (uri.is_plain_path and not path.exists() and source.count("/") == 1 and is_hub_id(source)
              and path.suffix.lower() not in _BUILDERS):
            table = _load_hub(source, None, split, config)  # "owner/name"
        else:
            table = read_table(path)
    else:
        raise DataError(f"{source}: not a data source (a file, directory, s3:// URI or hub dataset id)")
    if not table.rows:
        raise DataError(f"{source}: empty dataset (no rows)")
    return table


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
def write_rows(path: str | os.PathLike[str], rows: list[Mapping[str, Any]]) -> int:
    """Write rows as ``.jsonl`` or ``.parquet`` (by suffix), atomically; returns the row count."""
    p = Path(path)
    if p.suffix == ".jsonl":
        return atomic_write_jsonl(p, rows)
    if p.suffix == ".parquet":
        import datasets

        with atomic_write(p, "wb") as f:
            datasets.Dataset.from_list([dict(r) for r in rows]).to_parquet(f)
        return len(rows)
    raise ValueError(f"{p}: output must end in .jsonl or .parquet")


def write_manifest(
    out_dir: str | os.PathLike[str],
    files: Mapping[str, tuple[str | os.PathLike[str], int]],
    **extra: Any,
) -> dict[str, Any]:
    """Write ``manifest.json`` in `out_dir`: schema version, each file's rows, bytes and `datasets` fingerprint
    (of its rows as read back), and `extra`.

    Args:
        out_dir: directory holding the files.
        files: split name -> (path, number of rows).
        extra: JSON-serialisable metadata (task, source, seed, ...).
    Raises:
        DataError: a file does not hold the number of rows it was written with.
    """
    entries = {}
    for split, (path, n) in files.items():
        table = read_table(path, allow_empty=True)
        if len(table) != n:
            raise DataError(f"{path}: holds {len(table)} rows, {n} were written")
        entries[split] = {"path": Path(path).name, "rows": int(n), "bytes": Path(path).stat().st_size,
                          "fingerprint": table.fingerprint}
    manifest: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "created_unix": int(time.time()), **extra,
                                "files": entries}
    atomic_write_json(Path(out_dir) / "manifest.json", manifest)
    return manifest

