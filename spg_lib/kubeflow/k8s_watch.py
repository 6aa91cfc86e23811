"""Submit a TrainJob (or PyTorchJob), stream node 0's log into this process's log, wait for a terminal condition.

    state = run_trainjob(kube_api(), spec, log=print, poll_s=10)   # "Complete" (TrainJob) / "Succeeded"
                                                                   # (PyTorchJob); JobFailedError when it fails

This runs in the KFP training task of a multi-node run, with the Kubernetes python client (in-cluster service
account, else ``KUBECONFIG``). It needs, in the job's namespace: create/get/delete on the job resource, list/get on
pods and get on pods/log (k8s/ grants exactly that).

* Submit: the spec gets an annotation with the sha256 of its content. When a job of that name exists already
  (the KFP task was retried, or its pod was lost), a running one with the same spec is attached to, a complete one
  is reported as such, and a failed one is deleted (foreground: its pods go first) and submitted again, resuming
  from its checkpoints; one with a different spec is an error (naming it).
* Logs: node 0's pod (``jobset.sigs.k8s.io/...`` labels for a TrainJob, ``training.kubeflow.org/...`` for a
  PyTorchJob) is followed with ``timestamps=true``; a dropped stream is resumed without repeating lines (by
  timestamp), and a replaced pod (a JobSet restart) is followed from its start.
* Terminal state: ``status.conditions`` of type ``Complete`` / ``Failed`` (TrainJob, Trainer v2.3.0) or
  ``Succeeded`` / ``Failed`` (PyTorchJob, Training Operator v1.9.4) with status ``True``. A failed job raises
  ``JobFailedError`` with one line: the controller's reason and message and node 0's last error line.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["JOB_KINDS", "JobFailedError", "JobKind", "current_namespace", "kube_api", "run_trainjob", "spec_digest",
           "terminal_state"]

SPEC_DIGEST = "spg-pipeline/spec-sha256"
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class JobFailedError(RuntimeError):
    """The training job ended in its controller's ``Failed`` condition (or could not be submitted)."""


@dataclasses.dataclass(frozen=True)
class JobKind:
    """A job resource: where it lives in the API, which condition ends it, how to find node 0's pod."""

    kind: str
    group: str
    version: str
    plural: str
    succeeded: str          # condition type of success
    container: str          # node 0's training container
    node0_labels: Callable[[str], dict[str, str]]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


JOB_KINDS: dict[str, JobKind] = {
    "TrainJob": JobKind("TrainJob", "trainer.kubeflow.org", "v1alpha1", "trainjobs", "Complete", "node",
                        lambda name: {"jobset.sigs.k8s.io/jobset-name": name,
                                      "jobset.sigs.k8s.io/replicatedjob-name": "node",
                                      "jobset.sigs.k8s.io/job-index": "0",
                                      "batch.kubernetes.io/job-completion-index": "0"}),
    "PyTorchJob": JobKind("PyTorchJob", "kubeflow.org", "v1", "pytorchjobs", "Succeeded", "pytorch",
                          lambda name: {"training.kubeflow.org/job-name": name,
                                        "training.kubeflow.org/replica-type": "master",
                                        "training.kubeflow.org/replica-index": "0"}),
}


def kube_api() -> Any:
    """A ``kubernetes.client.ApiClient``: the pod's service account in a cluster, else ``$KUBECONFIG``."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def current_namespace() -> str:
    """The namespace this pod runs in (its service account's), for jobs submitted next to it."""
    try:
        return SA_NAMESPACE.read_text().strip()
    except OSError:
        raise ValueError(f"no namespace given and {SA_NAMESPACE} is not readable (not running in a pod): pass "
                         "namespace") from None


def spec_digest(spec: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``spec`` without its digest annotation."""
    body = copy.deepcopy(dict(spec))
    body.get("metadata", {}).get("annotations", {}).pop(SPEC_DIGEST, None)
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def terminal_state(obj: Mapping[str, Any], kind: JobKind) -> tuple[str, str] | None:
    """(condition type, "reason: message") of the job's terminal condition with status True, else None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in (kind.succeeded, "Failed"):
            text = ": ".join(str(p) for p in (cond.get("reason"), cond.get("message")) if p)
            return str(cond["type"]), " ".join(text.split())
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _api_error(exc: Exception) -> str:
    """HTTP status and the Status message of a kubernetes ApiException, on one line."""
    status, reason, body = getattr(exc, "status", None), getattr(exc, "reason", ""), getattr(exc, "body", "")
    message = ""
    try:
        message = json.loads(body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(body or "")
    return _one_line(f"HTTP {status} {reason}: {message}" if status else str(exc))


# ---------------------------------------------------------------------------------------------- node-0 logs
def _timestamp(text: str) -> tuple[int, int] | None:
    """RFC 3339 (nano) UTC timestamp -> (epoch seconds, nanoseconds); None if ``text`` is not one."""
    try:
        whole, _, frac = text.rstrip("Z").partition(".")
        seconds = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
        return int(seconds.timestamp()), int((frac or "0").ljust(9, "0")[:9])
    except ValueError:
        return None


class _Node0Logs(threading.Thread):
    """Follows node 0's container log (pod after pod) until stopped; keeps the last lines for the error text."""

    def __init__(self, core: Any, namespace: str, selector: str, container: str, log: Callable[[str], None],
                 poll_s: float, read_timeout_s: float) -> None:
        super().__init__(name="node0-logs", daemon=True)
        self.core, self.namespace, self.selector, self.container = core, namespace, selector, container
        self.log, self.poll_s, self.read_timeout_s = log, poll_s, read_timeout_s
        self.stop_event = threading.Event()
        self.finished: set[str] = set()            # pod uids whose log was read to the end
        self.last: dict[str, tuple[tuple[int, int], int]] = {}  # uid -> (last timestamp, lines seen at it)
        self.skip: dict[str, int] = {}             # uid -> lines at the last timestamp still to skip
        self.tail: list[str] = []
        self.pods_seen: list[str] = []

    def last_error_line(self) -> str:
        for line in reversed(self.tail):
            if "error" in line.lower():
                return line
        return self.tail[-1] if self.tail else ""

    def _pods(self) -> list[dict[str, Any]]:
        resp = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector, _preload_content=False,
                                             _request_timeout=(10, 30))
        items = json.loads(resp.data or b"{}").get("items") or []
        return sorted(items, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))

    def _emit(self, uid: str, raw: str) -> None:
        """Log one ``<timestamp> <text>`` line unless a resumed stream repeats it."""
        stamp, _, text = raw.partition(" ")
        key = _timestamp(stamp)
        if key is None:  # not timestamped (the API always stamps with timestamps=true): pass it through
            self._keep(raw)
            return
        last_key, count = self.last.get(uid, ((-1, 0), 0))
        if key < last_key:
            return
        if key == last_key and self.skip.get(uid, 0) > 0:  # already logged before the stream was resumed
            self.skip[uid] -= 1
            return
        self.skip[uid] = 0
        self.last[uid] = (key, count + 1 if key == last_key else 1)
        self._keep(text)

    def _keep(self, text: str) -> None:
        self.tail = [*self.tail, text][-20:]
        self.log(f"[node-0] {text}")

    def _follow(self, pod: dict[str, Any]) -> None:
        """Stream the pod's log from where this follower left it (the start, for a new pod) to its end."""
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        kwargs: dict[str, Any] = {}
        if uid in self.last:  # resumed: from shortly before the last line (clock slack), repeats skipped
            (seconds, _), count = self.last[uid]
            kwargs["since_seconds"] = max(1, int(time.time() - seconds) + 10)
            self.skip[uid] = count
        resp = self.core.read_namespaced_pod_log(name, self.namespace, container=self.container, follow=True,
                                                 timestamps=True, _preload_content=False,
                                                 _request_timeout=(10, self.read_timeout_s), **kwargs)
        try:
            buffer = b""
            while data := resp.read1(65536):  # what has arrived (read() would wait for a full block)
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._emit(uid, line.decode("utf-8", "replace").rstrip("\r"))
            if buffer:
                self._emit(uid, buffer.decode("utf-8", "replace"))
        finally:
            resp.release_conn()

    def _step(self) -> None:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        pods = [p for p in self._pods() if p["metadata"]["uid"] not in self.finished]
        if not pods:
            return
        pod = pods[0]
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
            return
        if name not in self.pods_seen:
            self.pods_seen.append(name)
            self.log(f"[node-0] --- log of pod {name} ---")
        try:
            self._follow(pod)
        except ApiException as exc:
            if exc.status not in (400, 404):  # 400: the container is not running yet; 404: the pod is gone
                raise
        except urllib3.exceptions.HTTPError:  # a cut or silent stream (read timeout): resumed below, no repeats
            pass
        try:
            current = self.core.read_namespaced_pod(name, self.namespace, _preload_content=False,
                                                    _request_timeout=(10, 30))
            phase = (json.loads(current.data).get("status") or {}).get("phase")
            if json.loads(current.data)["metadata"].get("uid") != uid or phase in ("Succeeded", "Failed"):
                self.finished.add(uid)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.finished.add(uid)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._step()
            except Exception as exc:  # the log is best-effort; the status poll decides the outcome
                self.log(f"[node-0] (log stream interrupted: {_one_line(str(exc))[:200]}; retrying)")
            self.stop_event.wait(self.poll_s)

    def drain(self, timeout_s: float) -> None:
        """Let the current stream reach its end (the job is terminal), then stop."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.is_alive():
            self.join(timeout=min(self.poll_s, 0.5))
            if not self.is_alive() or self._all_done():
                break
        self.stop_event.set()
        self.join(timeout=max(0.0, deadline - time.monotonic()) + self.poll_s)

    def _all_done(self) -> bool:
        try:
            pods = self._pods()
        except Exception:  # the API is gone: nothing more to read
            return True
        return all(p["metadata"]["uid"] in self.finished for p in pods)


# ---------------------------------------------------------------------------------------------- submit and wait
def _wait_gone(custom: Any, args: tuple[str, ...], name: str, where: str, poll_s: float, timeout_s: float) -> None:
    """Poll until the job object is gone (a foreground deletion removes it after its pods)."""
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            custom.get_namespaced_custom_object(*args, name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise JobFailedError(f"cannot read {where}: {_api_error(exc)}") from None
        if time.monotonic() > deadline:
            raise JobFailedError(f"{where} is still being deleted after {timeout_s:g} s (finalizers?): cannot "
                                 f"submit it again")
        time.sleep(poll_s)


def _submit(custom: Any, kind: JobKind, body: dict[str, Any], log: Callable[[str], None], poll_s: float,
            delete_timeout_s: float) -> None:
    """Create the job; on a name conflict follow, accept, or replace the existing one (module docstring)."""
    from kubernetes.client.exceptions import ApiException

    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    where = f"{kind.kind} {ns}/{name}"
    args = (kind.group, kind.version, ns, kind.plural)
    for _ in range(3):
        try:
            custom.create_namespaced_custom_object(*args, body)
            log(f"submitted {where}")
            return
        except ApiException as exc:
            if exc.status != 409:
                raise JobFailedError(f"cannot create {where}: {_api_error(exc)}") from None
        try:
            existing = custom.get_namespaced_custom_object(*args, name)
        except ApiException as exc:
            if exc.status == 404:  # deleted in between: create again
                continue
            raise JobFailedError(f"cannot read {where}: {_api_error(exc)}") from None
        if existing.get("metadata", {}).get("deletionTimestamp"):
            log(f"{where} is being deleted: waiting to submit it again")
            _wait_gone(custom, args, name, where, poll_s, delete_timeout_s)
            continue
        same = (existing.get("metadata", {}).get("annotations") or {}).get(SPEC_DIGEST) == \
            body["metadata"]["annotations"][SPEC_DIGEST]
        state = terminal_state(existing, kind)
        if not same:
            now = "running" if state is None else state[0]
            raise JobFailedError(f"{where} exists with a different spec ({now}): delete it (kubectl delete "
                                 f"{kind.plural}.{kind.group} -n {ns} {name}) or use another job name")
        if state is None:
            log(f"{where} exists with this spec and is running: following it")
            return
        if state[0] == kind.succeeded:
            log(f"{where} exists with this spec and has completed")
            return
        log(f"{where} failed before ({state[1]}): deleting it and submitting again (resumes from its checkpoints)")
        custom.delete_namespaced_custom_object(*args, name, propagation_policy="Foreground")
        _wait_gone(custom, args, name, where, poll_s, delete_timeout_s)
    raise JobFailedError(f"cannot create {where}: it keeps reappearing")


def run_trainjob(api: Any, spec: Mapping[str, Any], *, log: Callable[[str], None] = print, poll_s: float = 10.0,
                 timeout_s: float | None = None, delete: bool = False, log_drain_s: float = 30.0,
                 log_read_timeout_s: float = 300.0, delete_timeout_s: float = 600.0) -> str:
    """Submit ``spec`` (TrainJob or PyTorchJob) through ``api`` (a ``kubernetes.client.ApiClient``), stream node 0's
    log to ``log``, poll the job every ``poll_s`` seconds until a terminal condition; return its type.

    ``delete``: delete the job (foreground) once it ended, whatever the outcome (default: keep it, with its pods'
    logs). ``timeout_s``: give up waiting (the job keeps running) with ``TimeoutError``. ``log_drain_s``: how long
    node 0's last lines may take once the job ended; ``log_read_timeout_s``: a silent log stream is reopened (no
    line repeated) after this long; ``delete_timeout_s``: how long a failed job's deletion may take before it is
    submitted again.

    Raises:
        JobFailedError: the job could not be submitted or ended ``Failed`` (one line with the reason and node 0's last
            error line).
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    kind = JOB_KINDS.get(str(spec.get("kind")))
    if kind is None or spec.get("apiVersion") != kind.api_version:
        raise ValueError(f"spec: apiVersion/kind {spec.get('apiVersion')}/{spec.get('kind')} is not one of "
                         f"{', '.join(f'{k.api_version}/{k.kind}' for k in JOB_KINDS.values())}")
    body = copy.deepcopy(dict(spec))
    body["metadata"].setdefault("annotations", {})[SPEC_DIGEST] = spec_digest(body)
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    where = f"{kind.kind} {ns}/{name}"
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    _submit(custom, kind, body, log, poll_s, delete_timeout_s)
    selector = ",".join(f"{k}={v}" for k, v in kind.node0_labels(name).items())
    logs = _Node0Logs(core, ns, selector, kind.container, log, poll_s, log_read_timeout_s)
    logs.start()
    start = time.monotonic()
    reported = None
    state: tuple[str, str] | None = None
    try:
        while True:
            try:
                obj = custom.get_namespaced_custom_object(kind.group, kind.version, ns, kind.plural, name)
            except ApiException as exc:
                if exc.status == 404:
                    raise JobFailedError(f"{where} disappeared while running (deleted by someone else?)") from None
                raise JobFailedError(f"cannot read {where}: {_api_error(exc)}") from None
            state = terminal_state(obj, kind)
            if state is not None:
                break
            conditions = [c.get("type") for c in (obj.get("status") or {}).get("conditions") or []
                          if c.get("status") == "True"]
            if conditions != reported:
                reported = conditions
                log(f"{where}: {', '.join(map(str, conditions)) or 'no conditions yet'}")
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise TimeoutError(f"{where} did not finish within {timeout_s:g} s (it keeps running; delete it "
                                   f"with kubectl delete {kind.plural}.{kind.group} -n {ns} {name})")
            time.sleep(poll_s)
    finally:
        logs.drain(log_drain_s if state is not None else 0.0)  # ended: node 0's last lines are on their way
    log(f"{where}: {state[0]}{f' ({state[1]})' if state[1] else ''}")
    if delete:
        try:
            custom.delete_namespaced_custom_object(kind.group, kind.version, ns, kind.plural, name,
                                                   propagation_policy="Foreground")
            log(f"deleted {where}")
        except ApiException as exc:
            log(f"could not delete {where}: {_api_error(exc)}")
    if state[0] != kind.succeeded:
        last = logs.last_error_line()
        raise JobFailedError(_one_line(f"{where} failed: {state[1] or 'no reason given'}"
                                  + (f"; node 0's last log line: {last}" if last else "")))
    return state[0]
