"""Training checkpoints mirrored to S3 while a run trains, so a preempted pod's retry resumes on a fresh node.

    with CheckpointMirror(Path("/scratch/train/checkpoints"), "s3://ckpts/runs/<job>/train/checkpoints") as m:
        m.restore()          # the latest complete remote checkpoint -> local (nothing remote: a fresh run)
        train(...)           # a thread uploads each new local step-<N>/ as the trainer commits it

A local ``step-<N>/`` exists only once complete (the trainer renames it into place), and its ``meta.json`` is
uploaded last, so a remote checkpoint without ``meta.json`` is an interrupted upload and never restored.
Remote checkpoints beyond the newest ``keep`` are deleted, as the trainer prunes its local ones.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from types import TracebackType

from spg_lib.storage.s3 import S3Client, make_client, parse_s3_uri

__all__ = ["CheckpointMirror"]

_STEP = re.compile(r"^step-(\d+)$")


class CheckpointMirror:
    """Upload committed ``step-<N>/`` directories of ``local`` to the ``remote`` s3:// prefix; restore the latest."""

    def __init__(self, local: Path, remote: str, *, client: S3Client | None = None, interval_s: float = 10.0,
                 keep: int = 2) -> None:
        self.local = Path(local)
        self.bucket, prefix = parse_s3_uri(remote)
        self.prefix = prefix.strip("/")
        self.client = client or make_client()
        self.interval_s = interval_s
        self.keep = keep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded: set[int] = set()
        self.errors: list[str] = []

    def _key(self, step: int, rel: str = "") -> str:
        return f"{self.prefix}/step-{step}/{rel}".rstrip("/")

    def remote_steps(self) -> list[int]:
        """Complete remote checkpoints (their meta.json exists), oldest first."""
        steps = set()
        for obj in self.client.list_objects(self.bucket, self.prefix + "/"):
            rel = obj.key[len(self.prefix) + 1:]
            parts = rel.split("/")
            m = _STEP.match(parts[0])
            if m and len(parts) == 2 and parts[1] == "meta.json":
                steps.add(int(m.group(1)))
        return sorted(steps)

    def restore(self) -> int | None:
        """Download the latest complete remote checkpoint into ``local`` (atomic); its step, or None."""
        steps = self.remote_steps()
        if not steps:
            return None
        step = steps[-1]
        target = self.local / f"step-{step}"
        if (target / "meta.json").is_file():
            self.uploaded.add(step)
            return step
        partial = self.local / f"step-{step}.restore"
        shutil.rmtree(partial, ignore_errors=True)
        for obj in self.client.list_objects(self.bucket, self._key(step) + "/"):
            rel = obj.key[len(self._key(step)) + 1:]
            self.client.download(self.bucket, obj.key, partial / rel, expected_size=obj.size)
        partial.rename(target)
        self.uploaded.add(step)
        return step

    def local_steps(self) -> list[int]:
        if not self.local.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.local.iterdir()
                      if (m := _STEP.match(p.name)) and (p / "meta.json").is_file())

    def sync(self) -> list[int]:
        """Upload local checkpoints not yet remote (meta.json last), prune old remote ones; the steps uploaded."""
        done = []
        for step in self.local_steps():
            if step in self.uploaded:
                continue
            directory = self.local / f"step-{step}"
            try:
                files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "meta.json")
                for path in [*files, directory / "meta.json"]:
                    self.client.upload_file(path, self.bucket, self._key(step, path.relative_to(directory).as_posix()))
            except FileNotFoundError:  # pruned by the trainer while uploading: a newer one exists
                continue
            self.uploaded.add(step)
            done.append(step)
        if done:
            self._prune()
        return done

    def _prune(self) -> None:
        old = self.remote_steps()[:-self.keep] if self.keep else []
        for step in old:
            keys = [o.key for o in self.client.list_objects(self.bucket, self._key(step) + "/")]
            # meta.json first: a half-deleted checkpoint must not look complete
            for key in sorted(keys, key=lambda k: not k.endswith("/meta.json")):
                self.client.call(lambda k=key: self.client.raw.delete_object(Bucket=self.bucket, Key=k), key)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
            except Exception as exc:  # keep training; the final sync raises
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> CheckpointMirror:
        self.local.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="checkpoint-mirror", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sync()
