"""Lineage of a registered model: git commit, DVC data hashes (from dvc.lock), flattened params.yaml.

No dvc / git library imports: `git rev-parse` as a subprocess, dvc.lock and params.yaml parsed as YAML.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from spg_lib.config import flatten
from spg_lib.io import read_yaml

UNKNOWN = "unknown"


def git_commit(cwd: str | Path | None = None) -> str:
    """`git rev-parse HEAD` in `cwd` (default: the process cwd); else ``$SPG_GIT_COMMIT`` (baked into the images at
    build time, which carry no .git); else "unknown"."""
    baked = os.environ.get("SPG_GIT_COMMIT", "").strip()
    fallback = baked if re.fullmatch(r"[0-9a-f]{7,64}", baked) else UNKNOWN
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return fallback
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else fallback


def git_dirty(cwd: str | Path | None = None) -> bool | None:
    """True when tracked files differ from HEAD; None outside a repository."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def dvc_lock_hashes(path: str | Path) -> dict[str, str]:
    """``{"<stage>.<deps|outs>.<path>": md5}`` for every dependency / output recorded in a dvc.lock file.

    Understands the 2.0 schema (``stages: {name: {deps: [{path, md5|etag|checksum, ...}], outs: [...]}}``) and the
    old 1.0 layout (stages at top level). Entries without a content hash are skipped.

    Raises:
        FileNotFoundError: no such file; ValueError: not YAML / not a dvc.lock layout.
    """
    path = Path(path)
    doc = read_yaml(path, what="dvc lock file")
    stages = doc.get("stages", {k: v for k, v in doc.items() if k != "schema"})
    if not isinstance(stages, dict):
        raise ValueError(f"{path}: 'stages' is not a mapping")
    out: dict[str, str] = {}
    for stage, spec in stages.items():
        if not isinstance(spec, dict):
            continue
        for section in ("deps", "outs"):
            for entry in spec.get(section) or []:
                if not isinstance(entry, dict) or "path" not in entry:
                    continue
                digest = entry.get("md5") or entry.get("etag") or entry.get("checksum")
                if digest:
                    out[f"{stage}.{section}.{entry['path']}"] = str(digest)
    return out


def flat_params(path: str | Path) -> dict[str, str]:
    """params.yaml flattened to ``{"section.key": "value"}`` (lists / empty mappings as JSON, None as "null")."""
    doc = read_yaml(path, what="params file")
    return {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in flatten(doc).items()}


_BAD_KEY_CHARS = re.compile(r"[^\w.\-/: ]")


def safe_key(key: str, limit: int = 250) -> str:
    """An MLflow-valid tag / param key: only word characters, ``. - / : space``; no empty, ``.`` or ``..`` path
    segments (MLflow rejects keys that normalise to another path); at most `limit` characters."""
    key = _BAD_KEY_CHARS.sub("_", key)
    parts = [("__" if p == ".." else p) for p in key.split("/") if p not in ("", ".")]
    key = "/".join(parts) or "_"
    return key[:limit]
