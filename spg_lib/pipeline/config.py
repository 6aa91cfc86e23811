"""The one configuration tree: ``PipelineConfig`` mirrors ``params.yaml`` whole.

    cfg = load_pipeline_config("params.yaml", ["train.optim.lr=1e-4", "evaluate.steps=64"])
    cfg.train.algo.neg_estimator                      # every section typed, unknown keys are errors
    text = dump_pipeline_config(cfg)                  # JSON, e.g. one input of a Kubeflow component
    same = parse_pipeline_config(text)

Sections (one per pipeline stage): ``data`` (`spg prepare-data`), ``base_model`` + ``sft`` (`spg base-model`,
`spg sft`), ``train`` (`spg train`), ``evaluate`` (`spg evaluate`, and the before/after table of `spg train`),
``register`` (`spg register`), and ``kfp``: the Kubeflow pipeline compiled from the file (`pipelines/`).
Every `spg` command, every DVC stage and every pipeline component loads this tree
and overrides it with the same full dotted paths as ``dvc exp run -S`` (``train.optim.lr=1e-4``); a path relative
to a section is refused with the full one named. Defaults live in the section dataclasses only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Literal

from spg_lib.config import ConfigError, apply_overrides, from_dict, param, read_yaml_mapping, to_dict
from spg_lib.pipeline.base_model import BaseModelConfig
from spg_lib.tasks.evaluate import EvalConfig
from spg_lib.training.config import TrainConfig
from spg_lib.training.run import SFTRunConfig

__all__ = ["DataConfig", "KfpConfig", "PipelineConfig", "RegisterConfig", "dump_pipeline_config",
           "load_pipeline_config", "parse_pipeline_config"]

DEFAULT_PARAMS = "params.yaml"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Stage ``prepare_data``: a task's train/test splits and manifest.

    With ``dvc_repo`` set, ``source`` / ``test_source`` are paths inside that DVC repository (a file, or a
    directory holding ``{split}.<suffix>``), fetched at ``dvc_rev`` from its DVC remote first
    (`spg_lib.storage.dvc_dataset`); the manifest records repository, revision, commit, path and md5 of each.
    """

    task: str = param("sudoku", "task name (gsm8k | math500 | countdown | sudoku, or one a plugin registers)")
    out_dir: str = param("data/sudoku", "writes train.<format>, test.<format> and manifest.json here")
    source: str | None = param(None, "training source: hub id, local path or s3:// URI (None: the task's default; "
                                     "Countdown and Sudoku generate their training problems); with dvc_repo: a "
                                     "path inside that repository")
    test_source: str | None = param(None, "test source (None: derived from `source`, else the task's default); "
                                          "with dvc_repo: a path inside that repository")
    n_train: int | None = param(None, "training rows kept (None: all loaded rows; generated tasks: 10,000)")
    seed: int = param(42, "shuffle / generation seed (the official shuffles use 42)")
    format: Literal["jsonl", "parquet"] = param("jsonl", "file format of the splits")
    dvc_repo: str | None = param(None, "DVC repository (git URL or local path) that source / test_source are "
                                       "paths in, read from its DVC remote (None: they are plain paths / URIs)")
    dvc_rev: str | None = param(None, "git revision (branch, tag, commit) of dvc_repo (None: HEAD; quote a "
                                      "numeric tag in YAML: '1.0')")
    dvc_remote: str | None = param(None, "DVC remote of dvc_repo to read from (None: its default remote)")

    def __post_init__(self) -> None:
        if self.n_train is not None and self.n_train < 0:
            raise ValueError(f"data.n_train must be >= 0, got {self.n_train}")
        for name in ("dvc_repo", "dvc_rev", "dvc_remote"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ValueError(f"data.{name} must not be empty (null: none)")
        if self.dvc_repo is None:
            for name in ("dvc_rev", "dvc_remote"):
                if getattr(self, name) is not None:
                    raise ValueError(f"data.{name} needs data.dvc_repo (the DVC repository it belongs to)")
            return
        if self.source is None and self.test_source is None:
            raise ValueError("data.dvc_repo needs data.source and/or data.test_source (paths inside it)")
        for name in ("source", "test_source"):
            value = getattr(self, name)
            if value is not None and ("://" in value or value.startswith(("/", "hf:", "s3:"))):
                raise ValueError(f"data.{name} must be a relative path inside data.dvc_repo, got {value!r}")


@dataclasses.dataclass(frozen=True)
class RegisterConfig:
    """Stage ``register``: an MLflow model version with aliases ``candidate`` / ``champion``."""

    name: str = param("spg-model", "registered model name")
    model: str | None = param(None, "model directory to register (None: <train.out_dir>/final)")
    metrics: str | None = param(None, "metrics.json of its evaluation (None: <evaluate.out_dir>/trained/metrics.json)")
    base_model: str | None = param(None, "base model of a LoRA adapter (None: the adapter's base_model_name_or_path)")
    tracking_uri: str | None = param(None, "MLflow tracking URI (None: $MLFLOW_TRACKING_URI, else "
                                           "sqlite:///mlruns.db in the working directory)")
    experiment: str = param("spg-models", "MLflow experiment of the registration run")
    dvc_lock: str | None = param(None, "dvc.lock whose hashes become lineage tags (None: ./dvc.lock if present)")
    out: str | None = param(None, "also write the registration record (JSON) here")


@dataclasses.dataclass(frozen=True)
class KfpConfig:
    """The Kubeflow pipeline compiled from this file (`pipelines/`): images, placement, secrets, retries, the gate.

    The compiled pipeline's parameters take their defaults from this section and from the stage sections, so a
    UI run with defaults and ``dvc repro`` of the same file agree. Secrets hold the keys below, as environment
    variables of every task: ``s3_secret`` AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (optional AWS_ENDPOINT_URL,
    AWS_DEFAULT_REGION); ``mlflow_secret`` MLFLOW_TRACKING_URI (optional MLFLOW_TRACKING_USERNAME,
    MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_TOKEN).
    """

    pipeline_name: str = param("spg-pipeline", "pipeline name (upload name on the KFP server)")
    image: str = param("ghcr.io/spg-pipeline/spg-cuda:0.1.0", "image of the GPU tasks (train, evaluate); "
                                                             "built from docker/Dockerfile.cuda")
    cpu_image: str = param("ghcr.io/spg-pipeline/spg-cpu:0.1.0", "image of the CPU tasks (prepare, base model, "
                                                                "register, report); built from docker/Dockerfile.cpu")
    workdir: str = param("/opt/spg", "the repository's location inside the images (config files resolve there)")
    gpus: int = param(1, "accelerators of the training task (per node); > 1 runs `accelerate launch`; 0: CPU")
    eval_gpus: int = param(1, "accelerators of each evaluation task (greedy decoding runs on one); 0: CPU")
    accelerate_config: str = param("configs/accelerate/ddp.yaml",
                                   "launch configuration with more than one GPU or node (configs/accelerate/)")
    nodes: int = param(1, "training nodes; > 1 runs training through Kubeflow Trainer (a TrainJob)")
    controller: Literal["trainer", "training-operator"] = param(
        "trainer", "multi-node job kind: trainer (Kubeflow Trainer v2 TrainJob) | training-operator (v1 PyTorchJob)")
    accelerator_type: str = param("nvidia.com/gpu", "extended resource name of the accelerator")
    node_selector: dict[str, str] = param(help="node labels of the GPU tasks, e.g. {nvidia.com/gpu.product: "
                                               "NVIDIA-H100-80GB-HBM3}", factory=dict)
    tolerations: list[dict] = param(help="Kubernetes tolerations of the GPU tasks (list of toleration objects)",
                                    factory=list)
    cpu_request: str = param("8", "CPU request of the GPU tasks")
    memory_request: str = param("64Gi", "memory request of the GPU tasks")
    shm_size: str = param("16Gi", "size of the memory-backed /dev/shm of the GPU tasks (NCCL, data loaders)")
    s3_secret: str = param("spg-s3", "Kubernetes Secret with the S3 credentials (keys in the class docstring)")
    mlflow_secret: str = param("spg-mlflow", "Kubernetes Secret with the MLflow endpoint and credentials")
    checkpoint_root: str = param("s3://spg-checkpoints/runs", "run-scoped checkpoints go to "
                                 "<checkpoint_root>/<pipeline job id>/train (s3:// URI or a mounted path)")
    checkpoint_pvc: str | None = param(None, "PersistentVolumeClaim mounted at checkpoint_mount on the training, "
                                             "evaluation and registration tasks (needed when checkpoint_root is on "
                                             "it, as multi-node training requires; k8s/: spg-checkpoints)")
    checkpoint_mount: str = param("/mnt/checkpoints", "mount path of checkpoint_pvc")
    retries: int = param(2, "retries of the training task (each resumes from its latest checkpoint)")
    retry_backoff: str = param("30s", "wait before the first retry (doubles per retry, at most 10 min)")
    min_gain: float = param(0.0, "register only when trained accuracy - base accuracy >= this (points, same "
                                 "protocol)")

    def __post_init__(self) -> None:
        for name in ("gpus", "eval_gpus", "retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"kfp.{name} must be >= 0, got {getattr(self, name)}")
        if self.nodes < 1:
            raise ValueError(f"kfp.nodes must be >= 1, got {self.nodes}")
        if not re.fullmatch(r"\d+s", self.retry_backoff):
            raise ValueError(f"kfp.retry_backoff must be whole seconds like '30s', got {self.retry_backoff!r}")
        for name in ("s3_secret", "mlflow_secret", "image", "cpu_image", "checkpoint_root"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"kfp.{name} must not be empty")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole ``params.yaml``: one section per stage, each with its own defaults."""

    data: DataConfig = param(help="stage prepare_data", factory=DataConfig)
    base_model: BaseModelConfig = param(help="stage base_model: fetch a checkpoint ...", factory=BaseModelConfig)
    sft: SFTRunConfig = param(help="... or SFT-bootstrap one (when base_model.uri is null)", factory=SFTRunConfig)
    train: TrainConfig = param(help="stage train (RL)", factory=TrainConfig)
    evaluate: EvalConfig = param(help="stage evaluate (base and trained model, one protocol)", factory=EvalConfig)
    register: RegisterConfig = param(help="stage register (MLflow)", factory=RegisterConfig)
    kfp: KfpConfig = param(help="the Kubeflow pipeline compiled from this file", factory=KfpConfig)


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PipelineConfig))


def _paths(cls: type, prefix: str = "") -> dict[str, bool]:
    """Every dotted path of dataclass ``cls`` -> whether it is a leaf (not a nested section)."""
    out: dict[str, bool] = {}
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        nested = dataclasses.is_dataclass(f.default_factory)
        out[path] = not nested
        if nested:
            out.update(_paths(f.default_factory, path + "."))
    return out


def _check_paths(overrides: list[str]) -> None:
    """Refuse an override whose path is not in the tree, naming the full path(s) it is a suffix of."""
    paths = _paths(PipelineConfig)
    for item in overrides:
        if "=" not in item:
            continue  # apply_overrides names the KEY=VALUE form
        key = item.split("=", 1)[0].strip()
        parts = key.split(".")
        if key in paths or any(paths.get(".".join(parts[:i])) for i in range(1, len(parts))):
            continue  # an existing path, or one below a leaf (a mapping value: the loader types it)
        owners = sorted(p for p in paths if p.endswith("." + key))
        hint = (f"; did you mean {' or '.join(owners)}?" if owners
                else f"; paths start with a section: {', '.join(SECTIONS)}")
        raise ConfigError(f"override {item!r}: {key!r} is not a path of params.yaml{hint}")


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """``path`` (YAML; None: the built-in defaults) with full-path ``overrides`` applied.

    Raises:
        ConfigError: one line naming the file and the dotted key (or the override) that is wrong.
    """
    overrides = list(overrides or [])
    _check_paths(overrides)
    data = read_yaml_mapping(path) if path is not None else {}
    where = str(path) if path is not None else "defaults"
    data = apply_overrides(data, overrides)
    try:
        return from_dict(PipelineConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def dump_pipeline_config(cfg: PipelineConfig) -> str:
    """The tree as one JSON document (what a Kubeflow component receives)."""
    return json.dumps(to_dict(cfg), sort_keys=True)


def parse_pipeline_config(text: str, where: str = "config JSON") -> PipelineConfig:
    """Inverse of ``dump_pipeline_config`` (also accepts YAML, a superset of JSON)."""
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid JSON/YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of sections")
    try:
        return from_dict(PipelineConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
