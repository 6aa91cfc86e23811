"""One home for file I/O: reading JSON / YAML / JSONL with one error type, atomic writes, and URI parsing.

Reading
  `read_json`, `read_yaml` (a mapping), `read_jsonl` (rows with their line numbers). Every failure raises
  `InputError` (a ValueError) whose one-line message names the file and, for JSON Lines, the line; a missing file
  raises `MissingInputError` (an `InputError` that is also a FileNotFoundError).
Writing
  `atomic_write` (a file object), `atomic_write_text` / `_bytes` / `_json` / `_jsonl`, `atomic_dir` (fill a
  directory) and `replace_dir`: the content goes into a temporary sibling of the target, which is then renamed over
  it, so a reader sees the old target or the complete new one and a failure leaves no temporary behind.
URIs
  `parse_uri`: ``builtin:tiny``, ``file:`` URIs with RFC 8089 semantics (``file:///abs``, ``file://localhost/abs``,
  ``file:/abs``; any other host is refused), plain local paths, ``s3://bucket/key`` and ``hf://org/name[@rev]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import unquote, urlparse

import yaml

__all__ = [
    "BUILTIN_TINY",
    "URI",
    "InputError",
    "MissingInputError",
    "URIError",
    "atomic_dir",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_jsonl",
    "atomic_write_text",
    "is_hub_id",
    "parse_uri",
    "read_json",
    "read_jsonl",
    "read_yaml",
    "remove_path",
    "replace_dir",
    "sha256_file",
]

#: The tiny LLaDA built in memory (seed 0) with its character tokenizer: tests and CPU demonstrations.
BUILTIN_TINY = "builtin:tiny"

PathLike = str | os.PathLike[str]


class InputError(ValueError):
    """A missing or malformed input; the message names the file (and line or field when known)."""


class MissingInputError(InputError, FileNotFoundError):
    """The input file or directory does not exist."""


class URIError(InputError):
    """A URI is malformed or uses an unsupported scheme."""


# ------------------------------------------------------------------------------------------------ reading


def _existing_file(path: PathLike, what: str, hint: str) -> Path:
    p = Path(path)
    suffix = f" ({hint})" if hint else ""
    if not p.exists():
        raise MissingInputError(f"{what} {p} does not exist{suffix}")
    if not p.is_file():
        raise InputError(f"{what} {p} is not a file{suffix}")
    return p


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (byte {exc.start})") from None


def read_json(path: PathLike, *, what: str = "file", hint: str = "", expect: type | None = dict) -> Any:
    """The JSON value in `path`, checked to be an instance of `expect` (None: any value).

    Args:
        what: what the file is, for messages ("metrics file"); hint: appended when the file is missing.
    Raises:
        MissingInputError, InputError: "<path>: not valid JSON at line L column C (...)" and the like.
    """
    p = _existing_file(path, what, hint)
    try:
        value = json.loads(_read_text(p))
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    if expect is not None and not isinstance(value, expect):
        kind = {dict: "a JSON object", list: "a JSON list"}.get(expect, expect.__name__)
        raise InputError(f"{p}: expected {kind}, got {type(value).__name__}")
    return value


def read_yaml(path: PathLike, *, what: str = "file", hint: str = "") -> dict[str, Any]:
    """The top-level mapping of YAML file `path` ({} for an empty file).

    Raises:
        MissingInputError, InputError: "<path>:L: not valid YAML (...)", or a top level that is not a mapping.
    """
    p = _existing_file(path, what, hint)
    try:
        doc = yaml.safe_load(_read_text(p))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise InputError(f"{where}: not valid YAML ({problem})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError(f"{p}: expected a mapping at the top level, got {type(doc).__name__}")
    return doc


def read_jsonl(path: PathLike, *, what: str = "file", hint: str = "") -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of JSON Lines file `path`.

    Raises:
        MissingInputError, InputError: "<path>:<line>: malformed JSON (...)" or a line that is not an object.
    """
    p = _existing_file(path, what, hint)
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(_read_text(p).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}:{lineno}: malformed JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{p}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        rows.append((lineno, obj))
    return rows


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ writing


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: Literal["w", "wb"] = "w") -> Iterator[IO[Any]]:
    """A file object on a temporary sibling of `path`, fsynced and renamed over `path` when the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for a plain open()
    try:
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _sibling(target: Path, tag: str = "tmp") -> Path:
    """A fresh hidden name next to `target` (same directory, so a rename is atomic)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.{tag}")


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_write(path) as f:
        f.write(text)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_json(path: PathLike, obj: Any, *, sort_keys: bool = False, default: Any = None) -> None:
    """Write `obj` as indented UTF-8 JSON with a final newline, atomically (`default` as in `json.dumps`)."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=default)
                      + "\n")


def atomic_write_jsonl(path: PathLike, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line, atomically; returns the number of rows."""
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def remove_path(path: PathLike) -> None:
    """Remove a file, symlink or directory tree (nothing when absent)."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def replace_dir(src: PathLike, dst: PathLike) -> Path:
    """Rename directory `src` to `dst`; an existing `dst` is first renamed aside, then removed.

    Both must be on one filesystem (siblings are). A reader of `dst` sees the old or the new directory, except in
    the instant between the two renames when an old `dst` existed.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() or dst.is_symlink():
        old = _sibling(dst, "old")
        os.replace(dst, old)
        os.replace(src, dst)
        remove_path(old)
    else:
        os.replace(src, dst)
    return dst


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """An empty temporary sibling directory of `path`, renamed over `path` when the block succeeds (removed else)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target)
    tmp.mkdir()  # (the umask applies, as for a plain mkdir)
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        remove_path(tmp)
        raise


# ------------------------------------------------------------------------------------------------ URIs

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_hub_id(text: str) -> bool:
    """Whether `text` has the form of a Hugging Face repository id ("org/name" or "name")."""
    return bool(_HUB_ID.match(text)) and ".." not in text


@dataclasses.dataclass(frozen=True)
class URI:
    """A parsed URI. `canonical` is the spelling manifests record and compare; `raw` is the text as given."""

    scheme: Literal["builtin", "file", "s3", "hf"]
    canonical: str
    raw: str
    path: Path | None = None  # file: the absolute local path
    bucket: str = ""  # s3
    key: str = ""  # s3: the key or prefix, without leading / trailing slashes
    repo_id: str = ""  # hf
    revision: str | None = None  # hf: branch, tag or commit

    @property
    def is_plain_path(self) -> bool:
        """A local path given without the ``file:`` scheme (it may also be read as a hub id)."""
        return self.scheme == "file" and not self.raw.lower().startswith("file:")


def _file_uri(uri: str) -> Path:
    """The local path of a ``file:`` URI (RFC 8089: empty host or "localhost"; percent-decoded)."""
    parsed = urlparse(uri)
    if parsed.netloc.lower() not in ("", "localhost"):
        raise URIError(f"{uri!r}: file URIs name a local path (file:///absolute/path or "
                       f"file://localhost/absolute/path), not host {parsed.netloc!r}")
    if parsed.query or parsed.fragment:
        raise URIError(f"{uri!r}: file URIs take no query or fragment")
    path = unquote(parsed.path)
    if not path.startswith("/"):
        raise URIError(f"{uri!r}: a file URI holds an absolute path (file:///absolute/path)")
    return Path(path)


def parse_uri(uri: str | os.PathLike[str]) -> URI:
    """Parse `builtin:tiny`, ``file:`` URIs, plain paths, `s3://bucket/key` or `hf://org/name[@revision]`.

    Local paths are expanded (``~``) and resolved to absolute ones; they need not exist.
    Raises:
        URIError: empty text, an unknown builtin, a malformed URI or an unsupported scheme.
    """
    raw = os.fspath(uri).strip()
    if not raw:
        raise URIError("empty URI")
    if raw == BUILTIN_TINY:
        return URI("builtin", BUILTIN_TINY, raw)
    if raw.startswith("builtin:"):
        raise URIError(f"{raw!r}: unknown builtin model (only {BUILTIN_TINY!r})")
    scheme = urlparse(raw).scheme.lower()
    if scheme == "file":
        path = _file_uri(raw).resolve()
        return URI("file", path.as_uri(), raw, path=path)
    if scheme == "s3":
        parsed = urlparse(raw)
        if not parsed.netloc or not raw.lower().startswith("s3://"):
            raise URIError(f"{raw!r} is not an s3://bucket/key URI")
        if parsed.query or parsed.fragment:
            raise URIError(f"{raw!r}: s3 URIs take no query or fragment")
        key = parsed.path.strip("/")
        return URI("s3", f"s3://{parsed.netloc}/{key}" if key else f"s3://{parsed.netloc}", raw,
                   bucket=parsed.netloc, key=key)
    if scheme == "hf":
        rest = raw[len("hf://"):] if raw.lower().startswith("hf://") else ""
        repo_id, at, revision = rest.strip("/").partition("@")
        if not is_hub_id(repo_id) or (at and not revision):
            raise URIError(f"{raw!r}: expected hf://org/name or hf://org/name@revision")
        return URI("hf", f"hf://{repo_id}" + (f"@{revision}" if revision else ""), raw, repo_id=repo_id,
                   revision=revision or None)
    if scheme and (len(scheme) > 1 or "://" in raw):  # a one-letter "scheme" is a Windows drive
        raise URIError(f"{raw!r}: unsupported scheme {scheme!r} (use s3://, hf://, file://, {BUILTIN_TINY} or a "
                       "local path)")
    path = Path(raw).expanduser().resolve()
    return URI("file", path.as_uri(), raw, path=path)
