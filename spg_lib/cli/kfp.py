"""`spg kfp`: the Kubeflow pipeline — compile it, run it locally, submit it to a KFP server, schedule retraining.

    spg kfp compile --config params.yaml --out pipeline.yaml
    spg kfp run-local --config params.yaml -o train.max_steps=20
    spg kfp submit --config params.yaml --experiment spg --run-name sudoku-1 -p min_gain=1.0
    spg kfp submit --package pipeline.yaml --experiment spg --run-name sudoku-2 --version-name v2
    spg kfp schedule --package pipeline.yaml --experiment spg --schedule-name nightly --cron "0 0 3 * * *"

submit / schedule talk to the KFP API server named by KFP_ENDPOINT (e.g. http://localhost:8888 after
`kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888`), with KFP_NAMESPACE (multi-user profile namespace,
default kubeflow) and KFP_TOKEN or KFP_TOKEN_FILE (bearer token). With --config the pipeline is compiled to a
temporary file first and uploaded under kfp.pipeline_name; with --package it is uploaded under --pipeline-name
(default: the package's pipelineInfo.name). A new pipeline is created on the first upload; later uploads add a
version (--version-name, default <pipeline>-<UTC time>-<sha256 prefix>). -p NAME=VALUE sets a pipeline parameter
(typed by the package: integers, numbers, true/false, strings, JSON lists/objects).

KFP cron expressions have six fields, seconds first (`0 0 3 * * *` = 03:00:00 daily); a five-field crontab line
is refused with the six-field form. Schedules run at most --max-concurrency runs at once (default 1) and do not
back-fill missed intervals unless --catchup.

Output of submit / schedule: line 1 the run's (or recurring run's) UI link, line 2 a JSON summary (kind,
pipeline_id, version_id, version_name, experiment_id, run_id, url). Exit codes: 0 ok; 2 bad input (unknown or
mistyped parameter, malformed cron, missing KFP_ENDPOINT, unreachable endpoint, refused request), each one line
before anything is submitted where it can be checked locally.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from spg_lib.cli.options import config_path, overrides_of
from spg_lib.cli.options import configure as add_options
from spg_lib.io import InputError


def _add_target(p: argparse.ArgumentParser) -> None:
    """--package | --config [-o ...], parameters and names shared by submit and schedule."""
    add_options(p)  # --config, -o
    p.add_argument("--package", default=None, metavar="YAML",
                   help="compiled pipeline (IR YAML) to upload, instead of compiling --config")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="pipeline parameter (repeatable), typed by the package's parameter definitions")
    p.add_argument("--experiment", required=True, metavar="NAME", help="experiment (created if missing)")
    p.add_argument("--pipeline-name", default=None, metavar="NAME",
                   help="upload name with --package (default: the package's pipelineInfo.name); with --config it "
                        "is kfp.pipeline_name (-o kfp.pipeline_name=NAME)")
    p.add_argument("--service-account", default=None, metavar="NAME",
                   help="Kubernetes service account the run's pods use (k8s/: spg-pipeline-runner, which may "
                        "launch TrainJobs; default: the KFP profile's)")
    p.add_argument("--version-name", default=None, metavar="NAME",
                   help="name of the new version of an existing pipeline (default: <pipeline>-<UTC time>-<sha256 "
                        "prefix>)")


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="kfp_command", metavar="SUBCOMMAND", required=True)

    c = sub.add_parser("compile", help="compile the pipeline for a configuration file into IR YAML")
    add_options(c)
    c.add_argument("--out", required=True, metavar="PATH", help="IR YAML to write (atomically)")

    r = sub.add_parser("run-local", help="run the whole pipeline here with kfp.local (SubprocessRunner)")
    add_options(r)
    r.add_argument("--workdir", default=None, metavar="DIR", help="pipeline root, checkpoints and MLflow store "
                                                                 "(default: runs/kfp-local)")

    s = sub.add_parser("submit", help="upload the pipeline (or a new version) and create a run")
    _add_target(s)
    s.add_argument("--run-name", required=True, metavar="NAME", help="display name of the run")

    sc = sub.add_parser("schedule", help="upload the pipeline (or a new version) and create a recurring run")
    _add_target(sc)
    sc.add_argument("--schedule-name", required=True, metavar="NAME", help="display name of the recurring run")
    sc.add_argument("--cron", required=True, metavar="EXPR",
                    help="six fields, seconds first: second minute hour day-of-month month day-of-week, e.g. "
                         "'0 0 3 * * *' (03:00:00 daily)")
    sc.add_argument("--max-concurrency", type=int, default=1, metavar="N",
                    help="runs of this schedule at once, 1-10 (default: 1)")
    sc.add_argument("--catchup", action="store_true",
                    help="back-fill the intervals missed while the schedule was paused or behind (default: no)")
    sc.add_argument("--disabled", action="store_true", help="create the schedule disabled (enable it in the UI)")


def _params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise InputError(f"-p {item!r}: expected NAME=VALUE")
        if name in out:
            raise InputError(f"-p {name}: given twice ({out[name]!r} and {value!r})")
        out[name] = value
    return out


@contextlib.contextmanager
def _package(args: argparse.Namespace) -> Iterator[tuple[Path, str | None]]:
    """(package path, upload name or None for the package's pipelineInfo.name): --package, or --config compiled."""
    if (args.package is None) == (args.config is None):
        raise InputError("give either --package YAML (a compiled pipeline) or --config FILE (compiled here)")
    if args.package is not None:
        if args.override:
            raise InputError(f"-o {args.override[0]}: overrides go with --config (a --package is already compiled)")
        yield Path(args.package), args.pipeline_name
        return
    if args.pipeline_name is not None:
        raise InputError(f"--pipeline-name goes with --package; with --config set -o kfp.pipeline_name="
                         f"{args.pipeline_name}")
    from pipelines.compile import compile_package

    with tempfile.TemporaryDirectory(prefix="spg-kfp-") as tmp:  # a bad file or key: one line from the loader
        out = compile_package(str(args.config), overrides_of(args), Path(tmp) / "pipeline.yaml")
        yield out, None  # the compiled pipelineInfo.name is kfp.pipeline_name


def _compile(args: argparse.Namespace) -> int:
    from pipelines.compile import compile_package

    path = config_path(args)
    out = compile_package(str(path) if path else None, overrides_of(args), Path(args.out))
    print(out)
    return 0


def _run_local(args: argparse.Namespace) -> int:
    from pipelines.run_local import run_local

    path = config_path(args)
    result = run_local(str(path) if path else None, overrides_of(args), args.workdir)
    print(json.dumps(result, indent=2, default=str))
    return 0 if str(result.get("status", "")).upper() in ("SUCCESS", "SUCCEEDED") else 1


def _submit(args: argparse.Namespace) -> int:
    from spg_lib.kubeflow.client import schedule_run, settings_from_env, submit_run
    from spg_lib.kubeflow.cron import validate_cron

    params = _params(args.param)
    cron = validate_cron(args.cron) if args.kfp_command == "schedule" else None
    settings = settings_from_env()  # before compiling: a missing KFP_ENDPOINT costs nothing
    with _package(args) as (package, pipeline_name):
        _check_run_config(package, params, args.config)
        common = dict(pipeline_name=pipeline_name, version_name=args.version_name, experiment=args.experiment,
                      settings=settings, service_account=args.service_account)
        if cron is None:
            result = submit_run(package, params, run_name=args.run_name, **common)
        else:
            result = schedule_run(package, params, cron=cron, schedule_name=args.schedule_name,
                                  max_concurrency=args.max_concurrency, no_catchup=not args.catchup,
                                  enabled=not args.disabled, **common)
    print(result.url)
    print(json.dumps(result.to_dict()))
    return 0


def _check_run_config(package: Path, params: dict[str, str], config: str | None) -> None:
    """Resolve the run's configuration here (file + named parameters + ``overrides``) as its first task will, so
    an unknown task or method or an override that does not exist is refused before anything is submitted. The
    file is the ``config_file`` parameter (default: the package's), found in the working directory or the
    repository; a package compiled elsewhere from a file not present here is checked by type only."""
    import yaml

    from pipelines.compile import ROOT
    from spg_lib.kubeflow.client import check_parameters, read_package
    from spg_lib.pipeline.stages import UI_PARAMETERS, resolve_config

    typed = check_parameters(package, params)
    with open(package) as fh:
        defaults = {name: spec.get("defaultValue") for name, spec in next(yaml.safe_load_all(fh))["root"][
            "inputDefinitions"]["parameters"].items()}
    kinds = read_package(package).parameters
    for name, value in defaults.items():  # the IR stores every number default as a double (1 -> 1.0)
        if kinds.get(name) == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
            defaults[name] = int(value)
    values = {**defaults, **typed}
    config_file = values.get("config_file") or config
    if not config_file:
        return
    candidates = [Path(config_file), ROOT / config_file] + ([Path(config)] if config else [])
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return
    ui = {k: values[k] for k in UI_PARAMETERS if k in values}
    try:
        resolve_config(found, list(values.get("overrides") or []), ui)
    except InputError as exc:
        raise InputError(f"pipeline parameters: {exc}") from None


def run(args: argparse.Namespace) -> int:
    if args.kfp_command == "compile":
        return _compile(args)
    if args.kfp_command == "run-local":
        return _run_local(args)
    return _submit(args)
