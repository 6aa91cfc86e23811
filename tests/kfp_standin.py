"""A loopback stand-in for the Kubeflow Pipelines v2beta1 REST API — a test double, NOT a KFP server.

No KFP API server can run here (it needs MySQL/Argo/Kubernetes), so `spg kfp submit` / `spg kfp schedule` are tested
against this: an HTTP server on 127.0.0.1 (ephemeral port, one thread) answering the endpoints `kfp.Client` calls
for those flows, with the paths, query parameters, multipart upload and JSON shapes of the KFP 2.x API:

  GET  /apis/v2beta1/healthz                           GET  /apis/v2beta1/experiments?filter=&namespace=
  GET  /apis/v2beta1/pipelines?filter=&namespace=      POST /apis/v2beta1/experiments
  POST /apis/v2beta1/pipelines/upload (multipart)      GET  /apis/v2beta1/experiments/{id}
  POST /apis/v2beta1/pipelines/upload_version          POST /apis/v2beta1/runs,  GET /apis/v2beta1/runs/{id}
  GET  /apis/v2beta1/pipelines/{id}[/versions[/{id}]]  POST /apis/v2beta1/recurringruns,  GET .../{id}

What it checks, strictly, answering 400 with a google.rpc.Status body (like the server's grpc-gateway):
- every JSON body against the kfp-server-api model of that request (`V2beta1Experiment`, `V2beta1Run`,
  `V2beta1RecurringRun`, and the `filter` query parameter against `V2beta1Filter`): an unknown field, a wrong JSON
  type (e.g. ``max_concurrency``, an int64, must be a string as the model says), an enum value outside the model's
  allowable values, or an output-only field (ids, timestamps, state) set by the client; the body is then
  deserialized with ``kfp_server_api.ApiClient`` into the model object (kept on the `Recorded` request);
- unknown query parameters; the uploaded file parsed as a KFP PipelineSpec (+ PlatformSpec) protobuf;
- references: experiment, pipeline and pipeline version exist and belong together (404 otherwise); duplicate
  pipeline / version / experiment names (409); run parameters against the version's root inputDefinitions
  (names, types, required ones: stricter than the server, which leaves that to the driver);
- the server's own rules for recurring runs: max_concurrency in [1, 10], exactly one trigger, a cron of 5 or 6
  fields (robfig/cron ``Parse``, which takes five fields as seconds..month: the trap `validate_cron` guards);
- a bearer token when constructed with ``token=...`` (401 without it).

What it does not do: run anything (runs stay PENDING), pagination beyond ``page_size``, filters other than EQUALS
on ``display_name`` / ``name``, authorization per namespace. Every request is recorded (`KfpStandin.requests`)
with its parsed body and the status it got.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import re
import threading
import uuid
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import kfp_server_api
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

LOOPBACK = "127.0.0.1"
API = "/apis/v2beta1"
_GRPC_CODE = {400: 3, 401: 16, 404: 5, 409: 6, 500: 13}
# proto enum numbers the JSON may carry instead of the name (kfp.Client sends the filter operation as a number)
_ENUM_NUMBERS = {"V2beta1PredicateOperation": {0: "OPERATION_UNSPECIFIED", 1: "EQUALS", 2: "NOT_EQUALS",
                                               3: "GREATER_THAN", 5: "GREATER_THAN_EQUALS", 6: "LESS_THAN",
                                               7: "LESS_THAN_EQUALS", 8: "IN", 9: "IS_SUBSTRING"}}
_OUTPUT_ONLY = {
    "V2beta1Experiment": ("experiment_id", "created_at", "storage_state", "last_run_created_at"),
    "V2beta1Run": ("run_id", "created_at", "scheduled_at", "finished_at", "state", "error", "run_details",
                   "recurring_run_id", "state_history", "plugins_output", "storage_state"),
    "V2beta1RecurringRun": ("recurring_run_id", "created_at", "updated_at", "status", "error"),
}
_PARAMETER_JSON = {"STRING": (str,), "NUMBER_INTEGER": (int,), "NUMBER_DOUBLE": (int, float), "BOOLEAN": (bool,),
                   "LIST": (list,), "STRUCT": (dict,)}


class StandinError(Exception):
    """A request the stand-in refuses: HTTP status and the message of the google.rpc.Status body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> StandinError:
    return StandinError(400, message)


# ---------------------------------------------------------------------------------------------- model checks


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _check_value(value: Any, kind: str, where: str) -> Any:
    """``value`` checked against openapi type ``kind``; returns it with camelCase keys renamed to the proto names."""
    if kind.startswith("list["):
        if not isinstance(value, list):
            raise _bad(f"{where}: expected a list, got {type(value).__name__}")
        return [_check_value(v, kind[5:-1], f"{where}[{i}]") for i, v in enumerate(value)]
    if kind.startswith("dict("):
        inner = kind[len("dict(str, "):-1]
        if not isinstance(value, dict):
            raise _bad(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _check_value(v, inner, f"{where}.{k}") for k, v in value.items()}
    if kind == "object":
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise _bad(f"{where}: expected a string, got {json.dumps(value)}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(f"{where}: expected true or false, got {json.dumps(value)}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f"{where}: expected an integer, got {json.dumps(value)}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(f"{where}: expected a number, got {json.dumps(value)}")
        return value
    if kind == "datetime":
        try:
            dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise _bad(f"{where}: expected an RFC 3339 timestamp, got {json.dumps(value)}") from None
        return value
    cls = getattr(kfp_server_api.models, kind)
    if hasattr(cls, "allowable_values"):  # an enum
        if isinstance(value, int) and not isinstance(value, bool) and value in _ENUM_NUMBERS.get(kind, {}):
            return _ENUM_NUMBERS[kind][value]
        if value not in cls.allowable_values:
            raise _bad(f"{where}: {json.dumps(value)} is not a {kind} ({', '.join(cls.allowable_values)})")
        return value
    return check_model(value, kind, where)


def check_model(data: Any, model: str, where: str = "body") -> dict[str, Any]:
    """``data`` checked against kfp-server-api model ``model``: known fields only (proto or lowerCamelCase JSON
    names, as protojson takes), each of its declared type; returns it with the proto field names."""
    cls = getattr(kfp_server_api.models, model)
    if not isinstance(data, dict):
        raise _bad(f"{where}: expected a {model} object, got {type(data).__name__}")
    names = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    names.update({_camel(json_name): attr for json_name, attr in list(names.items())})
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise _bad(f"{where}: unknown field {key!r} of {model} (fields: {', '.join(cls.attribute_map.values())})")
        attr = names[key]
        if value is None:
            continue
        proto_name = cls.attribute_map[attr]
        out[proto_name] = _check_value(value, cls.openapi_types[attr], f"{where}.{proto_name}")
    return out


class _Raw:
    """What `ApiClient.deserialize` reads: an object with the JSON text in ``data``."""

    def __init__(self, data: Any) -> None:
        self.data = json.dumps(data)


# ------------------------------------------------------------------------------------------------ the server


@dataclasses.dataclass
class Recorded:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None  # parsed JSON (proto field names), or None
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)  # multipart file fields
    model: Any = None  # the body deserialized into its kfp-server-api model
    status: int = 0


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KfpStandin:
    """The stand-in server: ``with KfpStandin() as kfp: ...`` (``kfp.url``, ``kfp.requests``)."""

    def __init__(self, *, token: str | None = None, multi_user: bool = False) -> None:
        self.token = token
        self.multi_user = multi_user
        self.requests: list[Recorded] = []
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._api = kfp_server_api.ApiClient()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = [
            ("GET", rf"{API}/healthz", self._healthz, ()),
            ("GET", rf"{API}/pipelines", self._list_pipelines, ("filter", "namespace", "page_size", "page_token",
                                                                 "sort_by")),
            ("POST", rf"{API}/pipelines/upload", self._upload, ("name", "display_name", "description", "namespace",
                                                                "tags")),
            ("POST", rf"{API}/pipelines/upload_version", self._upload_version, ("name", "display_name", "pipelineid",
                                                                                "description", "tags")),
            ("GET", rf"{API}/pipelines/(?P<pid>[^/]+)/versions", self._list_versions,
             ("filter", "page_size", "page_token", "sort_by")),
            ("GET", rf"{API}/pipelines/(?P<pid>[^/]+)/versions/(?P<vid>[^/]+)", self._get_version, ()),
            ("GET", rf"{API}/pipelines/(?P<pid>[^/]+)", self._get_pipeline, ()),
            ("GET", rf"{API}/experiments", self._list_experiments, ("filter", "namespace", "page_size", "page_token",
                                                                     "sort_by")),
            ("POST", rf"{API}/experiments", self._create_experiment, ()),
            ("GET", rf"{API}/experiments/(?P<eid>[^/]+)", self._get_experiment, ()),
            ("POST", rf"{API}/runs", self._create_run, ("experiment_id",)),
            ("GET", rf"{API}/runs/(?P<rid>[^/]+)", self._get_run, ("view",)),
            ("POST", rf"{API}/recurringruns", self._create_recurring_run, ()),
            ("GET", rf"{API}/recurringruns/(?P<rid>[^/]+)", self._get_recurring_run, ()),
        ]

    # ---- lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> KfpStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self)

            def do_POST(self) -> None:
                standin._handle(self)

            def do_DELETE(self) -> None:
                standin._handle(self)

            def do_PATCH(self) -> None:
                standin._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="kfp-standin", daemon=True)  # a short poll: stop() returns at once
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KfpStandin:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- inspection

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests, optionally only those of ``method`` and exact ``path``."""
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)]

    def mutating(self) -> list[Recorded]:
        """The recorded requests that would change a server (anything but GET)."""
        return [r for r in self.calls() if r.method != "GET"]

    # ---- dispatch

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query_pairs = parse_qsl(parts.query, keep_blank_values=True)
        rec = Recorded(method=h.command, path=parts.path, query=dict(query_pairs),
                       headers={k.lower(): v for k, v in h.headers.items()})
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(rec)
        try:
            if self.token is not None and rec.headers.get("authorization") != f"Bearer {self.token}":
                raise StandinError(401, "Unauthenticated: the request carries no valid bearer token")
            for method, pattern, handler, allowed in self._routes:
                match = re.fullmatch(pattern, parts.path)
                if match and method == h.command:
                    if len(query_pairs) != len(rec.query):
                        raise _bad("a query parameter is repeated")
                    unknown = sorted(set(rec.query) - set(allowed))
                    if unknown:
                        raise _bad(f"unknown query parameter {unknown[0]!r} for {method} {pattern}")
                    with self._lock:
                        status, answer, model = handler(rec, raw, h.headers.get("Content-Type", ""),
                                                        **match.groupdict())
                    break
            else:
                raise StandinError(404, f"Not Found: {h.command} {parts.path} is not an endpoint of the stand-in")
            payload = check_model(answer, model, "response")  # the stand-in's own answers follow the models too
        except StandinError as exc:
            status, payload = exc.status, {"code": _GRPC_CODE.get(exc.status, 2), "message": exc.message,
                                           "details": []}
        rec.status = status
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _json_body(self, rec: Recorded, raw: bytes, content_type: str, model: str) -> dict[str, Any]:
        if not content_type.startswith("application/json"):
            raise _bad(f"expected a JSON body, got Content-Type {content_type!r}")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise _bad(f"body is not JSON: {exc}") from None
        body = check_model(data, model)
        for field in _OUTPUT_ONLY.get(model, ()):
            if field in body:
                raise _bad(f"body.{field} is output only (set by the server), but the request sets it")
        rec.body = body
        rec.model = self._api.deserialize(_Raw(body), model)
        return body

    def _multipart(self, rec: Recorded, raw: bytes, content_type: str) -> tuple[str, bytes]:
        if not content_type.startswith("multipart/form-data"):
            raise _bad(f"expected multipart/form-data, got Content-Type {content_type!r}")
        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            rec.files[str(name)] = part.get_payload(decode=True) or b""
            if name == "uploadfile":
                return part.get_filename() or "pipeline.yaml", rec.files[name]
        raise _bad("multipart body has no 'uploadfile' field")

    @staticmethod
    def _pipeline_spec(filename: str, data: bytes) -> dict[str, Any]:
        """The uploaded IR YAML, parsed as the server does: PipelineSpec (+ PlatformSpec) protobufs."""
        if not filename.endswith((".yaml", ".yml")):
            raise _bad("Unexpected pipeline file format. Support .zip, .tar.gz or YAML (stand-in: YAML only)")
        try:
            docs = [d for d in yaml.safe_load_all(data.decode("utf-8")) if d is not None]
            if not docs:
                raise ValueError("empty file")
            json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
            for extra in docs[1:]:
                json_format.ParseDict(extra, pipeline_spec_pb2.PlatformSpec())
        except (ValueError, yaml.YAMLError, json_format.ParseError) as exc:
            raise _bad(f"Failed to parse the pipeline spec: {' '.join(str(exc).split())}") from None
        return docs[0]

    def _filter(self, rec: Recorded) -> list[tuple[str, str]]:
        """(key, value) EQUALS predicates of the ``filter`` query parameter."""
        text = rec.query.get("filter")
        if not text:
            return []
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _bad(f"filter is not JSON: {exc}") from None
        parsed = check_model(data, "V2beta1Filter", "filter")
        out = []
        for i, pred in enumerate(parsed.get("predicates", [])):
            if pred.get("operation") != "EQUALS" or pred.get("key") not in ("display_name", "name") \
                    or "string_value" not in pred:
                raise _bad(f"filter.predicates[{i}]: the stand-in supports EQUALS on display_name / name with a "
                           f"string_value, got {pred}")
            out.append((pred["key"], pred["string_value"]))
        return out

    @staticmethod
    def _page_size(rec: Recorded) -> int | None:
        text = rec.query.get("page_size")
        if text is None or text == "":
            return None
        if not re.fullmatch(r"\d+", text):
            raise _bad(f"page_size: expected an integer, got {text!r}")
        return int(text) or None

    def _matches(self, item: dict[str, Any], predicates: list[tuple[str, str]]) -> bool:
        return all(item.get(k) == v for k, v in predicates)

    def _in_namespace(self, item: dict[str, Any], namespace: str | None, shared_ok: bool) -> bool:
        if not self.multi_user:
            return True
        return item.get("namespace", "") == (namespace or "") or (shared_ok and not item.get("namespace"))

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    # ---- endpoints (each returns status, JSON answer, model of the answer)

    def _healthz(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, str]:
        return 200, {"multi_user": self.multi_user, "pipeline_store": "database"}, "V2beta1GetHealthzResponse"

    def _list_pipelines(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, str]:
        preds = self._filter(rec)
        found = [self._public(p) for p in self.pipelines.values()
                 if self._matches(p, preds) and self._in_namespace(p, rec.query.get("namespace"), True)]
        size = self._page_size(rec)
        answer: dict[str, Any] = {"total_size": len(found)}
        if found:
            answer["pipelines"] = found[:size]
        return 200, answer, "V2beta1ListPipelinesResponse"

    def _new_version(self, pipeline_id: str, name: str, display_name: str, description: str | None,
                     spec: dict[str, Any]) -> dict[str, Any]:
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "name": name,
                   "display_name": display_name, "created_at": _now(), "pipeline_spec": spec, "_seq": next(self._seq)}
        if description:
            version["description"] = description
        self.versions[version["pipeline_version_id"]] = version
        return version

    def _upload(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, str]:
        filename, data = self._multipart(rec, raw, ctype)
        spec = self._pipeline_spec(filename, data)
        name = rec.query.get("name") or rec.query.get("display_name") or filename
        if len(name) > 100:
            raise _bad("Pipeline name too long. Support maximum length of 100")
        namespace = rec.query.get("namespace", "") if self.multi_user else ""
        if any(p["name"] == name and p.get("namespace", "") == namespace for p in self.pipelines.values()):
            raise StandinError(409, f"Failed to create a pipeline and a pipeline version. The pipeline already "
                                    f"exists.: Pipeline with name {name!r} already exists")
        pipeline = {"pipeline_id": str(uuid.uuid4()), "name": name,
                    "display_name": rec.query.get("display_name") or name, "created_at": _now()}
        if namespace:
            pipeline["namespace"] = namespace
        if rec.query.get("description"):
            pipeline["description"] = rec.query["description"]
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self._new_version(pipeline["pipeline_id"], name, pipeline["display_name"], rec.query.get("description"), spec)
        return 200, pipeline, "V2beta1Pipeline"

    def _upload_version(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, str]:
        filename, data = self._multipart(rec, raw, ctype)
        pipeline_id = rec.query.get("pipelineid", "")
        if not pipeline_id:
            raise _bad("Failed to create a pipeline version: pipelineid is required")
        if pipeline_id not in self.pipelines:
            raise StandinError(404, f"Pipeline {pipeline_id} not found")
        spec = self._pipeline_spec(filename, data)
        name = rec.query.get("name") or rec.query.get("display_name") or filename
        if any(v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()):
            raise StandinError(409, f"Failed to create a pipeline version: a version named {name!r} of pipeline "
                                    f"{pipeline_id} already exists")
        version = self._new_version(pipeline_id, name, rec.query.get("display_name") or name,
                                    rec.query.get("description"), spec)
        return 200, self._public(version), "V2beta1PipelineVersion"

    def _list_versions(self, rec: Recorded, raw: bytes, ctype: str, pid: str) -> tuple[int, Any, str]:
        if pid not in self.pipelines:
            raise StandinError(404, f"Pipeline {pid} not found")
        preds = self._filter(rec)
        found = [v for v in self.versions.values() if v["pipeline_id"] == pid and self._matches(v, preds)]
        sort_by = rec.query.get("sort_by", "")
        if sort_by not in ("", "created_at", "created_at desc", "name", "name desc"):
            raise _bad(f"sort_by {sort_by!r}: the stand-in sorts by created_at or name, optionally desc")
        key = "name" if sort_by.startswith("name") else "_seq"
        found.sort(key=lambda v: v[key], reverse=sort_by.endswith(" desc"))
        answer: dict[str, Any] = {"total_size": len(found)}
        if found:
            answer["pipeline_versions"] = [self._public(v) for v in found[:self._page_size(rec)]]
        return 200, answer, "V2beta1ListPipelineVersionsResponse"

    def _get_pipeline(self, rec: Recorded, raw: bytes, ctype: str, pid: str) -> tuple[int, Any, str]:
        if pid not in self.pipelines:
            raise StandinError(404, f"Pipeline {pid} not found")
        return 200, self.pipelines[pid], "V2beta1Pipeline"

    def _get_version(self, rec: Recorded, raw: bytes, ctype: str, pid: str, vid: str) -> tuple[int, Any, str]:
        version = self.versions.get(vid)
        if version is None or version["pipeline_id"] != pid:
            raise StandinError(404, f"Pipeline version {vid} of pipeline {pid} not found")
        return 200, self._public(version), "V2beta1PipelineVersion"

    def _list_experiments(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, str]:
        preds = self._filter(rec)
        found = [e for e in self.experiments.values()
                 if self._matches(e, preds) and self._in_namespace(e, rec.query.get("namespace"), False)]
        answer: dict[str, Any] = {"total_size": len(found)}
        if found:
            answer["experiments"] = found[:self._page_size(rec)]
        return 200, answer, "V2beta1ListExperimentsResponse"

    def _create_experiment(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, str]:
        body = self._json_body(rec, raw, ctype, "V2beta1Experiment")
        name = body.get("display_name", "")
        if not name:
            raise _bad("Experiment name is empty. Please specify a valid experiment name.")
        namespace = body.get("namespace", "")
        if self.multi_user and not namespace:
            raise _bad("Invalid input error: Experiment has no namespace (multi-user mode)")
        if any(e["display_name"] == name and e.get("namespace", "") == namespace for e in self.experiments.values()):
            raise StandinError(409, f"Failed to create a new experiment: experiment {name!r} already exists")
        experiment = {"experiment_id": str(uuid.uuid4()), "display_name": name, "created_at": _now(),
                      "storage_state": "AVAILABLE", "namespace": namespace}
        if body.get("description"):
            experiment["description"] = body["description"]
        self.experiments[experiment["experiment_id"]] = experiment
        return 200, experiment, "V2beta1Experiment"

    def _get_experiment(self, rec: Recorded, raw: bytes, ctype: str, eid: str) -> tuple[int, Any, str]:
        if eid not in self.experiments:
            raise StandinError(404, f"Experiment {eid} not found")
        return 200, self.experiments[eid], "V2beta1Experiment"

    def _check_source(self, body: dict[str, Any]) -> dict[str, Any]:
        """The pipeline version a run / recurring run references, and its parameters checked against it."""
        has_ref, has_spec = "pipeline_version_reference" in body, "pipeline_spec" in body
        if has_ref == has_spec:
            raise _bad("Please specify exactly one of pipeline_version_reference and pipeline_spec")
        if has_spec:
            raise _bad("the stand-in takes runs of uploaded pipeline versions (pipeline_version_reference) only")
        ref = body["pipeline_version_reference"]
        version = self.versions.get(ref.get("pipeline_version_id", ""))
        if version is None or version["pipeline_id"] != ref.get("pipeline_id"):
            raise StandinError(404, f"Pipeline version {ref.get('pipeline_version_id')!r} of pipeline "
                                    f"{ref.get('pipeline_id')!r} not found")
        experiment_id = body.get("experiment_id", "")
        if experiment_id not in self.experiments:
            raise StandinError(404, f"Experiment {experiment_id!r} not found")
        inputs = version["pipeline_spec"].get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        params = body.get("runtime_config", {}).get("parameters", {})
        for name, value in params.items():
            if name not in inputs:
                raise _bad(f"runtime_config.parameters: {name!r} is not a parameter of the pipeline version")
            kind = inputs[name]["parameterType"]
            if (isinstance(value, bool) and kind != "BOOLEAN") or not isinstance(value, _PARAMETER_JSON[kind]):
                raise _bad(f"runtime_config.parameters.{name}: {json.dumps(value)} is not a {kind}")
        for name, spec in inputs.items():
            if name not in params and "defaultValue" not in spec and not spec.get("isOptional"):
                raise _bad(f"runtime_config.parameters: required parameter {name!r} is missing")
        return version

    def _create_run(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, str]:
        body = self._json_body(rec, raw, ctype, "V2beta1Run")
        if not body.get("display_name"):
            raise _bad("The run name is empty. Please specify a valid name.")
        self._check_source(body)
        run = {**body, "run_id": str(uuid.uuid4()), "created_at": _now(), "scheduled_at": _now(),
               "state": "PENDING", "storage_state": "AVAILABLE"}
        self.runs[run["run_id"]] = run
        return 200, run, "V2beta1Run"

    def _get_run(self, rec: Recorded, raw: bytes, ctype: str, rid: str) -> tuple[int, Any, str]:
        if rid not in self.runs:
            raise StandinError(404, f"Run {rid} not found")
        return 200, self.runs[rid], "V2beta1Run"

    def _create_recurring_run(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, str]:
        body = self._json_body(rec, raw, ctype, "V2beta1RecurringRun")
        if not body.get("display_name"):
            raise _bad("The recurring run name is empty. Please specify a valid name.")
        self._check_source(body)
        concurrency = body.get("max_concurrency", "0")
        if not re.fullmatch(r"-?\d+", concurrency) or not 1 <= int(concurrency) <= 10:
            raise _bad(f"The max concurrency of the recurring run is out of range. Support 1-10. Received "
                       f"{concurrency}.")
        trigger = body.get("trigger", {})
        if len(trigger) != 1:
            raise _bad("trigger: specify exactly one of cron_schedule and periodic_schedule")
        if "cron_schedule" in trigger:
            cron = trigger["cron_schedule"].get("cron", "")
            if not cron.startswith("@") and len(cron.split()) not in (5, 6):
                raise _bad(f"Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). "
                           f"Error: expected 5 to 6 fields, found {len(cron.split())}: {cron}")
        elif int(trigger["periodic_schedule"].get("interval_second", "0") or 0) < 1:
            raise _bad("Found invalid period schedule interval. Set at interval to least 1 second.")
        if body.get("mode") not in ("ENABLE", "DISABLE"):
            raise _bad(f"mode: expected ENABLE or DISABLE, got {body.get('mode')!r}")
        namespace = self.experiments[body["experiment_id"]].get("namespace", "")
        recurring = {**body, "recurring_run_id": str(uuid.uuid4()), "created_at": _now(), "updated_at": _now(),
                     "status": "ENABLED" if body["mode"] == "ENABLE" else "DISABLED", "namespace": namespace}
        self.recurring_runs[recurring["recurring_run_id"]] = recurring
        return 200, recurring, "V2beta1RecurringRun"

    def _get_recurring_run(self, rec: Recorded, raw: bytes, ctype: str, rid: str) -> tuple[int, Any, str]:
        if rid not in self.recurring_runs:
            raise StandinError(404, f"Recurring run {rid} not found")
        return 200, self.recurring_runs[rid], "V2beta1RecurringRun"
