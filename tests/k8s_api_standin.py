"""A loopback STAND-IN for the Kubernetes API, for the launcher tests: not a Kubernetes API server, no controller.

It serves on 127.0.0.1 only the endpoints spg_lib.kubeflow.k8s_watch uses, with the request and response shapes of
the real API, so the real ``kubernetes`` python client talks to it:

    POST/GET/DELETE /apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs[/{name}]   (Trainer v2.3.0)
    POST/GET/DELETE /apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs[/{name}]                (Training Operator v1)
    GET /api/v1/namespaces/{ns}/pods?labelSelector=k=v,...   GET /api/v1/namespaces/{ns}/pods/{name}
    GET /api/v1/namespaces/{ns}/pods/{name}/log?container=&follow=&timestamps=&sinceSeconds=   (chunked when follow)

A created object's body is checked against the vendored CRD's ``openAPIV3Schema`` made strict (``strict_schema``:
an object node that lists ``properties`` refuses any other field, as the API server prunes/refuses unknown fields of
a structural schema) plus the TrainJob CRD's CEL rule on ``metadata.name``; a bad body gets 422 with a ``Status``
naming the field, a second create of a name 409. What a controller would do is scripted per job (``Script``):
node pods appear (Pending, then Running), node 0 and node 1 write log lines, then the job gets its terminal
condition (Trainer: ``Complete``/``Failed``; Training Operator: ``Succeeded``/``Failed``). ``Script.restart_after``
replaces node 0's pod mid-run (a JobSet restart); ``Script.drop_stream_after`` cuts a follow stream once.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

CRDS = Path(__file__).resolve().parent / "kubeflow" / "crds"
TRAINJOB_CRD = CRDS / "trainer.kubeflow.org_trainjobs.yaml"
PYTORCHJOB_CRD = CRDS / "kubeflow.org_pytorchjobs.yaml"


def crd_schema(path: Path) -> dict[str, Any]:
    """The served version's ``openAPIV3Schema`` of a CRD file, as published."""
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # (0.5 MB of YAML)
    (version,) = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
    return version["schema"]["openAPIV3Schema"]


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``additionalProperties: false`` on every object node that lists ``properties`` and neither
    allows extra keys itself nor preserves unknown fields: what a structural schema means to the API server."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


_SCHEMAS: dict[Path, Any] = {}


def validator(path: Path) -> Any:
    """A cached jsonschema validator of the strict schema of CRD ``path``."""
    import jsonschema

    if path not in _SCHEMAS:
        _SCHEMAS[path] = jsonschema.Draft7Validator(strict_schema(crd_schema(path)))
    return _SCHEMAS[path]


_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def validation_errors(body: dict[str, Any], crd: Path) -> list[str]:
    """Every schema violation of ``body`` as ``path: message`` (empty: valid), plus the CRD's name rule."""
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
              for e in sorted(validator(crd).iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))]
    name = (body.get("metadata") or {}).get("name", "")
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 63:
        errors.append(f"metadata.name: {name!r} must be an RFC 1035 label of at most 63 characters")
    return errors


@dataclasses.dataclass
class Script:
    """What the stand-in plays for one created job."""

    lines: list[str] = dataclasses.field(default_factory=lambda: ["step 1", "step 2", "done"])
    outcome: str = "succeeded"          # succeeded | failed | never (stays running)
    reason: str = ""
    message: str = ""
    pending_s: float = 0.15
    line_s: float = 0.02
    restart_after: int | None = None    # node 0's pod fails after this many lines and a new pod carries on
    drop_stream_after: int | None = None  # cut the first follow stream after this many lines


@dataclasses.dataclass
class _Pod:
    obj: dict[str, Any]
    container: str
    lines: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (timestamp, text)
    ended: bool = False
    drop_after: int | None = None  # cut the next follow stream after this many lines (once)


@dataclasses.dataclass(frozen=True)
class _Resource:
    group: str
    version: str
    plural: str
    kind: str
    crd: Path
    succeeded: str
    container: str


RESOURCES = {
    "trainjobs": _Resource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", TRAINJOB_CRD, "Complete",
                           "node"),
    "pytorchjobs": _Resource("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", PYTORCHJOB_CRD, "Succeeded",
                             "pytorch"),
}


def _parse_bool(text: str) -> bool:
    """A query boolean as the API server reads it (Go strconv.ParseBool: the python client sends ``True``)."""
    return text in ("1", "t", "T", "TRUE", "true", "True")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp() -> str:
    t = time.time_ns()
    return dt.datetime.fromtimestamp(t // 10**9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{t % 10**9:09d}Z"


class K8sApiStandin:
    """The stand-in server; ``with K8sApiStandin() as k8s: api = k8s.api_client()``."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name) -> object
        self.pods: dict[tuple[str, str], _Pod] = {}
        self.requests: list[tuple[str, str, Any]] = []  # (method, path with query, body)
        self.scripts: list[Script] = []                  # consumed one per create; default Script()
        self.deletions: list[str] = []                   # propagation policy of each job deletion
        self.closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pod_clock = int(time.time())  # creationTimestamp has second resolution: one second per new pod
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> K8sApiStandin:
        thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.closing.set()
        with self.lock:
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def api_client(self) -> Any:
        from kubernetes import client

        conf = client.Configuration(host=self.url)
        return client.ApiClient(conf)

    # ------------------------------------------------------------------ state helpers
    def put(self, obj: dict[str, Any], plural: str | None = None) -> None:
        """Store ``obj`` as if created earlier (no script runs)."""
        plural = plural or {"TrainJob": "trainjobs", "PyTorchJob": "pytorchjobs"}[obj["kind"]]
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        with self.lock:
            self.objects[(plural, obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.objects.get((plural, namespace, name)))

    def creates(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests if method == "POST"]

    def _condition(self, key: tuple[str, str, str], ctype: str, reason: str, message: str) -> None:
        with self.lock:
            obj = self.objects.get(key)
            if obj is None:
                return
            conds = obj.setdefault("status", {}).setdefault("conditions", [])
            conds.append({"type": ctype, "status": "True", "reason": reason, "message": message,
                          "lastTransitionTime": _now()})

    def _new_pod(self, res: _Resource, job: dict[str, Any], node: int, attempt: int,
                 drop_after: int | None = None) -> tuple[str, str]:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        if res.kind == "TrainJob":
            labels = {"jobset.sigs.k8s.io/jobset-name": name, "jobset.sigs.k8s.io/replicatedjob-name": "node",
                      "jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": str(node)}
            pod_name = f"{name}-node-0-{node}-{uuid.uuid4().hex[:5]}"
        else:
            kind = "master" if node == 0 else "worker"
            index = 0 if node == 0 else node - 1
            labels = {"training.kubeflow.org/job-name": name, "training.kubeflow.org/replica-type": kind,
                      "training.kubeflow.org/replica-index": str(index)}
            pod_name = f"{name}-{kind}-{index}" + (f"-r{attempt}" if attempt else "")
        with self.lock:
            self._pod_clock += 1
            created = dt.datetime.fromtimestamp(self._pod_clock, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pod_name, "namespace": ns, "uid": str(uuid.uuid4()), "labels": labels,
                            "creationTimestamp": created},
               "spec": {"containers": [{"name": res.container, "image": "stand-in"}]},
               "status": {"phase": "Pending"}}
        with self.lock:
            self.pods[(ns, pod_name)] = _Pod(obj, res.container, drop_after=drop_after)
        return ns, pod_name

    def _set_phase(self, key: tuple[str, str], phase: str) -> None:
        with self.lock:
            pod = self.pods.get(key)
            if pod is not None:
                pod.obj["status"]["phase"] = phase
                pod.ended = phase in ("Succeeded", "Failed")
                self.lock.notify_all()

    def _write(self, key: tuple[str, str], text: str) -> None:
        with self.lock:
            pod = self.pods.get(key)
            if pod is not None:
                pod.lines.append((_stamp(), text))
                self.lock.notify_all()

    def _play(self, res: _Resource, key: tuple[str, str, str], script: Script) -> None:
        """The scripted controller of one job."""
        with self.lock:
            job = copy.deepcopy(self.objects.get(key))
        if job is None:
            return
        nodes = (job["spec"]["trainer"].get("numNodes", 1) if res.kind == "TrainJob"
                 else sum(r.get("replicas", 1) for r in job["spec"]["pytorchReplicaSpecs"].values()))
        self._condition(key, "Created", "JobCreated", "the job was created")
        pods = [self._new_pod(res, job, node, 0, script.drop_stream_after if node == 0 else None)
                for node in range(nodes)]
        if self.closing.wait(script.pending_s):
            return
        for pod in pods:
            self._set_phase(pod, "Running")
        if res.kind == "PyTorchJob":
            self._condition(key, "Running", "PyTorchJobRunning", "the job is running")
        node0 = pods[0]
        for i, line in enumerate(script.lines):
            if self.closing.wait(script.line_s) or key not in self.objects:
                return
            if script.restart_after is not None and i == script.restart_after:
                self._set_phase(node0, "Failed")
                node0 = self._new_pod(res, job, 0, 1)
                if self.closing.wait(script.pending_s):
                    return
                self._set_phase(node0, "Running")
            self._write(node0, line)
            for other in pods[1:]:
                self._write(other, f"node-1 says {line}")
        if script.outcome == "never":
            return
        ok = script.outcome == "succeeded"
        for pod in [node0, *pods[1:]]:
            self._set_phase(pod, "Succeeded" if ok else "Failed")
        if self.closing.wait(script.line_s):
            return
        self._condition(key, res.succeeded if ok else "Failed", script.reason or ("JobSucceeded" if ok else
                        "JobFailed"), script.message)

    # ------------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                  "reason": reason, "code": code})

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null") if length else None

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                body = self._body() if method in ("POST", "DELETE") else None
                standin.requests.append((method, self.path, body))
                parts = url.path.strip("/").split("/")
                if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "pods":
                    return self._pods(method, parts[3], parts[5:], query)
                for res in RESOURCES.values():
                    prefix = ["apis", res.group, res.version, "namespaces"]
                    if parts[:4] == prefix and len(parts) >= 6 and parts[5] == res.plural:
                        return self._jobs(method, res, parts[4], parts[6:], body, query)
                self._status(404, "NotFound", f"the stand-in serves no {url.path}")

            def _jobs(self, method: str, res: _Resource, ns: str, rest: list[str], body: Any,
                      query: dict[str, str]) -> None:
                if method == "POST" and not rest:
                    if not isinstance(body, dict):
                        return self._status(400, "BadRequest", "body must be an object")
                    errors = validation_errors(body, res.crd)
                    if body.get("apiVersion") != f"{res.group}/{res.version}" or body.get("kind") != res.kind:
                        errors.append(f"apiVersion/kind must be {res.group}/{res.version}/{res.kind}")
                    if (body.get("metadata") or {}).get("namespace", ns) != ns:
                        errors.append("metadata.namespace does not match the request's namespace")
                    name = (body.get("metadata") or {}).get("name", "")
                    if errors:
                        return self._status(422, "Invalid", f"{res.kind}.{res.group} {name!r} is invalid: "
                                                            + "; ".join(errors))
                    key = (res.plural, ns, name)
                    with standin.lock:
                        if key in standin.objects:
                            return self._status(409, "AlreadyExists", f"{res.plural}.{res.group} {name!r} "
                                                                      "already exists")
                        obj = copy.deepcopy(body)
                        obj["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_now())
                        obj.pop("status", None)
                        standin.objects[key] = obj
                        script = standin.scripts.pop(0) if standin.scripts else Script()
                    thread = threading.Thread(target=standin._play, args=(res, key, script), daemon=True)
                    thread.start()
                    standin._threads.append(thread)
                    return self._send(201, obj)
                if len(rest) == 1 and method in ("GET", "DELETE"):
                    key = (res.plural, ns, rest[0])
                    with standin.lock:
                        obj = copy.deepcopy(standin.objects.get(key))
                    if obj is None:
                        return self._status(404, "NotFound", f"{res.plural}.{res.group} {rest[0]!r} not found")
                    if method == "GET":
                        return self._send(200, obj)
                    policy = query.get("propagationPolicy") or (body or {}).get("propagationPolicy", "Background")
                    standin.deletions.append(policy)
                    with standin.lock:  # dependents go now; a foreground deletion keeps the object a moment longer
                        standin.objects[key]["metadata"]["deletionTimestamp"] = _now()
                        obj = copy.deepcopy(standin.objects[key])
                        for pod_key in [k for k, p in standin.pods.items()
                                        if rest[0] in p.obj["metadata"]["name"] and k[0] == ns]:
                            standin.pods[pod_key].ended = True
                            del standin.pods[pod_key]
                        standin.lock.notify_all()

                    def remove() -> None:
                        time.sleep(0.1 if policy == "Foreground" else 0.0)
                        with standin.lock:
                            standin.objects.pop(key, None)

                    threading.Thread(target=remove, daemon=True).start()
                    return self._send(200, obj)
                self._status(405, "MethodNotAllowed", f"{method} is not served here")

            def _pods(self, method: str, ns: str, rest: list[str], query: dict[str, str]) -> None:
                if method != "GET":
                    return self._status(405, "MethodNotAllowed", f"{method} is not served here")
                if not rest:
                    wanted = dict(item.split("=", 1) for item in query.get("labelSelector", "").split(",") if item)
                    with standin.lock:
                        items = [copy.deepcopy(p.obj) for (pns, _), p in standin.pods.items() if pns == ns
                                 and all(p.obj["metadata"]["labels"].get(k) == v for k, v in wanted.items())]
                    return self._send(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {},
                                            "items": items})
                with standin.lock:
                    pod = standin.pods.get((ns, rest[0]))
                if pod is None:
                    return self._status(404, "NotFound", f"pods {rest[0]!r} not found")
                if len(rest) == 1:
                    return self._send(200, copy.deepcopy(pod.obj))
                if rest[1:] != ["log"]:
                    return self._status(404, "NotFound", "unknown pod subresource")
                return self._log(pod, query)

            def _log(self, pod: _Pod, query: dict[str, str]) -> None:
                if query.get("container", pod.container) != pod.container:
                    return self._status(400, "BadRequest", f"container {query['container']} is not valid for pod "
                                                           f"{pod.obj['metadata']['name']}")
                if pod.obj["status"]["phase"] == "Pending":
                    return self._status(400, "BadRequest", f"container \"{pod.container}\" in pod "
                                                           f"\"{pod.obj['metadata']['name']}\" is waiting to start: "
                                                           "ContainerCreating")
                stamps = _parse_bool(query.get("timestamps", "false"))
                since = float(query["sinceSeconds"]) if "sinceSeconds" in query else None
                cutoff = time.time() - since if since is not None else None

                def fmt(stamp: str, text: str) -> bytes:
                    return (f"{stamp} {text}\n" if stamps else f"{text}\n").encode()

                def visible(stamp: str) -> bool:
                    if cutoff is None:
                        return True
                    t = dt.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
                    return t + int(stamp[20:29]) / 1e9 >= cutoff

                if not _parse_bool(query.get("follow", "false")):
                    with standin.lock:
                        data = b"".join(fmt(s, t) for s, t in pod.lines if visible(s))
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent, drop = 0, None
                with standin.lock:
                    if pod.drop_after is not None:
                        drop, pod.drop_after = pod.drop_after, None  # once
                while True:
                    with standin.lock:
                        while (sent >= len(pod.lines) and not pod.ended and not standin.closing.is_set()):
                            standin.lock.wait(0.5)
                        batch = pod.lines[sent:]
                        ended = pod.ended or standin.closing.is_set()
                    for stamp, text in batch:
                        sent += 1
                        if visible(stamp):
                            chunk = fmt(stamp, text)
                            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        if drop is not None and sent >= drop:  # a dropped connection, mid-stream
                            self.wfile.flush()
                            self.close_connection = True
                            self.wfile.write(b"0\r\n\r\n")
                            return None
                    self.wfile.flush()
                    if ended and sent >= len(pod.lines):
                        break
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return None

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler
