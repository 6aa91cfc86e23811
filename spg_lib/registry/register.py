"""Register a trained model + its evaluation in the MLflow Model Registry, with champion/candidate aliases.

`register_model(model_dir, metrics_file, name, ...)`:

1. validates the inputs (before any MLflow call): the model directory (a full Hugging Face checkpoint with
   config.json, or a LoRA adapter with adapter_config.json + a base model reference), the evaluation metrics JSON
   written by `spg evaluate` (`spg_lib.tasks.metrics.EvalMetrics`: its protocol, accuracy in %, ...), the
   optional params.yaml and dvc.lock;
2. opens an MLflow run (experiment "spg-models" by default) and logs: the evaluation metrics, the flattened params,
   lineage tags, the metrics file and the model card README.md, and the model as an MLflow pyfunc model
   (`spg_lib.registry.pyfunc.SPGDiffusionModel`: checkpoint or adapter, tokenizer, generation config, card);
3. registers a new version of `name` (tags below, description = the model card) and sets alias ``candidate`` on it;
4. moves alias ``champion`` to it only if its accuracy is strictly higher than the current champion's *under the
   same evaluation protocol* (`spg_lib.tasks.metrics.EvalProtocol`: task, test-data hash, n, prompt style,
   scoring mode, gen_length, block_length, steps, temperature, remasking). No champion yet: it becomes champion.
   Champion evaluated under another protocol: no comparison, champion left unchanged, and the decision says why.
   The decision is stored in the version tag ``champion_decision``.

Version tags: ``eval.<key>`` for each protocol key and ``eval.accuracy``, ``eval.protocol`` (canonical JSON),
``git.commit`` (``git rev-parse HEAD`` in the working directory, "unknown" outside a repository), ``git.dirty``,
``dvc.<stage>.<deps|outs>.<path>`` = md5 (from dvc.lock), ``params.<flat.key>`` (from params.yaml),
``model.kind`` (full | lora), ``model.base`` (LoRA), ``source.model_dir``, ``source.metrics_file``.

Tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlruns.db`` (no server needed). With
a ``sqlite:///`` store, a new experiment keeps its artifacts in ``mlartifacts/`` next to the database file.
Two registrations racing on the same name may both see the same champion: serialise registrations per model name
(one pipeline step at a time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from spg_lib.io import InputError, read_json
from spg_lib.registry.lineage import dvc_lock_hashes, flat_params, git_commit, git_dirty, safe_key
from spg_lib.registry.store import get_or_create_experiment, using_tracking_uri
from spg_lib.tasks.metrics import PROTOCOL_KEYS, EvalMetrics, EvalProtocol, MetricsError, read_metrics

CANDIDATE = "candidate"
CHAMPION = "champion"
DEFAULT_EXPERIMENT = "spg-models"
_MAX_TAG_VALUE = 5000


class RegistryInputError(InputError):
    """Invalid input file / directory; the message names the file (and field)."""


@dataclasses.dataclass
class ModelSource:
    path: Path
    kind: str  # "full" | "lora"
    base_model: str | None = None


@dataclasses.dataclass
class Registration:
    name: str
    version: str
    aliases: list[str]
    run_id: str
    model_uri: str  # models:/NAME/VERSION
    logged_model_uri: str  # models:/<model id> (the MLflow 3 LoggedModel)
    tracking_uri: str
    champion: bool
    champion_decision: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- input checks


def read_eval_metrics(path: str | Path) -> EvalMetrics:
    """The metrics JSON of `spg evaluate`, checked against its schema (`spg_lib.tasks.metrics.read_metrics`)."""
    try:
        return read_metrics(path)
    except MetricsError as exc:
        raise RegistryInputError(str(exc)) from None


def inspect_model_dir(path: str | Path, base_model: str | None = None) -> ModelSource:
    """A full checkpoint (config.json + weights) or a LoRA adapter (adapter_config.json; base model from
    `base_model`, else the adapter's base_model_name_or_path)."""
    path = Path(path)
    if not path.exists():
        raise RegistryInputError(f"model directory {path} does not exist")
    if not path.is_dir():
        raise RegistryInputError(f"model directory {path} is not a directory")
    if (path / "adapter_config.json").is_file():
        try:
            adapter_cfg = read_json(path / "adapter_config.json", what="adapter config")
        except InputError as exc:
            raise RegistryInputError(str(exc)) from None
        base = base_model or adapter_cfg.get("base_model_name_or_path")
        if not base:
            raise RegistryInputError(f"model directory {path} is a LoRA adapter without a base model reference: "
                                     "pass --base-model (a checkpoint dir, hub id, builtin:tiny or models:/ URI)")
        if not any((path / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
            raise RegistryInputError(f"model directory {path}: adapter_config.json but no adapter_model.safetensors")
        return ModelSource(path.resolve(), "lora", str(base))
    if not (path / "config.json").is_file():
        raise RegistryInputError(f"model directory {path} has no config.json (not a Hugging Face checkpoint) and "
                                 "no adapter_config.json (not a LoRA adapter)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise RegistryInputError(f"model directory {path} has config.json but no weights (*.safetensors / *.bin)")
    return ModelSource(path.resolve(), "full", base_model)


def generation_config_of(metrics: EvalMetrics) -> dict[str, Any]:
    """The decoding settings the evaluation used: the defaults of the logged pyfunc model."""
    p = metrics.protocol
    return {"gen_length": p.gen_length, "steps": p.steps, "block_length": p.block_length,
            "temperature": p.temperature, "remasking": p.remasking}


def default_tracking_uri(cwd: str | Path | None = None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path(cwd or Path.cwd()).resolve() / 'mlruns.db'}"


def local_artifact_root(uri: str, cwd: str | Path | None = None) -> Path | None:
    """For a serverless ``sqlite:///PATH`` store: ``<directory of PATH>/mlartifacts`` (PATH relative to `cwd`), used
    as the artifact location of experiments this module creates (MLflow's own default would be relative to
    whatever directory a later process runs in). None for server / other URIs (the server decides)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    db = Path(uri[len(prefix):].split("?", 1)[0])
    if not db.is_absolute():
        db = Path(cwd or Path.cwd()).resolve() / db
    return db.parent / "mlartifacts"


# ----------------------------------------------------------------------------------------------- model card


def model_card(name: str, source: ModelSource, metrics: EvalMetrics, generation: dict[str, Any],
               lineage: dict[str, str]) -> str:
    rows = [f"| {k} | {_fmt(v)} |" for k, v in metrics.as_dict().items() if not isinstance(v, dict | list)]
    proto = metrics.protocol.as_dict()
    lines = [
        f"# {name}",
        "",
        "Masked diffusion language model (LLaDA architecture) fine-tuned with SPG (Sandwiched Policy Gradient).",
        "",
        f"- kind: {'LoRA adapter on `' + str(source.base_model) + '`' if source.kind == 'lora' else 'full weights'}",
        f"- source: `{source.path}`",
        f"- git commit: `{lineage.get('git.commit', 'unknown')}`",
        "",
        f"## Evaluation: {metrics.protocol.task} — accuracy {metrics.accuracy:.2f} %",
        "",
        "| metric | value |",
        "|---|---|",
        *rows,
        "",
        "Protocol (champion comparisons only between versions with an identical protocol): "
        + ", ".join(f"{k}={proto[k]}" for k in PROTOCOL_KEYS),
        "",
        "## Generation config",
        "",
        "| key | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in generation.items()),
        "",
        "## Usage",
        "",
        "```python",
        "import mlflow.pyfunc",
        f'model = mlflow.pyfunc.load_model("models:/{name}@champion")',
        'print(model.predict(["What is 2 + 3?"]))',
        "# or the raw checkpoint: mlflow.artifacts.download_artifacts(\"models:/NAME/VERSION\") -> artifacts/model",
        "```",
        "",
    ]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


# ----------------------------------------------------------------------------------------------- registration


@dataclasses.dataclass
class PreparedRegistration:
    """Everything `register_model` logs, computed from validated inputs before any MLflow call."""

    source: ModelSource
    metrics_file: Path
    metrics: EvalMetrics
    generation: dict[str, Any]
    lineage: dict[str, str]
    params: dict[str, str]
    tags: dict[str, str]
    card: str


def prepare_registration(model_dir: str | Path, metrics_file: str | Path, name: str, *,
                         base_model: str | None = None, params_file: str | Path | None = None,
                         dvc_lock: str | Path | None = None, cwd: str | Path | None = None,
                         extra_tags: dict[str, str] | None = None) -> PreparedRegistration:
    """Validate the inputs and compute tags / card / generation config (no MLflow import). ``extra_tags``
    (e.g. a pipeline's lineage: run id, data hash, configuration hash) are added to the version's tags.
    Raises RegistryInputError naming the bad file / field."""
    cwd = Path(cwd or Path.cwd()).resolve()
    if not name or not name.strip():
        raise RegistryInputError("--name must be a non-empty registered model name")
    source = inspect_model_dir(model_dir, base_model)
    metrics = read_eval_metrics(metrics_file)
    params: dict[str, str] = {}
    if params_file is not None:
        if not Path(params_file).is_file():
            raise RegistryInputError(f"params file {params_file} does not exist")
        try:
            params = flat_params(params_file)
        except ValueError as exc:
            raise RegistryInputError(str(exc)) from exc
    dvc_path = Path(dvc_lock) if dvc_lock is not None else cwd / "dvc.lock"
    if dvc_lock is not None and not dvc_path.is_file():
        raise RegistryInputError(f"dvc.lock file {dvc_path} does not exist")
    dvc: dict[str, str] = {}
    if dvc_path.is_file():
        try:
            dvc = dvc_lock_hashes(dvc_path)
        except ValueError as exc:
            raise RegistryInputError(str(exc)) from exc

    protocol = metrics.protocol.as_dict()
    generation = generation_config_of(metrics)
    dirty = git_dirty(cwd)
    lineage = {"git.commit": git_commit(cwd), "git.dirty": "unknown" if dirty is None else str(dirty).lower()}
    tags: dict[str, str] = {
        **{f"eval.{k}": "null" if v is None else str(v) for k, v in protocol.items()},
        "eval.accuracy": repr(metrics.accuracy),
        "eval.protocol": json.dumps(protocol, sort_keys=True),
        **lineage,
        **{f"dvc.{k}": v for k, v in dvc.items()},
        **{f"params.{k}": v for k, v in params.items()},
        "model.kind": source.kind,
        "source.model_dir": str(source.path),
        "source.metrics_file": str(Path(metrics_file).resolve()),
        **{k: str(v) for k, v in (extra_tags or {}).items()},
    }
    if source.base_model:
        tags["model.base"] = source.base_model
    tags = {safe_key(k): str(v)[:_MAX_TAG_VALUE] for k, v in tags.items()}
    return PreparedRegistration(source=source, metrics_file=Path(metrics_file), metrics=metrics,
                                generation=generation, lineage=lineage, params=params, tags=tags,
                                card=model_card(name, source, metrics, generation, lineage))


def register_model(model_dir: str | Path, metrics_file: str | Path, name: str, *, tracking_uri: str | None = None,
                   base_model: str | None = None, params_file: str | Path | None = None,
                   dvc_lock: str | Path | None = None, experiment: str = DEFAULT_EXPERIMENT,
                   cwd: str | Path | None = None, log=None, extra_tags: dict[str, str] | None = None) -> Registration:
    """Log, register, alias (see the module docstring). `dvc_lock`: default <cwd>/dvc.lock when it exists.
    Raises RegistryInputError for bad inputs (before any MLflow call). MLflow's global tracking URI is restored
    afterwards."""
    log = log or (lambda msg: None)
    cwd = Path(cwd or Path.cwd()).resolve()
    prep = prepare_registration(model_dir, metrics_file, name, base_model=base_model, params_file=params_file,
                                dvc_lock=dvc_lock, cwd=cwd, extra_tags=extra_tags)
    uri = tracking_uri or default_tracking_uri(cwd)
    local_artifacts = local_artifact_root(uri, cwd)
    with using_tracking_uri(uri):
        import mlflow
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        experiment_id = get_or_create_experiment(
            client, experiment, artifact_location=local_artifacts.as_uri() if local_artifacts is not None else None)

        with mlflow.start_run(experiment_id=experiment_id, run_name=f"register-{name}") as run:
            run_id = run.info.run_id
            log(f"logging model {prep.source.path} ({prep.source.kind}) to {uri}")
            logged_uri = _log_run(prep, name)

        log(f"registering {name}")
        version = str(mlflow.register_model(logged_uri, name, tags=prep.tags).version)
        client.update_model_version(name, version, description=prep.card)
        client.set_registered_model_alias(name, CANDIDATE, version)
        accuracy = prep.metrics.accuracy
        is_champion, decision = _champion_decision(client, name, version, prep.metrics.protocol, accuracy)
        if is_champion:
            client.set_registered_model_alias(name, CHAMPION, version)
        client.set_model_version_tag(name, version, "champion_decision", decision[:_MAX_TAG_VALUE])
        log(decision)
        aliases = sorted(client.get_model_version(name, version).aliases)
    return Registration(name=name, version=version, aliases=aliases, run_id=run_id,
                        model_uri=f"models:/{name}/{version}", logged_model_uri=logged_uri, tracking_uri=uri,
                        champion=is_champion, champion_decision=decision)


def _log_run(prep: PreparedRegistration, name: str) -> str:
    """Into the active run: tags, params, evaluation metrics, card, metrics file, the pyfunc model. Returns the
    logged model's URI."""
    import mlflow

    metrics = {k: float(v) for k, v in prep.metrics.as_dict().items()
               if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}
    mlflow.set_tags({"mlflow.source.git.commit": prep.lineage["git.commit"], "spg.registered_model": name,
                     **{k: v for k, v in prep.tags.items() if not k.startswith("params.")}})
    if prep.params:
        mlflow.log_params({safe_key(k): v[:500] for k, v in prep.params.items()})
    mlflow.log_metrics({safe_key(f"eval_{k}"): v for k, v in metrics.items()})
    mlflow.log_artifact(str(prep.metrics_file), artifact_path="evaluation")
    with tempfile.TemporaryDirectory(prefix="spg-register-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "README.md").write_text(prep.card)
        (tmp_path / "generation_config.json").write_text(json.dumps(prep.generation, indent=2))
        mlflow.log_artifact(str(tmp_path / "README.md"))
        return _log_pyfunc(prep.source, tmp_path, prep.generation, prep.metrics).model_uri


def _log_pyfunc(source: ModelSource, tmp_path: Path, generation: dict[str, Any], metrics: EvalMetrics):
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    artifacts = {"generation_config": str(tmp_path / "generation_config.json"),
                 "README.md": str(tmp_path / "README.md")}
    model_config: dict[str, Any] = {"chat_template": True}
    if source.kind == "lora":
        artifacts["adapter"] = str(source.path)
        model_config["base_model"] = source.base_model
    else:
        artifacts["model"] = str(source.path)
    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("gen_length", "long", generation["gen_length"]),
                            ParamSpec("steps", "long", generation["steps"]),
                            ParamSpec("block_length", "long", generation["block_length"]),
                            ParamSpec("temperature", "double", generation["temperature"])]),
    )
    with warnings.catch_warnings():  # no input_example on purpose: MLflow would run a generation to validate it
        warnings.filterwarnings("ignore", message=".*input example.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),  # models from code: nothing pickled
            artifacts=artifacts,
            model_config=model_config,
            signature=signature,
            pip_requirements=_pip_requirements(source.kind == "lora"),
            metadata={"spg": {"generation_config": generation, "protocol": metrics.protocol.as_dict(),
                              "accuracy": metrics.accuracy, "kind": source.kind,
                              "base_model": source.base_model}},
        )


def _pip_requirements(lora: bool) -> list[str]:
    """Pinned runtime requirements (explicit: MLflow's inference would load the model in a subprocess; the
    `spg_lib` package itself must be installed from this repository)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("mlflow", "torch", "transformers", "safetensors", "tokenizers", *(("peft",) if lora else ())):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


def _champion_decision(client, name: str, version: str, protocol: EvalProtocol,
                       accuracy: float) -> tuple[bool, str]:
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return True, f"{name} v{version}: no champion yet -> champion (accuracy {accuracy:.2f})"
    if str(current.version) == version:
        return True, f"{name} v{version} is already the champion"
    cur_tags = current.tags or {}
    try:
        cur_protocol = EvalProtocol.from_dict(json.loads(cur_tags.get("eval.protocol", "")), "champion")
        cur_acc = float(cur_tags["eval.accuracy"])
    except (ValueError, KeyError, TypeError):  # MetricsError is a ValueError
        return False, (f"{name} v{version}: champion v{current.version} has no recorded evaluation protocol / "
                       f"accuracy of this schema; not compared, champion unchanged")
    return champion_decision(name, version, protocol, accuracy, current.version, cur_protocol, cur_acc)


def champion_decision(name: str, version: str, protocol: EvalProtocol, accuracy: float, champion_version: str,
                      champion_protocol: EvalProtocol, champion_accuracy: float) -> tuple[bool, str]:
    """(becomes champion?, the decision text): only under an identical protocol, and only when strictly better."""
    cur = f"champion v{champion_version}"
    diff = champion_protocol.differences(protocol)
    if diff:
        detail = ", ".join(f"{k}: {a!r} (champion) vs {b!r}" for k, (a, b) in diff.items())
        return False, (f"{name} v{version}: evaluation protocol differs from {cur} ({detail}); accuracies not "
                       f"comparable, champion unchanged")
    if accuracy > champion_accuracy:
        return True, f"{name} v{version}: accuracy {accuracy:.2f} beats {cur} ({champion_accuracy:.2f}) -> champion"
    return False, (f"{name} v{version}: accuracy {accuracy:.2f} does not beat {cur} ({champion_accuracy:.2f}); "
                   f"champion unchanged")


def download_model(model_uri: str, dst: str | Path, tracking_uri: str | None = None) -> Path:
    """Download a registered SPG model (e.g. ``models:/NAME/3`` or ``models:/NAME@champion``) into `dst` and return
    the checkpoint directory that `spg_lib.models.load_model` / `load_tokenizer` accept (``artifacts/model``; for a
    LoRA version ``artifacts/adapter``, which needs its base model: use `mlflow.pyfunc.load_model` instead).
    `tracking_uri`: default MLflow's current one."""
    import mlflow.artifacts

    # MLflow 3.17 resolves models:/ URIs with the *global* registry client whatever tracking_uri says: set it too
    scope = using_tracking_uri(tracking_uri) if tracking_uri else contextlib.nullcontext()
    with scope:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst),
                                                         tracking_uri=tracking_uri))
    for sub in ("model", "adapter"):
        if (local / "artifacts" / sub).is_dir():
            return local / "artifacts" / sub
    raise FileNotFoundError(f"{model_uri}: no artifacts/model or artifacts/adapter in the downloaded model {local}")
