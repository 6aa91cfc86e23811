"""`spg kfp submit` / `spg kfp schedule` through kfp.Client against the loopback KFP stand-in (tests/kfp_standin.py).

The stand-in is not a KFP server: it answers the v2beta1 endpoints these flows call and checks every request body
strictly against the kfp-server-api models; these tests read back the request bodies it recorded. Bad input must be
one line on stderr, exit code 2, with no request sent at all.
"""

# no `from __future__ import annotations`: KFP reads the component's parameter types from real annotations
import json
import urllib.error
import urllib.request
from pathlib import Path

import kfp
import kfp_server_api
import pytest
from kfp import compiler, dsl

from spg_lib.cli import main
from spg_lib.io import InputError
from spg_lib.kubeflow.client import check_parameters, pipeline_parameters, read_package
from tests.kfp_standin import KfpStandin, check_model
from tests.services import unused_endpoint_url

TOKEN = "s3cr3t-token"


@dsl.component(base_image="python:3.11-slim")
def _train(steps: int, workers: int, lr: float, eubo: bool, tag: str, seeds: list, extra: dict) -> str:
    return f"{tag}:{steps}:{workers}:{lr}:{eubo}:{seeds}:{extra}"


@dsl.pipeline(name="tiny-spg", description="a trivial pipeline with typed parameters")
def _tiny(steps: int, workers: int = 2, lr: float = 1e-4, eubo: bool = False, tag: str = "x",
          seeds: list = [0], extra: dict = {"k": 1}):  # noqa: B006 - KFP takes defaults from the signature
    _train(steps=steps, workers=workers, lr=lr, eubo=eubo, tag=tag, seeds=seeds, extra=extra)


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kfp") / "tiny.yaml"
    compiler.Compiler().compile(_tiny, str(out))
    return out


@pytest.fixture
def standin(monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    for name in ("KFP_TOKEN", "KFP_NAMESPACE", "KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT",
                 "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KFP_TOKEN_FILE", str(token_file))
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))  # not ~/.config
    with KfpStandin(token=TOKEN) as server:
        monkeypatch.setenv("KFP_ENDPOINT", server.url)
        yield server


def _run(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    try:
        rc = main(["kfp", *argv])
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out.strip().splitlines(), captured.err.strip().splitlines()


def _submit(package: Path, *extra: str) -> list[str]:
    return ["submit", "--package", str(package), "--experiment", "spg-exp", "--run-name", "run-1", "-p", "steps=5",
            *extra]


def _schedule(package: Path, *extra: str) -> list[str]:
    return ["schedule", "--package", str(package), "--experiment", "spg-exp", "--schedule-name", "nightly",
            "-p", "steps=5", *extra]


def test_submit_uploads_the_pipeline_and_creates_the_run(standin, package, capsys):
    rc, out, err = _run(capsys, *_submit(package, "-p", "workers=-1", "-p", "lr=2.5e-5", "-p", "eubo=true",
                                         "-p", "tag=007", "-p", 'seeds=[1, 2, "3"]', "-p", 'extra={"a": {"b": null}}'))
    assert rc == 0, err
    summary = json.loads(out[1])
    assert out[0] == summary["url"] == f"{standin.url}/#/runs/details/{summary['run_id']}"
    assert summary["kind"] == "run" and summary["version_name"] == "tiny-spg"

    assert standin.calls()[0].path == "/apis/v2beta1/healthz"  # the health check comes first
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in standin.calls())  # from KFP_TOKEN_FILE
    assert all(r.status == 200 for r in standin.calls())
    (upload,) = standin.calls("POST", "/apis/v2beta1/pipelines/upload")
    assert upload.query["name"] == "tiny-spg" and upload.files["uploadfile"] == package.read_bytes()
    (experiment,) = standin.calls("POST", "/apis/v2beta1/experiments")
    assert experiment.body["display_name"] == "spg-exp"

    (run,) = standin.calls("POST", "/apis/v2beta1/runs")
    assert isinstance(run.model, kfp_server_api.V2beta1Run)
    assert run.body["display_name"] == "run-1"
    assert run.body["experiment_id"] == summary["experiment_id"] == next(iter(standin.experiments))
    assert run.body["pipeline_version_reference"] == {"pipeline_id": summary["pipeline_id"],
                                                      "pipeline_version_id": summary["version_id"]}
    assert standin.versions[summary["version_id"]]["pipeline_id"] == summary["pipeline_id"]
    params = run.body["runtime_config"]["parameters"]
    assert params == {"steps": 5, "workers": -1, "lr": 2.5e-5, "eubo": True, "tag": "007", "seeds": [1, 2, "3"],
                      "extra": {"a": {"b": None}}}
    assert type(params["steps"]) is int and "pipeline_spec" not in run.body  # a run of the uploaded version


def test_a_second_submit_adds_a_version_and_reuses_the_experiment(standin, package, capsys):
    rc, out, err = _run(capsys, *_submit(package))
    assert rc == 0, err
    first = json.loads(out[1])
    rc, out, err = _run(capsys, *_submit(package, "--version-name", "v2", "--run-name", "run-2"))
    assert rc == 0, err
    second = json.loads(out[1])

    (version_upload,) = standin.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    assert version_upload.query == {"name": "v2", "pipelineid": first["pipeline_id"]}
    assert len(standin.calls("POST", "/apis/v2beta1/pipelines/upload")) == 1
    assert len(standin.calls("POST", "/apis/v2beta1/experiments")) == 1  # found by name the second time
    assert second["pipeline_id"] == first["pipeline_id"] and second["experiment_id"] == first["experiment_id"]
    assert second["version_id"] != first["version_id"] and second["version_name"] == "v2"
    runs = standin.calls("POST", "/apis/v2beta1/runs")
    assert [r.body["pipeline_version_reference"]["pipeline_version_id"] for r in runs] == \
        [first["version_id"], second["version_id"]]

    # the server refuses a version name that exists: one line with the status and the server's message
    rc, out, err = _run(capsys, *_submit(package, "--version-name", "v2", "--run-name", "run-3"))
    assert rc == 2 and len(err) == 1 and out == [], err
    assert "uploading version 'v2' of pipeline 'tiny-spg' failed: HTTP 409" in err[0] and "already exists" in err[0]
    assert len(standin.calls("POST", "/apis/v2beta1/runs")) == 2


def test_schedule_creates_a_recurring_run(standin, package, capsys):
    rc, out, err = _run(capsys, *_schedule(package, "--cron", "0 0 3 * * *", "-p", "eubo=false"))
    assert rc == 0, err
    summary = json.loads(out[1])
    assert summary["kind"] == "recurring_run"
    assert out[0] == f"{standin.url}/#/recurringrun/details/{summary['run_id']}"
    (rec,) = standin.calls("POST", "/apis/v2beta1/recurringruns")
    assert isinstance(rec.model, kfp_server_api.V2beta1RecurringRun)
    body = rec.body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert body["max_concurrency"] == "1" and body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert body["display_name"] == "nightly" and body["experiment_id"] == summary["experiment_id"]
    assert body["pipeline_version_reference"] == {"pipeline_id": summary["pipeline_id"],
                                                  "pipeline_version_id": summary["version_id"]}
    assert body["runtime_config"]["parameters"] == {"steps": 5, "eubo": False}
    assert standin.recurring_runs[summary["run_id"]]["status"] == "ENABLED"
    assert standin.calls("POST", "/apis/v2beta1/runs") == []  # a schedule, not a run


def test_schedule_options(standin, package, capsys):
    rc, _, err = _run(capsys, *_schedule(package, "--cron", "0 */15 * * * *", "--max-concurrency", "3", "--catchup",
                                         "--disabled"))
    assert rc == 0, err
    (rec,) = standin.calls("POST", "/apis/v2beta1/recurringruns")
    assert rec.body["max_concurrency"] == "3" and rec.body["no_catchup"] is False and rec.body["mode"] == "DISABLE"
    assert rec.body["trigger"]["cron_schedule"]["cron"] == "0 */15 * * * *"


@pytest.mark.parametrize("multi_user", [True, False])
def test_namespace_goes_to_a_multi_user_server_only(multi_user, standin, package, capsys, monkeypatch):
    standin.multi_user = multi_user
    monkeypatch.setenv("KFP_NAMESPACE", "team-a")
    rc, _, err = _run(capsys, *_submit(package))
    assert rc == 0, err
    expected = "team-a" if multi_user else ""
    (upload,) = standin.calls("POST", "/apis/v2beta1/pipelines/upload")
    assert upload.query.get("namespace", "") == expected
    (experiment,) = standin.calls("POST", "/apis/v2beta1/experiments")
    assert experiment.body.get("namespace", "") == expected
    assert {r.query.get("namespace", "") for r in standin.calls("GET", "/apis/v2beta1/experiments")} == {expected}


# --------------------------------------------------------------------------------------------------- bad input

BAD = {
    "five-field cron": (("schedule", "--cron", "0 3 * * *"), {},
                        "KFP cron has 6 fields (seconds first); '0 3 * * *' would be read as seconds=0 minute=3 "
                        "hour=* day-of-month=* month=*, i.e. every hour; did you mean '0 0 3 * * *'?"),
    "cron field": (("schedule", "--cron", "0 0 3 * * 8"), {}, "cron '0 0 3 * * 8': day-of-week field '8'"),
    "unknown parameter": (("submit", "-p", "learning_rate=1e-4"), {},
                          "unknown pipeline parameter 'learning_rate' for pipeline 'tiny-spg'"),
    "integer parameter": (("submit", "-p", "workers=three"), {},
                          "pipeline parameter 'workers' (NUMBER_INTEGER): expected an integer, got 'three'"),
    "integer parameter 2.0": (("submit", "-p", "workers=2.0"), {},
                              "pipeline parameter 'workers' (NUMBER_INTEGER): expected an integer, got '2.0'"),
    "number parameter": (("submit", "-p", "lr=fast"), {},
                         "pipeline parameter 'lr' (NUMBER_DOUBLE): expected a number, got 'fast'"),
    "boolean parameter": (("submit", "-p", "eubo=yes"), {},
                          "pipeline parameter 'eubo' (BOOLEAN): expected true or false, got 'yes'"),
    "list parameter": (("submit", "-p", "seeds=[1,"), {}, "pipeline parameter 'seeds' (LIST): expected a JSON list"),
    "struct parameter": (("submit", "-p", "extra=[1]"), {},
                         "pipeline parameter 'extra' (STRUCT): expected a JSON object, got '[1]'"),
    "parameter twice": (("submit", "-p", "steps=6"), {}, "-p steps: given twice ('5' and '6')"),
    "not NAME=VALUE": (("submit", "-p", "steps"), {}, "-p 'steps': expected NAME=VALUE"),
    "missing KFP_ENDPOINT": (("submit",), {"KFP_ENDPOINT": None}, "KFP_ENDPOINT is not set"),
    "KFP_ENDPOINT not a URL": (("submit",), {"KFP_ENDPOINT": "localhost:8888"},
                               "KFP_ENDPOINT 'localhost:8888': expected the http:// or https:// URL"),
    "token file missing": (("submit",), {"KFP_TOKEN_FILE": "/nonexistent/token"},
                           "KFP_TOKEN_FILE /nonexistent/token: no such file"),
    "both tokens": (("submit",), {"KFP_TOKEN": "x"}, "both KFP_TOKEN and KFP_TOKEN_FILE are set"),
    "bad namespace": (("submit",), {"KFP_NAMESPACE": "Team_A"}, "KFP_NAMESPACE 'Team_A': not a Kubernetes namespace"),
    "max concurrency": (("schedule", "--cron", "0 0 3 * * *", "--max-concurrency", "11"), {},
                        "max_concurrency 11: must be an integer from 1 to 10"),
    "override with a package": (("submit", "-o", "train.seed=1"), {}, "-o train.seed=1: overrides go with --config"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_before_any_request(case, standin, package, capsys, monkeypatch):
    argv, env, message = BAD[case]
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    base = _submit(package) if argv[0] == "submit" else _schedule(package)
    rc, out, err = _run(capsys, *base, *argv[1:])
    assert rc == 2 and len(err) == 1 and out == [], err
    assert message in err[0]
    assert err[0].startswith("spg kfp: error: ")
    assert standin.calls() == []  # not even the health check


def test_missing_required_parameter(standin, package, capsys):
    rc, _, err = _run(capsys, "submit", "--package", str(package), "--experiment", "e", "--run-name", "r")
    assert rc == 2 and len(err) == 1, err
    assert "pipeline parameter 'steps' (NUMBER_INTEGER) of pipeline 'tiny-spg' has no default; pass -p steps=VALUE" \
        in err[0]
    assert standin.calls() == []


@pytest.mark.parametrize("argv, message", [
    ((), "give either --package YAML"),
    (("--package", "missing.yaml"), "pipeline package missing.yaml does not exist"),
    (("--package", "p.yaml", "--config", "params.yaml"), "give either --package YAML"),
])
def test_package_or_config(argv, message, standin, capsys):
    rc, _, err = _run(capsys, "submit", "--experiment", "e", "--run-name", "r", *argv)
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert standin.calls() == []


def test_unreachable_endpoint(standin, package, capsys, monkeypatch):
    closed = unused_endpoint_url()
    monkeypatch.setenv("KFP_ENDPOINT", closed)
    rc, out, err = _run(capsys, *_schedule(package, "--cron", "0 0 3 * * *"))
    assert rc == 2 and len(err) == 1 and out == [], err
    assert err[0].startswith(f"spg kfp: error: KFP_ENDPOINT {closed}: unreachable (GET {closed}/apis/v2beta1/healthz")
    assert standin.calls() == []


def test_refused_token_stops_at_the_health_check(standin, package, capsys, monkeypatch, tmp_path):
    (tmp_path / "wrong").write_text("not-the-token")
    monkeypatch.setenv("KFP_TOKEN_FILE", str(tmp_path / "wrong"))
    rc, _, err = _run(capsys, *_submit(package))
    assert rc == 2 and len(err) == 1, err
    assert "HTTP 401: the server refused the credentials" in err[0]
    assert [(r.method, r.path, r.status) for r in standin.calls()] == [("GET", "/apis/v2beta1/healthz", 401)]


def test_submit_with_config_compiles_and_uploads_under_kfp_pipeline_name(standin, capsys):
    rc, _, err = _run(capsys, "submit", "--config", "params.yaml", "-o", "kfp.pipeline_name=spg-ci",
                        "--experiment", "e", "--run-name", "r", "-p", "min_gain=1.5")
    assert rc == 0, err
    (upload,) = standin.calls("POST", "/apis/v2beta1/pipelines/upload")
    assert upload.query["name"] == "spg-ci"
    (run,) = standin.calls("POST", "/apis/v2beta1/runs")
    assert run.body["runtime_config"]["parameters"] == {"min_gain": 1.5}


def test_submit_with_a_bad_config_key_sends_nothing(standin, capsys):
    rc, _, err = _run(capsys, "submit", "--config", "params.yaml", "-o", "train.optim.lrr=1", "--experiment", "e",
                      "--run-name", "r")
    assert rc == 2 and len(err) == 1 and "'train.optim.lrr' is not a path of params.yaml" in err[0], err
    assert standin.calls() == []


# ------------------------------------------------------------------------------------------- library functions


def test_parameters_of_the_package(package):
    assert pipeline_parameters(package) == {"steps": "NUMBER_INTEGER", "workers": "NUMBER_INTEGER",
                                            "lr": "NUMBER_DOUBLE", "eubo": "BOOLEAN", "tag": "STRING",
                                            "seeds": "LIST", "extra": "STRUCT"}
    assert read_package(package).required == {"steps"}
    assert check_parameters(package, {"steps": "-3", "lr": "1", "eubo": "FALSE", "tag": "", "seeds": "[]"}) == \
        {"steps": -3, "lr": 1.0, "eubo": False, "tag": "", "seeds": []}
    assert check_parameters(package, {"steps": 4, "lr": 0.5, "eubo": True}) == {"steps": 4, "lr": 0.5, "eubo": True}
    for bad in ({"steps": "1.5"}, {"steps": True}, {"steps": 1, "lr": "nan"}, {"steps": 1, "tag": 7}):
        with pytest.raises(InputError):
            check_parameters(package, bad)


# ------------------------------------------------------------------------------------- the stand-in's strictness


def _post(standin: KfpStandin, path: str, body: object, token: str | None = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(standin.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["message"]


@pytest.mark.parametrize("path, body, status, message", [
    ("/apis/v2beta1/runs", {"display_name": "r", "bogus": 1}, 400, "unknown field 'bogus' of V2beta1Run"),
    ("/apis/v2beta1/runs", {"display_name": 5}, 400, "body.display_name: expected a string, got 5"),
    ("/apis/v2beta1/runs", {"display_name": "r", "run_id": "x"}, 400, "body.run_id is output only"),
    ("/apis/v2beta1/runs", {"display_name": "r", "runtime_config": {"parameters": [1]}}, 400,
     "body.runtime_config.parameters: expected an object"),
    ("/apis/v2beta1/recurringruns", {"display_name": "n", "max_concurrency": 1}, 400,
     "body.max_concurrency: expected a string, got 1"),
    ("/apis/v2beta1/recurringruns", {"display_name": "n", "mode": "ON"}, 400, '"ON" is not a RecurringRunMode'),
    ("/apis/v2beta1/recurringruns", {"display_name": "n", "trigger": {"cron_schedule": {"cron": 5}}}, 400,
     "body.trigger.cron_schedule.cron: expected a string"),
    ("/apis/v2beta1/experiments", {"display_name": "e", "nmespace": "x"}, 400, "unknown field 'nmespace'"),
    ("/apis/v2beta1/runs?dry_run=1", {"display_name": "r"}, 400, "unknown query parameter 'dry_run'"),
    ("/apis/v2beta1/runs", {"display_name": "r", "pipeline_version_reference": {"pipeline_id": "p",
                                                                                "pipeline_version_id": "v"}},
     404, "Pipeline version 'v' of pipeline 'p' not found"),
])
def test_the_standin_refuses_what_the_models_refuse(standin, path, body, status, message):
    got_status, got_message = _post(standin, path, body)
    assert (got_status, message in got_message) == (status, True), got_message
    assert standin.runs == {} and standin.recurring_runs == {} and standin.experiments == {}


def test_the_standin_requires_the_token(standin):
    assert _post(standin, "/apis/v2beta1/experiments", {"display_name": "e"}, token=None)[0] == 401
    assert _post(standin, "/apis/v2beta1/experiments", {"display_name": "e"})[0] == 200


def test_check_model_takes_proto_and_camel_case_names():
    assert check_model({"pipelineId": "p", "pipeline_version_id": "v"}, "V2beta1PipelineVersionReference") == \
        {"pipeline_id": "p", "pipeline_version_id": "v"}


@pytest.mark.parametrize(("params", "message"), [
    (("task=nosuch",), "data.task (pipeline parameter task): unknown task 'nosuch'"),
    (("method=nosuch",), "pipeline parameters"),
    (('overrides=["train.optim.lrr=1"]',), "'train.optim.lrr' is not a path of params.yaml"),
    (("neg_estimator=elbo2",), "neg_estimator"),
])
@pytest.mark.parametrize("source", ["config", "package"])
def test_run_configuration_is_resolved_before_anything_is_sent(params, message, source, standin, capsys):
    """The first task's configuration check, run here: unknown task / method / estimator, a bad override."""
    from pipelines.compile import COMPILED

    target = ("--config", "params.yaml") if source == "config" else ("--package", str(COMPILED / "default.yaml"))
    argv = ["submit", *target, "--experiment", "e", "--run-name", "r"]
    for item in params:
        argv += ["-p", item]
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert standin.calls() == []


def test_service_account_reaches_run_and_recurring_run(standin, package, capsys):
    rc, _, err = _run(capsys, *_submit(package, "--service-account", "spg-pipeline-runner"))
    assert rc == 0, err
    rc, _, err = _run(capsys, *_schedule(package, "--cron", "0 0 3 * * *", "--service-account", "spg-pipeline-runner"))
    assert rc == 0, err
    (run,) = standin.calls("POST", "/apis/v2beta1/runs")
    (rec,) = standin.calls("POST", "/apis/v2beta1/recurringruns")
    assert run.body["service_account"] == rec.body["service_account"] == "spg-pipeline-runner"
