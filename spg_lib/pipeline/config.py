"""The one configuration tree: ``PipelineConfig`` mirrors ``params.yaml`` whole.

    cfg = load_pipeline_config("params.yaml", ["train.optim.lr=1e-4", "evaluate.steps=64"])
    cfg.train.algo.neg_estimator                      # every section typed, unknown keys are errors
    text = dump_pipeline_config(cfg)                  # JSON, e.g. one input of a Kubeflow component
    same = parse_pipeline_config(text)

Sections (one per pipeline stage): ``data`` (`spg prepare-data`), ``base_model`` + ``sft`` (`spg base-model`,
`spg sft`), ``train`` (`spg train`), ``evaluate`` (`spg evaluate`, and the before/after table of `spg train`),
``register`` (`spg register`). Every `spg` command, every DVC stage and every pipeline component loads this tree
and overrides it with the same full dotted paths as ``dvc exp run -S`` (``train.optim.lr=1e-4``); a path relative
to a section is refused with the full one named. Defaults live in the section dataclasses only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

from spg_lib.config import ConfigError, apply_overrides, from_dict, param, read_yaml_mapping, to_dict
from spg_lib.pipeline.base_model import BaseModelConfig
from spg_lib.tasks.evaluate import EvalConfig
from spg_lib.training.config import TrainConfig
from spg_lib.training.run import SFTRunConfig

__all__ = ["DataConfig", "PipelineConfig", "RegisterConfig", "dump_pipeline_config", "load_pipeline_config",
           "parse_pipeline_config"]

DEFAULT_PARAMS = "params.yaml"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Stage ``prepare_data``: a task's train/test splits and manifest."""

    task: str = param("sudoku", "task name (gsm8k | math500 | countdown | sudoku, or one a plugin registers)")
    out_dir: str = param("data/sudoku", "writes train.<format>, test.<format> and manifest.json here")
    source: str | None = param(None, "training source: hub id, local path or s3:// URI (None: the task's default; "
                                     "Countdown and Sudoku generate their training problems)")
    test_source: str | None = param(None, "test source (None: derived from `source`, else the task's default)")
    n_train: int | None = param(None, "training rows kept (None: all loaded rows; generated tasks: 10,000)")
    seed: int = param(42, "shuffle / generation seed (the official shuffles use 42)")
    format: Literal["jsonl", "parquet"] = param("jsonl", "file format of the splits")

    def __post_init__(self) -> None:
        if self.n_train is not None and self.n_train < 0:
            raise ValueError(f"data.n_train must be >= 0, got {self.n_train}")


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
class PipelineConfig:
    """The whole ``params.yaml``: one section per stage, each with its own defaults."""

    data: DataConfig = param(help="stage prepare_data", factory=DataConfig)
    base_model: BaseModelConfig = param(help="stage base_model: fetch a checkpoint ...", factory=BaseModelConfig)
    sft: SFTRunConfig = param(help="... or SFT-bootstrap one (when base_model.uri is null)", factory=SFTRunConfig)
    train: TrainConfig = param(help="stage train (RL)", factory=TrainConfig)
    evaluate: EvalConfig = param(help="stage evaluate (base and trained model, one protocol)", factory=EvalConfig)
    register: RegisterConfig = param(help="stage register (MLflow)", factory=RegisterConfig)


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
