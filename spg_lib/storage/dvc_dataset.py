"""`fetch_dvc_dataset`: copy a file or directory of a DVC-tracked repository at one revision, read from its DVC
remote through `dvc.api.DVCFileSystem`, atomically, with the revision and content hash that identify it.

    src = fetch_dvc_dataset("https://github.com/org/data.git", "sudoku/test.csv", Path("inputs/test"), rev="v2")
    src.commit, src.md5, src.local       # resolved git commit, md5 of the content, inputs/test/test.csv

Repository: a git URL (anything with ``://``, or ``user@host:path``; cloned by dvc into a temporary directory)
or a local git repository. ``rev`` is a branch, tag or commit; None reads ``HEAD`` (the committed state, never
uncommitted workspace changes, so the recorded commit names exactly what was read).

Remote: the repository's default remote, or ``remote``. For an ``s3://`` remote the endpoint of the environment
(`spg_lib.storage.s3.resolve_endpoint`: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL) replaces a committed
``endpointurl`` (the environment says where the store is reachable from here, e.g. a pod's Secret); the region
(AWS_DEFAULT_REGION / AWS_REGION) fills in a missing one and the socket timeouts come from `S3Settings`.
Credentials stay with boto's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ...), never in a config dict.

Content hash (``md5``): the md5 DVC recorded for the path (the ``.dvc`` / ``dvc.lock`` entry: the file's md5, or
``<md5>.dir`` for a tracked directory); for a git-tracked path, or a directory that merely holds tracked files,
it is computed: a file's md5, or the md5 of the sorted ``<relative path>  <file md5>`` lines of a directory.
Every copied file whose md5 DVC recorded is checked against the bytes written.

Errors (`DvcDatasetError`, an `InputError`: one line naming the repository, revision and path): repository not
found, unknown revision, path not in the repository at that revision, remote unknown / unreachable / rejecting
the credentials / missing the data (not pushed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spg_lib.io import InputError, atomic_dir
from spg_lib.storage.s3 import S3Settings, resolve_endpoint, resolve_region

__all__ = ["DvcDatasetError", "DvcSource", "fetch_dvc_dataset", "is_git_url"]

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_DENIED = re.compile(r"\b(403|Forbidden|AccessDenied|SignatureDoesNotMatch|InvalidAccessKeyId)\b")


class DvcDatasetError(InputError):
    """A DVC-tracked dataset cannot be read; the message names the repository, revision and path."""


@dataclasses.dataclass(frozen=True)
class DvcSource:
    """What `fetch_dvc_dataset` read: where from (repo, rev as requested, commit resolved, path), its content hash
    (``md5``; ``dvc_tracked``: recorded by DVC rather than computed), where it landed (``local``) and the files
    copied (paths relative to ``local``'s parent, posix)."""

    repo: str
    rev: str | None
    commit: str
    path: str
    md5: str
    dvc_tracked: bool
    local: Path
    files: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        """The lineage record of a manifest: {repo, rev, commit, path, md5}."""
        return {"repo": self.repo, "rev": self.rev, "commit": self.commit, "path": self.path, "md5": self.md5}

    @property
    def label(self) -> str:
        """``<repo>@<commit>:<path>``: how a manifest names this source."""
        return f"{self.repo}@{self.commit}:{self.path}"


def is_git_url(repo: str) -> bool:
    """True for a URL dvc clones (``scheme://...`` or scp-like ``user@host:path``), False for a local path."""
    return "://" in repo or bool(_SCP_LIKE.match(repo))


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes / contexts, outermost first (each once)."""
    out: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and all(node is not seen for seen in out):
        out.append(node)
        node = node.__cause__ or node.__context__
    return out


def _cause(exc: BaseException) -> str:
    """The innermost non-empty message along the ``raise ... from`` chain, on one line."""
    messages = []
    node: BaseException | None = exc
    while node is not None and len(messages) < 20:
        messages.append(" ".join(str(node).split()))
        node = node.__cause__
    text = next((m for m in reversed(messages) if m), "") or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _norm_path(path: str, where: str) -> str:
    p = posixpath.normpath(path.replace("\\", "/").strip())
    if not path.strip() or p in (".", "/"):
        raise DvcDatasetError(f"{where}: empty path (name a file or directory inside the repository)")
    if p.startswith("/") or p == ".." or p.startswith("../"):
        raise DvcDatasetError(f"{where}: the path must be relative to the repository root and stay inside it")
    return p


def _remote_overrides(remote_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Config of an s3:// remote from the environment: endpoint (replaces a committed one), region (fills in),
    socket timeouts. Empty for other remote types."""
    if not str(remote_cfg.get("url", "")).startswith("s3://"):
        return {}
    settings = S3Settings.from_env()
    out: dict[str, Any] = {"connect_timeout": settings.connect_timeout, "read_timeout": settings.read_timeout}
    endpoint = resolve_endpoint()
    if endpoint:
        out["endpointurl"] = endpoint
    if not remote_cfg.get("region"):
        out["region"] = resolve_region()
    return out


def _open(repo: str, rev: str, remote: str | None, remote_config: dict[str, Any] | None, where: str) -> Any:
    """A `DVCFileSystem` on ``repo`` at ``rev`` whose repository has been opened (so git errors surface here)."""
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.scm import CloneError, RevError, SCMError

    fs = DVCFileSystem(repo, rev=rev, remote=remote, remote_config=remote_config or None)
    try:
        fs.repo  # noqa: B018 - opens (clones) the repository
    except RevError:
        raise DvcDatasetError(f"{where}: unknown revision {rev!r} (not a branch, tag or commit of {repo})") from None
    except CloneError as exc:
        raise DvcDatasetError(f"{where}: cannot clone git repository {repo} ({_cause(exc)})") from None
    except NotDvcRepoError:
        raise DvcDatasetError(f"{where}: {repo} is not a DVC repository at {rev} (no .dvc/ directory)") from None
    except SCMError as exc:
        raise DvcDatasetError(f"{where}: {repo} is not a readable git repository ({_cause(exc)})") from None
    except DvcException as exc:
        raise DvcDatasetError(f"{where}: cannot open the DVC repository ({_cause(exc)})") from None
    return fs


def _remote_error(exc: BaseException, where: str, remote_name: str | None, remote_cfg: Mapping[str, Any],
                  overrides: Mapping[str, Any]) -> DvcDatasetError:
    """A one-line error for a failed download, by kind (credentials, unreachable, missing data, other)."""
    if not remote_name:
        return DvcDatasetError(f"{where}: the data is not in the repository's cache and the repository has no "
                               f"default DVC remote ({_cause(exc)}); set data.dvc_remote")
    url = remote_cfg.get("url", "?")
    endpoint = overrides.get("endpointurl") or remote_cfg.get("endpointurl")
    at = f"DVC remote {remote_name!r} ({url}" + (f", endpoint {endpoint})" if endpoint else ")")
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    text = _cause(exc)
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return DvcDatasetError(f"{where}: no credentials for {at} ({text}); set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY")
    if any(isinstance(e, PermissionError) for e in chain) or _DENIED.search(text):
        return DvcDatasetError(f"{where}: {at} rejected the credentials ({text}); check AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY")
    if any(isinstance(e, ConnectionError | TimeoutError) for e in chain) or names & {
            "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError"}:
        return DvcDatasetError(f"{where}: {at} is unreachable ({text}); check AWS_ENDPOINT_URL or the remote's "
                               "endpointurl")
    if any(isinstance(e, FileNotFoundError) for e in chain):
        return DvcDatasetError(f"{where}: {at} does not hold the data ({text}); was it `dvc push`ed?")
    return DvcDatasetError(f"{where}: download from {at} failed ({type(exc).__name__}: {text})")


def fetch_dvc_dataset(repo: str, path: str, out: Path, rev: str | None = None,
                      remote: str | None = None) -> DvcSource:
    """Copy ``path`` of DVC repository ``repo`` at ``rev`` (None: HEAD) into directory ``out``, atomically.

    ``out`` is replaced as a whole (written as a temporary sibling, then renamed): a file lands at
    ``out/<name>``, a directory's files under ``out/<name>/``; `DvcSource.local` is that path.

    Raises:
        DvcDatasetError: one line naming ``repo``, ``rev`` and ``path`` (see the module docstring).
    """
    from dvc.exceptions import DvcException

    asked = rev
    rev = rev or "HEAD"
    where = f"DVC dataset {repo}@{rev}:{path}"
    if not str(repo).strip():
        raise DvcDatasetError(f"{where}: empty repository (a git URL or a local path)")
    norm = _norm_path(path, where)
    if not is_git_url(repo) and not Path(repo).expanduser().is_dir():
        raise DvcDatasetError(f"{where}: repository {repo} does not exist (a git URL or a local git repository)")
    repo_arg = repo if is_git_url(repo) else str(Path(repo).expanduser().resolve())

    probe = _open(repo_arg, rev, None, None, where)  # to read the remote's configuration and resolve rev
    try:
        commit = probe.repo.get_rev()
        try:
            config = probe.repo.config
        except DvcException as exc:
            raise DvcDatasetError(f"{where}: bad DVC configuration ({_cause(exc)})") from None
        remote_name = remote or config["core"].get("remote")
        remotes = config.get("remote", {})
        if remote is not None and remote not in remotes:
            raise DvcDatasetError(f"{where}: no DVC remote {remote!r} in the repository "
                                  f"(remotes: {', '.join(sorted(remotes)) or 'none'})")
        remote_cfg = dict(remotes.get(remote_name, {})) if remote_name else {}
    finally:
        probe.close()
    where = f"DVC dataset {repo}@{rev}:{norm}"
    overrides = _remote_overrides(remote_cfg)
    fs = _open(repo_arg, commit, remote_name, overrides, where)  # the same commit, whatever `rev` moves to
    try:
        try:
            info = fs.info(norm)
        except FileNotFoundError:
            raise DvcDatasetError(f"{where}: no such file or directory in the repository at commit "
                                  f"{commit[:12]} (neither DVC- nor git-tracked)") from None
        tracked_md5 = info.get("md5")
        if info["type"] == "directory":
            entries = fs.find(norm, detail=True)
            if not entries:
                raise DvcDatasetError(f"{where}: directory holds no files at commit {commit[:12]}")
        else:
            entries = {norm: info}
        parent = posixpath.dirname(norm)
        rel = {src: posixpath.relpath(src, parent) if parent else src for src in sorted(entries)}
        out = Path(out)
        with atomic_dir(out) as tmp:
            dests = [str(tmp / r) for r in rel.values()]
            for d in dests:
                Path(d).parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get(list(rel), dests)
            except Exception as exc:  # every failure of the download becomes one line, by kind
                raise _remote_error(exc, where, remote_name, remote_cfg, overrides) from None
            digests = {}
            for src, r in rel.items():
                local = tmp / r
                if not local.is_file():
                    raise DvcDatasetError(f"{where}: {src} was not downloaded (is the remote complete?)")
                digests[r] = _md5_file(local)
                expected = entries[src].get("md5")
                if expected and digests[r] != expected:
                    raise DvcDatasetError(f"{where}: {src} has md5 {digests[r]} after download, DVC recorded "
                                          f"{expected} (corrupted remote or cache)")
        name = posixpath.basename(norm)
        if tracked_md5:
            md5 = str(tracked_md5)
        elif info["type"] == "directory":
            prefix = name + "/"
            lines = "".join(f"{r[len(prefix):]}  {d}\n" for r, d in sorted(digests.items()))
            md5 = hashlib.md5(lines.encode(), usedforsecurity=False).hexdigest()
        else:
            md5 = next(iter(digests.values()))
        return DvcSource(repo=repo, rev=asked, commit=commit, path=norm, md5=md5, dvc_tracked=bool(tracked_md5),
                         local=out / name, files=tuple(sorted(rel.values())))
    finally:
        fs.close()
