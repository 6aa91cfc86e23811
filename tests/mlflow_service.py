"""A real MLflow tracking server on loopback for tests (`mlflow server`, SQLite backend, proxied artifacts).

Fixtures (registered in tests/conftest.py):

  mlflow_server          session-scoped `MLflowServer`: backend sqlite:///<tmp>/mlflow.db, artifacts served by the
                         server (--serve-artifacts) from s3://<bucket>/mlartifacts on the session `seaweedfs`
  mlflow_server_private  function-scoped `MLflowServer` with a local artifact directory, free to be `stop()`-ped
                         (outage tests); costs one more server start

`MLflowServer` attributes: uri ("http://127.0.0.1:PORT"), port, root (its working directory), backend_uri,
artifacts_destination, proc, log_path; methods stop(), running(), log_tail(n). `start_mlflow_server(root, ...)`
starts one directly (raises with the server log on failure).

CPU thrift (2-core CI boxes): one uvicorn worker, the server's job runner (huey consumers for GenAI jobs) disabled
with MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false, telemetry off. Startup is dominated by importing mlflow (twice: the
CLI, then the uvicorn worker): ~10 s on an idle machine, much more on a loaded one, hence the generous timeout.
The server is started in its own process group and that group is terminated (then killed) at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import LOOPBACK, free_port

MLFLOW_BIN = Path(sys.executable).parent / "mlflow"

# No phoning home from test processes either (the client sends usage telemetry unless told not to).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

_CLIENT_ENV_TO_DROP = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID")


class MLflowServer:
    def __init__(self, root: Path, port: int, backend_uri: str, artifacts_destination: str,
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.port = port
        self.backend_uri = backend_uri
        self.artifacts_destination = artifacts_destination
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.bucket: str | None = None  # the S3 bucket behind artifacts_destination, when there is one
        self.log_path = root / "mlflow-server.log"

    @property
    def uri(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(MLFLOW_BIN), "server",
            "--host", LOOPBACK, "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", self.backend_uri,
            "--serve-artifacts", "--artifacts-destination", self.artifacts_destination,
        ]

    def start(self, timeout: float = 300.0) -> MLflowServer:
        env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV_TO_DROP}
        env.update({
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        })
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it; closed when we close ours below
        try:
            self.proc = subprocess.Popen(self.command(), cwd=self.root, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._healthy():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server not healthy after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.25)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the server's process group (the CLI and its uvicorn child), then SIGKILL."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session=True: the CLI leads its own group
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; make sure no worker of its group lingers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            break

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])


def start_mlflow_server(root: Path, artifacts_destination: str | None = None, env: dict[str, str] | None = None,
                        timeout: float = 300.0) -> MLflowServer:
    """Start `mlflow server` in `root` (SQLite DB root/mlflow.db; artifacts at `artifacts_destination`, default
    root/mlartifacts) on a free loopback port and wait for /health. `env`: extra variables for the server process
    (e.g. the S3 endpoint and credentials for an s3:// artifacts destination)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    destination = artifacts_destination or (root / "mlartifacts").as_uri()
    last: Exception | None = None
    for _ in range(2):  # a port taken between free_port() and the bind: try once more
        server = MLflowServer(root, free_port(), f"sqlite:///{root / 'mlflow.db'}", destination, env)
        try:
            return server.start(timeout=timeout)
        except RuntimeError as exc:
            last = exc
            if "address already in use" not in str(exc).lower():
                raise
    raise RuntimeError(f"could not start mlflow server: {last}")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, seaweedfs) -> Iterator[MLflowServer]:
    """One MLflow server for the session; artifacts in SeaweedFS (s3://<bucket>/mlartifacts, proxied by the server,
    so clients need no S3 credentials). Use unique registered-model / experiment names per test."""
    bucket = seaweedfs.make_bucket(f"mlflow-{uuid.uuid4().hex[:8]}")
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"), f"s3://{bucket}/mlartifacts", env=seaweedfs.env())
    server.bucket = bucket
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mlflow_server_private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """A fresh MLflow server (local artifact dir) for one test, free to be stopped (outage tests)."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow_private"))
    try:
        yield server
    finally:
        server.stop()
