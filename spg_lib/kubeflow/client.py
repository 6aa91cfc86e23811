"""Submit a compiled pipeline to a Kubeflow Pipelines API server, once or on a cron schedule, through `kfp.Client`.

Environment (read by `settings_from_env`):
  KFP_ENDPOINT     the KFP API server, e.g. ``http://localhost:8888`` (``kubectl port-forward -n kubeflow
                   svc/ml-pipeline 8888:8888``) or ``https://kubeflow.example.com/pipeline`` (required)
  KFP_NAMESPACE    the profile namespace of a multi-user deployment (default ``kubeflow``; not sent to a
                   single-user server)
  KFP_TOKEN        bearer token sent with every request, or
  KFP_TOKEN_FILE   a file holding it (e.g. a projected service-account token)

`submit_run` and `schedule_run` check everything that can be checked locally first — the environment, the package,
every parameter against the package's root ``inputDefinitions`` (names, required ones, types), the cron
expression, ``max_concurrency`` — then GET ``/apis/v2beta1/healthz`` with a short timeout, and only then send
anything that changes the server: the pipeline (or a new version of the pipeline of that name), the experiment
(get or create), the run or recurring run referencing that pipeline version. Bad input is one `InputError` line
naming the variable, parameter or field; a server that refuses a request is one `KfpError` line with the HTTP
status and the server's message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

import yaml

from spg_lib.io import InputError, MissingInputError

from .cron import validate_cron

__all__ = [
    "DEFAULT_NAMESPACE",
    "ENV_ENDPOINT",
    "ENV_NAMESPACE",
    "ENV_TOKEN",
    "ENV_TOKEN_FILE",
    "HEALTH_TIMEOUT_S",
    "MAX_CONCURRENCY",
    "Connection",
    "KfpError",
    "KfpSettings",
    "PipelinePackage",
    "Submission",
    "check_endpoint",
    "check_parameters",
    "connect",
    "pipeline_parameters",
    "read_package",
    "schedule_run",
    "settings_from_env",
    "submit_run",
]

ENV_ENDPOINT = "KFP_ENDPOINT"
ENV_NAMESPACE = "KFP_NAMESPACE"
ENV_TOKEN = "KFP_TOKEN"
ENV_TOKEN_FILE = "KFP_TOKEN_FILE"
DEFAULT_NAMESPACE = "kubeflow"
HEALTH_TIMEOUT_S = 5.0
HEALTHZ_PATH = "/apis/v2beta1/healthz"
#: The API server refuses a recurring run's max_concurrency outside [1, 10].
MAX_CONCURRENCY = 10

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # a Kubernetes namespace (RFC 1123 label)
_INTEGER = re.compile(r"[+-]?\d+")
_MAX_NAME = 100  # the API server's limit on pipeline and version names

T = TypeVar("T")


class KfpError(InputError):
    """The KFP API server could not be reached or refused a request (one line: endpoint, request, status, message)."""


# ----------------------------------------------------------------------------------------------------------------
# settings


@dataclasses.dataclass(frozen=True)
class KfpSettings:
    """Where the KFP API server is and how to authenticate (from the environment: `settings_from_env`)."""

    endpoint: str
    namespace: str = DEFAULT_NAMESPACE
    token: str | None = dataclasses.field(default=None, repr=False)


def _check_endpoint_url(url: str, source: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"{source} {url!r}: expected the http:// or https:// URL of the KFP API server, e.g. "
                         "http://localhost:8888 (kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888)")
    return url.rstrip("/")


def _check_namespace(namespace: str, source: str) -> str:
    if len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace):
        raise InputError(f"{source} {namespace!r}: not a Kubernetes namespace (lower-case letters, digits and '-', "
                         "at most 63 characters)")
    return namespace


def settings_from_env(environ: Mapping[str, str] | None = None) -> KfpSettings:
    """KFP_ENDPOINT, KFP_NAMESPACE and KFP_TOKEN / KFP_TOKEN_FILE, checked; nothing is sent.

    Raises:
        InputError: one line naming the variable (missing endpoint, not a URL, both token variables, a token
            file that does not exist or is empty, a namespace that is not a Kubernetes name).
    """
    env = os.environ if environ is None else environ
    endpoint = env.get(ENV_ENDPOINT, "").strip()
    if not endpoint:
        raise InputError(f"{ENV_ENDPOINT} is not set: export {ENV_ENDPOINT}=<URL of the KFP API server>, e.g. "
                         "http://localhost:8888 after kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888")
    endpoint = _check_endpoint_url(endpoint, ENV_ENDPOINT)
    namespace = _check_namespace(env.get(ENV_NAMESPACE, "").strip() or DEFAULT_NAMESPACE, ENV_NAMESPACE)
    token = env.get(ENV_TOKEN, "").strip() or None
    token_file = env.get(ENV_TOKEN_FILE, "").strip()
    if token and token_file:
        raise InputError(f"both {ENV_TOKEN} and {ENV_TOKEN_FILE} are set; set one of them")
    if token_file:
        path = Path(token_file)
        if not path.is_file():
            raise MissingInputError(f"{ENV_TOKEN_FILE} {token_file}: no such file")
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{ENV_TOKEN_FILE} {token_file}: cannot read it ({exc})") from None
        if not token:
            raise InputError(f"{ENV_TOKEN_FILE} {token_file}: the file is empty (expected a bearer token)")
    return KfpSettings(endpoint=endpoint, namespace=namespace, token=token)


# ----------------------------------------------------------------------------------------------------------------
# the compiled package and its parameters

PARAMETER_TYPES: dict[str, str] = {
    "STRING": "a string",
    "NUMBER_INTEGER": "an integer",
    "NUMBER_DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "LIST": "a JSON list",
    "STRUCT": "a JSON object",
}


@dataclasses.dataclass(frozen=True)
class PipelinePackage:
    """A compiled pipeline (KFP IR YAML): its name and its root parameters (name -> parameterType)."""

    path: Path
    name: str
    parameters: dict[str, str]
    required: frozenset[str]  # parameters without a default


def read_package(package_path: str | os.PathLike[str]) -> PipelinePackage:
    """Read the IR YAML's ``pipelineInfo.name`` and ``root.inputDefinitions.parameters``.

    A package compiled with kfp-kubernetes has a second YAML document (the platform spec); only the first one,
    the pipeline spec, is read here.
    """
    path = Path(package_path)
    if path.suffix not in (".yaml", ".yml"):
        raise InputError(f"pipeline package {path}: expected the compiled IR YAML (.yaml or .yml)")
    if not path.is_file():
        raise MissingInputError(f"pipeline package {path} does not exist")
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"pipeline package {path}: not valid YAML ({' '.join(str(exc).split())})") from None
    spec = docs[0] if docs else None
    if not isinstance(spec, dict) or not isinstance(spec.get("root"), dict) or "pipelineInfo" not in spec:
        raise InputError(f"pipeline package {path}: not a compiled KFP pipeline (no root / pipelineInfo)")
    name = (spec.get("pipelineInfo") or {}).get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"pipeline package {path}: pipelineInfo.name is missing")
    params = ((spec["root"].get("inputDefinitions") or {}).get("parameters")) or {}
    if not isinstance(params, dict):
        raise InputError(f"pipeline package {path}: root.inputDefinitions.parameters is not a mapping")
    types: dict[str, str] = {}
    required = set()
    for pname, pdef in params.items():
        kind = pdef.get("parameterType") if isinstance(pdef, dict) else None
        if kind not in PARAMETER_TYPES:
            raise InputError(f"pipeline package {path}: parameter {pname!r} has parameterType {kind!r}, expected "
                             f"one of {', '.join(PARAMETER_TYPES)} (a KFP v2 IR)")
        types[str(pname)] = kind
        if "defaultValue" not in pdef and not pdef.get("isOptional", False):
            required.add(str(pname))
    return PipelinePackage(path=path, name=name, parameters=types, required=frozenset(required))


def pipeline_parameters(package_path: str | os.PathLike[str]) -> dict[str, str]:
    """Root parameters of a compiled pipeline: name -> parameterType (STRING, NUMBER_INTEGER, ...)."""
    return read_package(package_path).parameters


def _coerce(name: str, kind: str, value: Any) -> Any:
    """``value`` (a CLI string, or already typed) as the JSON value of a ``kind`` parameter."""
    def bad(got: Any = value) -> InputError:
        return InputError(f"pipeline parameter {name!r} ({kind}): expected {PARAMETER_TYPES[kind]}, got {got!r}")

    if kind == "STRING":
        if not isinstance(value, str):
            raise bad()
        return value
    if kind == "NUMBER_INTEGER":
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if kind == "NUMBER_DOUBLE":
        number: Any = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise bad() from None
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise bad()  # JSON has no NaN / infinity
        return number
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise bad()
    wanted = list if kind == "LIST" else dict
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"pipeline parameter {name!r} ({kind}): expected {PARAMETER_TYPES[kind]}, got "
                             f"{value!r} ({exc.msg} at character {exc.pos})") from None
    if not isinstance(parsed, wanted):
        raise bad()
    return parsed


def check_parameters(package: PipelinePackage | str | os.PathLike[str], params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against the package's root parameters and converted to their JSON types.

    CLI strings are converted per parameterType: NUMBER_INTEGER ``3``, NUMBER_DOUBLE ``1e-4``, BOOLEAN
    ``true``/``false``, STRING as given, LIST / STRUCT as JSON. A parameter without a default must be given.

    Raises:
        InputError: one line naming the parameter (unknown — with the valid ones —, missing, or of the wrong type).
    """
    pkg = package if isinstance(package, PipelinePackage) else read_package(package)
    valid = ", ".join(f"{n} ({t})" for n, t in sorted(pkg.parameters.items())) or "none"
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in pkg.parameters:
            raise InputError(f"unknown pipeline parameter {name!r} for pipeline {pkg.name!r} ({pkg.path}); "
                             f"valid parameters: {valid}")
        out[name] = _coerce(name, pkg.parameters[name], value)
    missing = sorted(pkg.required - set(out))
    if missing:
        raise InputError(f"pipeline parameter {missing[0]!r} ({pkg.parameters[missing[0]]}) of pipeline "
                         f"{pkg.name!r} has no default; pass -p {missing[0]}=VALUE")
    return out


def _check_name(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InputError(f"{what} must not be empty")
    if len(value) > _MAX_NAME:
        raise InputError(f"{what} {value[:20]!r}...: at most {_MAX_NAME} characters (the API server's limit)")
    return value


# ----------------------------------------------------------------------------------------------------------------
# the connection


def check_endpoint(settings: KfpSettings, timeout: float = HEALTH_TIMEOUT_S) -> dict[str, Any]:
    """GET ``/apis/v2beta1/healthz`` once, with ``timeout`` seconds; the server's answer (``multi_user``, ...).

    Raises:
        KfpError: one line naming KFP_ENDPOINT and the URL: unreachable, credentials refused, not a KFP API server.
    """
    url = settings.endpoint + HEALTHZ_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if settings.token:
        request.add_header("Authorization", f"Bearer {settings.token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as kfp.Client: no proxy from the env
    where = f"{ENV_ENDPOINT} {settings.endpoint}"
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise KfpError(f"{where}: GET {url} -> HTTP {exc.code}: the server refused the credentials (set "
                           f"{ENV_TOKEN} or {ENV_TOKEN_FILE} to a valid bearer token)") from None
        raise KfpError(f"{where}: GET {url} -> HTTP {exc.code} {exc.reason}: not a KFP API server at this URL? "
                       "(the ml-pipeline service, or <dashboard>/pipeline)") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KfpError(f"{where}: unreachable (GET {url}: {' '.join(str(reason).split())}); is the KFP API server "
                       "running and the port-forward up?") from None
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict):
        raise KfpError(f"{where}: GET {url} answered {content_type or 'non-JSON content'}, not the KFP health "
                       f"check (a login page? set {ENV_TOKEN} / {ENV_TOKEN_FILE})")
    return answer


@dataclasses.dataclass
class Connection:
    """A `kfp.Client` on a server that answered its health check."""

    settings: KfpSettings
    client: Any  # kfp.Client
    multi_user: bool

    @property
    def namespace(self) -> str | None:
        """The namespace sent with requests: KFP_NAMESPACE on a multi-user server, none on a single-user one."""
        return self.settings.namespace if self.multi_user else None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp.Client prints links and warns about its version range: keep our stdout to our own result."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        yield


def connect(settings: KfpSettings, timeout: float = HEALTH_TIMEOUT_S) -> Connection:
    """Health-check the endpoint (`check_endpoint`), then build a `kfp.Client` on it."""
    health = check_endpoint(settings, timeout)
    multi_user = bool(health.get("multi_user", False))
    import kfp

    # the client's default namespace goes into requests that name none; a single-user server gets none at all
    namespace = settings.namespace if multi_user else DEFAULT_NAMESPACE
    with _quiet():
        client = kfp.Client(host=settings.endpoint, existing_token=settings.token, namespace=namespace)
    return Connection(settings=settings, client=client, multi_user=multi_user)


def _call(conn: Connection, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` with the client's failures as one `KfpError` line."""
    import kfp_server_api
    import urllib3

    where = f"KFP server {conn.settings.endpoint}: {what}"
    try:
        with _quiet():
            return fn(*args, **kwargs)
    except kfp_server_api.ApiException as exc:
        message = ""
        try:
            body = json.loads(exc.body or "")
            message = str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""
        except (ValueError, TypeError):
            message = (exc.body or b"").decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body)
        detail = " ".join(message.split())[:500] or str(exc.reason)
        raise KfpError(f"{where} failed: HTTP {exc.status}: {detail}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise KfpError(f"{where} failed: {' '.join(str(exc).split())}") from None
    except ValueError as exc:  # the client's own checks (e.g. two experiments of one name)
        raise KfpError(f"{where} failed: {' '.join(str(exc).split())}") from None


# ----------------------------------------------------------------------------------------------------------------
# submission


@dataclasses.dataclass(frozen=True)
class Submission:
    """What the server created: ids, and the UI link of the run or recurring run."""

    kind: Literal["run", "recurring_run"]
    pipeline_id: str
    version_id: str
    version_name: str
    experiment_id: str
    run_id: str  # the recurring run's id for kind "recurring_run"
    url: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _equals_filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": name}]})


def _default_version_name(package: PipelinePackage, pipeline_name: str) -> str:
    """``<pipeline>-<UTC time>-<first 8 hex of the package's sha256>``: unique per upload, traceable to the file."""
    digest = hashlib.sha256(package.path.read_bytes()).hexdigest()[:8]
    suffix = f"-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{digest}"
    return pipeline_name[:_MAX_NAME - len(suffix)] + suffix


def _upload(conn: Connection, package: PipelinePackage, pipeline_name: str,
            version_name: str | None) -> tuple[str, str, str]:
    """(pipeline id, version id, version name): a new pipeline, or a new version of the pipeline of that name.

    A new pipeline's first version is created and named (after the pipeline) by the server; ``version_name``
    names the versions uploaded to an existing pipeline.
    """
    client = conn.client
    found = _call(conn, f"looking up pipeline {pipeline_name!r}", client.list_pipelines,
                  filter=_equals_filter(pipeline_name), namespace=conn.namespace, page_size=2)
    pipelines = found.pipelines or []
    if len(pipelines) > 1:
        raise KfpError(f"KFP server {conn.settings.endpoint}: more than one pipeline is named {pipeline_name!r}; "
                       "pass a unique --pipeline-name")
    if not pipelines:
        created = _call(conn, f"uploading pipeline {pipeline_name!r}", client.upload_pipeline,
                        str(package.path), pipeline_name=pipeline_name, namespace=conn.namespace)
        versions = _call(conn, f"listing the versions of pipeline {created.pipeline_id}",
                         client.list_pipeline_versions, created.pipeline_id, page_size=1, sort_by="created_at desc")
        if not versions.pipeline_versions:
            raise KfpError(f"KFP server {conn.settings.endpoint}: pipeline {created.pipeline_id} was uploaded but "
                           "has no version")
        first = versions.pipeline_versions[0]
        return created.pipeline_id, first.pipeline_version_id, first.display_name or first.name or pipeline_name
    pipeline_id = pipelines[0].pipeline_id
    name = version_name or _default_version_name(package, pipeline_name)
    version = _call(conn, f"uploading version {name!r} of pipeline {pipeline_name!r}", client.upload_pipeline_version,
                    str(package.path), name, pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id, name


@dataclasses.dataclass(frozen=True)
class _Prepared:
    settings: KfpSettings
    package: PipelinePackage
    values: dict[str, Any]
    pipeline_name: str


def _prepare(package_path: str | os.PathLike[str], params: Mapping[str, Any], *, pipeline_name: str | None,
             version_name: str | None, experiment: str, run_name: str, namespace: str | None,
             settings: KfpSettings | None, run_what: str) -> _Prepared:
    """Every local check, in one place, before anything is sent."""
    settings = settings or settings_from_env()
    if namespace is not None:
        settings = dataclasses.replace(settings, namespace=_check_namespace(namespace, "namespace"))
    package = read_package(package_path)
    values = check_parameters(package, params)
    name = _check_name(pipeline_name or package.name, "pipeline name")
    if version_name is not None:
        _check_name(version_name, "version name")
    _check_name(experiment, "experiment name")
    _check_name(run_name, run_what)
    return _Prepared(settings, package, values, name)


def _experiment_id(conn: Connection, experiment: str) -> str:
    created = _call(conn, f"getting or creating experiment {experiment!r}", conn.client.create_experiment,
                    name=experiment, namespace=conn.namespace)
    return created.experiment_id


def submit_run(package_path: str | os.PathLike[str], params: Mapping[str, Any], *, pipeline_name: str | None = None,
               version_name: str | None = None, experiment: str, run_name: str, namespace: str | None = None,
               settings: KfpSettings | None = None, service_account: str | None = None) -> Submission:
    """Upload the package (a new pipeline, or a new version of the pipeline named ``pipeline_name``; default:
    the package's pipelineInfo.name), get or create ``experiment`` and create run ``run_name`` of that version
    with ``params`` (CLI strings or typed values, checked by `check_parameters`).

    ``settings`` default to `settings_from_env`; ``namespace`` overrides KFP_NAMESPACE.
    """
    prep = _prepare(package_path, params, pipeline_name=pipeline_name, version_name=version_name,
                    experiment=experiment, run_name=run_name, namespace=namespace, settings=settings,
                    run_what="run name")
    conn = connect(prep.settings)
    pipeline_id, version_id, version = _upload(conn, prep.package, prep.pipeline_name, version_name)
    experiment_id = _experiment_id(conn, experiment)
    run = _call(conn, f"creating run {run_name!r}", conn.client.run_pipeline, experiment_id=experiment_id,
                job_name=run_name, params=prep.values, pipeline_id=pipeline_id, version_id=version_id,
                service_account=service_account)
    return Submission(kind="run", pipeline_id=pipeline_id, version_id=version_id, version_name=version,
                      experiment_id=experiment_id, run_id=run.run_id,
                      url=f"{prep.settings.endpoint}/#/runs/details/{run.run_id}")


def schedule_run(package_path: str | os.PathLike[str], params: Mapping[str, Any], *, cron: str,
                 schedule_name: str, experiment: str, pipeline_name: str | None = None,
                 version_name: str | None = None, max_concurrency: int = 1, no_catchup: bool = True,
                 enabled: bool = True, namespace: str | None = None,
                 settings: KfpSettings | None = None, service_account: str | None = None) -> Submission:
    """As `submit_run`, but a recurring run ``schedule_name`` on the six-field ``cron`` trigger (`validate_cron`):
    at most ``max_concurrency`` runs at once (1-10, the server's range) and, with ``no_catchup``, no backfill of
    the intervals missed while the schedule was disabled or behind.
    """
    cron = validate_cron(cron)
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) \
            or not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise InputError(f"max_concurrency {max_concurrency!r}: must be an integer from 1 to {MAX_CONCURRENCY} "
                         "(the KFP API server's range)")
    prep = _prepare(package_path, params, pipeline_name=pipeline_name, version_name=version_name,
                    experiment=experiment, run_name=schedule_name, namespace=namespace, settings=settings,
                    run_what="schedule name")
    conn = connect(prep.settings)
    pipeline_id, version_id, version = _upload(conn, prep.package, prep.pipeline_name, version_name)
    experiment_id = _experiment_id(conn, experiment)
    # max_concurrency is an int64, which the REST API (and its kfp-server-api model) carries as a string
    recurring = _call(conn, f"creating recurring run {schedule_name!r}", conn.client.create_recurring_run,
                      experiment_id=experiment_id, job_name=schedule_name, cron_expression=cron,
                      max_concurrency=str(max_concurrency), no_catchup=no_catchup, params=prep.values,
                      pipeline_id=pipeline_id, version_id=version_id, enabled=enabled,
                      service_account=service_account)
    return Submission(kind="recurring_run", pipeline_id=pipeline_id, version_id=version_id, version_name=version,
                      experiment_id=experiment_id, run_id=recurring.recurring_run_id,
                      url=f"{prep.settings.endpoint}/#/recurringrun/details/{recurring.recurring_run_id}")
