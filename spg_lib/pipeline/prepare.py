"""Stage ``prepare_data``: `prepare_stage(cfg.data)` is what `spg prepare-data`, the DVC stage and the Kubeflow
prepare component all call.

It runs `spg_lib.tasks.prepare.prepare_data` (the splits, and a manifest with each split's rows, bytes and
`datasets` fingerprint), fetching the sources from a DVC repository first when ``data.dvc_repo`` is set, and
completes ``manifest.json`` with

* ``files.<split>.sha256``: sha256 of the written split file (its exact bytes, what a Dataset artifact's
  consumer receives), next to the row count already there;
* ``dvc.<split>``: ``{repo, rev, commit, path, md5}`` for each split read from the DVC repository, and
  ``sources.<split>`` naming it as ``<repo>@<commit>:<path>`` (not the temporary copy it was read from).

DVC sources are copied into a temporary sibling of the output directory (same filesystem, removed afterwards),
so the output holds only the splits and the manifest.
"""

from __future__ import annotations

import dataclasses
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from spg_lib.io import atomic_write_json, sha256_file
from spg_lib.pipeline.config import DataConfig

__all__ = ["prepare_stage"]


def _fetch_sources(cfg: DataConfig, tmp: Path) -> dict[str, Any]:
    """{"train"/"test": DvcSource} for the configured DVC paths, both at one commit (a moving branch cannot
    split them); a path named by both is fetched once."""
    from spg_lib.storage.dvc_dataset import fetch_dvc_dataset

    assert cfg.dvc_repo is not None
    fetched: dict[str, Any] = {}
    commit: str | None = None
    for split, path in (("train", cfg.source), ("test", cfg.test_source)):
        if path is None:
            continue
        same = next((s for s in fetched.values() if s.path == posixpath.normpath(path.strip())), None)
        if same is not None:
            fetched[split] = same
            continue
        src = fetch_dvc_dataset(cfg.dvc_repo, path, tmp / split, rev=commit or cfg.dvc_rev, remote=cfg.dvc_remote)
        commit = src.commit
        fetched[split] = dataclasses.replace(src, rev=cfg.dvc_rev)  # record the revision as requested
    return fetched


def _complete_manifest(out: Path, manifest: dict[str, Any], fetched: dict[str, Any]) -> dict[str, Any]:
    """Add each split file's sha256 and the DVC origin of the splits read from a DVC repository; rewrite it."""
    for entry in manifest["files"].values():
        entry["sha256"] = sha256_file(out / entry["path"])
    by_local = {str(src.local): src for src in fetched.values()}
    dvc: dict[str, Any] = {}
    sources = dict(manifest.get("sources", {}))
    for split, value in sources.items():
        src = by_local.get(str(value))  # also a test split derived from the training directory
        if src is not None:
            sources[split] = src.label
            dvc[split] = src.record()
    manifest["sources"] = sources
    if dvc:
        manifest["dvc"] = dvc
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def prepare_stage(cfg: DataConfig, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the splits of ``cfg`` and ``manifest.json`` into ``out_dir`` (None: ``cfg.out_dir``; a Kubeflow
    component passes its Dataset artifact's path); returns the manifest.

    Raises:
        InputError: a source cannot be read (`DataError`) or fetched from DVC (`DvcDatasetError`): one line.
    """
    from spg_lib.tasks import get_task
    from spg_lib.tasks.prepare import prepare_data

    out = Path(cfg.out_dir if out_dir is None else out_dir)
    task = get_task(cfg.task)
    kwargs = {"n_train": cfg.n_train, "seed": cfg.seed, "fmt": cfg.format}
    if cfg.dvc_repo is None:
        manifest = prepare_data(task, str(out), source=cfg.source, test_source=cfg.test_source, **kwargs)
        return _complete_manifest(out, manifest, {})
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.dvc-", dir=out.parent) as tmp:
        fetched = _fetch_sources(cfg, Path(tmp))
        local = {split: str(src.local) for split, src in fetched.items()}
        manifest = prepare_data(task, str(out), source=local.get("train"), test_source=local.get("test"), **kwargs)
        return _complete_manifest(out, manifest, fetched)
