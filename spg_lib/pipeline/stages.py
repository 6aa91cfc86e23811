"""The pipeline's stage functions on the configuration tree: what a Kubeflow component body calls.

The `spg` commands and the DVC stages run the same functions underneath (``make_base_model``, ``run_train``,
``evaluate``, ``register_model``); here each stage gets the tree plus the paths its orchestrator chose (artifact
directories on Kubeflow, ``runs/...`` under DVC), so a component body is: parse inputs, call one function, write
outputs.

Named pipeline parameters (what a Kubeflow UI user sets) map onto dotted paths of the tree::

    task -> data.task, sft.task, train.task, evaluate.task      method -> train.algo.name
    neg_estimator -> train.algo.neg_estimator                    base_model_uri -> base_model.uri ("" = SFT)
    experiment -> train.experiment (and the run's MLflow record)  registered_model -> register.name
    min_gain / gpus / eval_gpus / nodes / accelerator_type / checkpoint_root -> kfp.<same>

They are applied after the configuration file and before the dotted ``overrides`` (explicit paths win).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from spg_lib.config import ConfigError, apply_overrides, from_dict, read_yaml_mapping, to_dict
from spg_lib.pipeline.config import PipelineConfig, dump_pipeline_config, load_pipeline_config

__all__ = ["UI_PARAMETERS", "check_tasks", "config_hash", "dataset_files", "dataset_metadata", "model_dir_of",
           "resolve_config", "reward_summary", "run_base_model", "run_evaluation", "run_pipeline_training",
           "run_registration", "run_report", "run_training", "stage_shared_inputs", "train_config", "training_dir",
           "training_task_gpus", "ui_defaults"]

UI_PARAMETERS: dict[str, tuple[str, ...]] = {
    "task": ("data.task", "sft.task", "train.task", "evaluate.task"),
    "method": ("train.algo.name",),
    "neg_estimator": ("train.algo.neg_estimator",),
    "base_model_uri": ("base_model.uri",),
    "experiment": ("train.experiment",),
    "registered_model": ("register.name",),
    "min_gain": ("kfp.min_gain",),
    "gpus": ("kfp.gpus",),
    "eval_gpus": ("kfp.eval_gpus",),
    "nodes": ("kfp.nodes",),
    "accelerator_type": ("kfp.accelerator_type",),
    "checkpoint_root": ("kfp.checkpoint_root",),
}


def _get(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        node = node[part]
    return node


def ui_defaults(cfg: PipelineConfig) -> dict[str, Any]:
    """The named parameters' values in ``cfg`` (the compiled pipeline's defaults); base_model_uri None -> ""."""
    tree = to_dict(cfg)
    out = {name: _get(tree, paths[0]) for name, paths in UI_PARAMETERS.items()}
    out["base_model_uri"] = out["base_model_uri"] or ""
    return out


def resolve_config(config_file: str | Path | None, overrides: list[str] | None = None,
                   ui: Mapping[str, Any] | None = None, *, workdir: str | Path | None = None) -> PipelineConfig:
    """The tree of one pipeline run: ``config_file`` (relative paths resolve against ``workdir``, e.g. the image's
    repository), then the named ``ui`` parameters, then dotted ``overrides``.

    Raises:
        ConfigError: one line naming the file, the parameter or the override that is wrong.
    """
    overrides = [str(o) for o in overrides or []]
    load_pipeline_config(None, overrides)  # path check of the overrides (with "did you mean" hints)
    path = None
    if config_file:
        path = Path(config_file)
        if not path.is_absolute() and workdir is not None:
            path = Path(workdir) / path
    data = read_yaml_mapping(path) if path is not None else {}
    for name, value in (ui or {}).items():
        if name not in UI_PARAMETERS:
            raise ConfigError(f"pipeline parameter {name!r} is not one of {', '.join(UI_PARAMETERS)}")
        if name == "base_model_uri" and value == "":
            value = None
        data = apply_overrides(data, [f"{p}={json.dumps(value)}" for p in UI_PARAMETERS[name]],
                               where=f"pipeline parameter {name}")
    data = apply_overrides(data, overrides)
    where = str(path) if path is not None else "defaults"
    try:
        cfg = from_dict(PipelineConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ValueError as exc:  # a __post_init__ check: name the source of the values
        raise ConfigError(f"{where} with the pipeline parameters/overrides: {exc}") from None
    check_tasks(cfg)
    return cfg


def check_tasks(cfg: PipelineConfig) -> None:
    """Every section's task is registered (after importing ``train.plugins``): ConfigError naming the field."""
    from spg_lib.tasks.registry import get_task
    from spg_lib.training.run import import_plugins

    import_plugins(cfg.train.plugins)
    for section in ("data", "sft", "train", "evaluate"):
        name = getattr(cfg, section).task
        if name is None:
            continue
        try:
            get_task(name)
        except ValueError as exc:
            raise ConfigError(f"{section}.task (pipeline parameter task): {exc}") from None


def config_hash(cfg: PipelineConfig) -> str:
    """sha256 of the canonical JSON of the tree (a lineage tag: equal configurations, equal hashes)."""
    return hashlib.sha256(dump_pipeline_config(cfg).encode()).hexdigest()


def training_task_gpus(cfg: PipelineConfig) -> int:
    """Accelerators of the pipeline's training task itself: ``kfp.gpus`` on one node; none with several nodes,
    where the task only launches (and watches) the TrainJob that holds the GPUs."""
    return cfg.kfp.gpus if cfg.kfp.nodes == 1 else 0


def dataset_files(cfg: PipelineConfig, dataset_dir: str | Path) -> tuple[Path, Path]:
    """(train, test) split files that `prepare` wrote into ``dataset_dir``."""
    d = Path(dataset_dir)
    return d / f"train.{cfg.data.format}", d / f"test.{cfg.data.format}"


def run_base_model(cfg: PipelineConfig, dataset_dir: str | Path, out_dir: str | Path,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fetch ``base_model.uri`` or SFT-bootstrap on the prepared training split; the model lands in out_dir/model."""
    from spg_lib.pipeline.base_model import make_base_model

    train_file, _ = dataset_files(cfg, dataset_dir)
    sft = dataclasses.replace(cfg.sft, train_data=str(train_file))
    return make_base_model(dataclasses.replace(cfg.base_model, out_dir=str(out_dir)),
                           None if cfg.base_model.uri else sft, log=log)


def training_dir(checkpoint_root: str, job_id: str) -> str:
    """The run-scoped training directory ``<checkpoint_root>/<job id>/train`` (a retried task finds it again)."""
    if not job_id or "/" in job_id or job_id in (".", ".."):
        raise ConfigError(f"pipeline job id {job_id!r} cannot name a directory")
    return f"{checkpoint_root.rstrip('/')}/{job_id}/train"


def train_config(cfg: PipelineConfig, dataset_dir: str | Path, base_model_dir: str | Path,
                 out_dir: str | Path) -> PipelineConfig:
    """The tree with the train section pointed at the pipeline's inputs and run directory (no before/after eval:
    the pipeline's evaluate steps measure that)."""
    train_file, _ = dataset_files(cfg, dataset_dir)
    train = dataclasses.replace(cfg.train, model=str(base_model_dir), train_data=str(train_file),
                                out_dir=str(out_dir), before_after_eval=False)
    return dataclasses.replace(cfg, train=train)


def run_training(cfg: PipelineConfig, dataset_dir: str | Path, base_model_dir: str | Path, out_dir: str | Path,
                 *, accelerate_config: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """RL training into ``out_dir``, resuming from its latest checkpoint when a previous attempt left one.

    ``kfp.gpus`` > 1 runs the trainer under ``accelerate launch`` (one process per GPU, ``accelerate_config``,
    default ``kfp.accelerate_config`` relative to the working directory) with the same configuration, written next
    to the checkpoints. Returns ``{final_model, resumed, steps, wall_time_s, metrics_log}``.
    """
    import time

    from spg_lib.training.checkpoint import latest_checkpoint

    cfg = train_config(cfg, dataset_dir, base_model_dir, out_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume = latest_checkpoint(out / "checkpoints") is not None
    start = time.perf_counter()
    if cfg.kfp.gpus > 1:
        _launch_multi_gpu(cfg, out, resume, accelerate_config)
    else:  # (the caller, an entry point, seeds the global RNG that dropout uses, as `spg train` does)
        from spg_lib.training.run import run_train

        run_train(cfg.train, resume=resume, progress=progress)
    final = out / "final"
    if not (final / "config.json").is_file() and not (final / "adapter_config.json").is_file():
        raise RuntimeError(f"training ended without a final model in {final}")
    return {"final_model": str(final), "resumed": resume, "steps": cfg.train.max_steps,
            "wall_time_s": time.perf_counter() - start, "metrics_log": str(out / "metrics.jsonl")}


def _launch_multi_gpu(cfg: PipelineConfig, out: Path, resume: bool, accelerate_config: str | Path | None) -> None:
    """``accelerate launch --num_processes <gpus> -m spg_lib.cli train --config <resolved tree>`` (no shell)."""
    import subprocess
    import sys

    from spg_lib.io import atomic_write

    resolved = out / "resolved_config.json"
    with atomic_write(resolved) as fh:
        fh.write(dump_pipeline_config(cfg))
    launch_cfg = Path(accelerate_config or cfg.kfp.accelerate_config)
    if not launch_cfg.is_file():
        raise ConfigError(f"accelerate configuration {launch_cfg} does not exist (kfp.gpus={cfg.kfp.gpus})")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launch_cfg),
           "--num_processes", str(cfg.kfp.gpus), "-m", "spg_lib.cli", "train", "--config", str(resolved),
           "--no-progress"] + (["--resume"] if resume else [])
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})


def run_evaluation(cfg: PipelineConfig, dataset_dir: str | Path, model_dir: str | Path, out_dir: str | Path):
    """Evaluate ``model_dir`` on the prepared test split with the ``evaluate`` section; returns its EvalMetrics
    (also out_dir/metrics.json, with out_dir/generations.jsonl)."""
    from spg_lib.tasks.evaluate import evaluate

    _, test_file = dataset_files(cfg, dataset_dir)
    ev = dataclasses.replace(cfg.evaluate, model=str(model_dir), data=str(test_file), out_dir=str(out_dir),
                             progress=False)
    return evaluate(ev)


# ---------------------------------------------------------------------------------------------- model locations
# A Model artifact either holds the checkpoint (metadata ``checkpoint_subdir``: its folder inside the artifact) or
# points at it (``checkpoint_uri``: s3:// or file://), so large checkpoints move by URI, not through the store.

def model_dir_of(metadata: Mapping[str, Any], artifact_path: str | Path, cache_dir: str | Path) -> Path:
    """A local directory holding the checkpoint a Model artifact describes (fetched from S3 into ``cache_dir``)."""
    uri = metadata.get("checkpoint_uri")
    if not uri:
        path = Path(artifact_path) / str(metadata.get("checkpoint_subdir", ""))
    elif str(uri).startswith("s3://"):
        from spg_lib.storage.fetch import fetch_checkpoint

        key = hashlib.sha256(str(uri).encode()).hexdigest()[:16]
        path = fetch_checkpoint(str(uri), Path(cache_dir) / key)
    elif str(uri).startswith("file://"):
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(str(uri)).path))
    else:
        raise ConfigError(f"Model artifact: checkpoint_uri {uri!r} is neither s3:// nor file://")
    if not path.is_dir():
        raise FileNotFoundError(f"Model artifact {artifact_path}: checkpoint directory {path} does not exist")
    return path


def run_pipeline_training(cfg: PipelineConfig, dataset_dir: str | Path, base_model_dir: str | Path, job_id: str,
                          scratch_dir: str | Path, *, mirror_interval_s: float = 10.0) -> dict[str, Any]:
    """`run_training` in the run-scoped directory ``<kfp.checkpoint_root>/<job_id>/train``.

    A mounted path is trained in directly; an s3:// root trains in ``scratch_dir`` with every checkpoint mirrored
    to S3 (and the latest restored first), then uploads the final model. Either way a retried task resumes.
    Adds ``checkpoint_uri`` (where the final model is) to `run_training`'s result.
    """
    run = training_dir(cfg.kfp.checkpoint_root, job_id)
    if not run.startswith("s3://"):
        local = Path(run.removeprefix("file://"))
        result = run_training(cfg, dataset_dir, base_model_dir, local)
        return {**result, "checkpoint_uri": Path(result["final_model"]).resolve().as_uri()}
    from spg_lib.storage.mirror import CheckpointMirror
    from spg_lib.storage.s3 import make_client, parse_s3_uri

    local = Path(scratch_dir) / job_id / "train"
    with CheckpointMirror(local / "checkpoints", f"{run}/checkpoints", interval_s=mirror_interval_s,
                          keep=cfg.train.keep_checkpoints) as mirror:
        restored = mirror.restore()
        result = run_training(cfg, dataset_dir, base_model_dir, local)
    bucket, prefix = parse_s3_uri(f"{run}/final")
    make_client().upload_dir(Path(result["final_model"]), bucket, prefix)
    return {**result, "checkpoint_uri": f"{run}/final", "restored_step": restored}


def stage_shared_inputs(dataset_dir: str | Path, base_model_dir: str | Path, run_dir: str | Path) -> tuple[Path, Path]:
    """Copy the dataset and the base checkpoint next to ``run_dir`` (``<run>/../inputs/``) on the shared volume, so
    that training nodes, which do not see this task's artifact paths, can read them; a retry reuses the copies."""
    import shutil

    from spg_lib.io import atomic_dir

    inputs = Path(run_dir).parent / "inputs"
    out = []
    for name, src in (("dataset", dataset_dir), ("base_model", base_model_dir)):
        dst = inputs / name
        if not dst.is_dir():
            with atomic_dir(dst) as tmp:
                shutil.copytree(src, tmp, dirs_exist_ok=True)
        out.append(dst)
    return out[0], out[1]


def reward_summary(metrics_log: str | Path, window: int = 5) -> dict[str, float]:
    """First/last-window mean rollout reward of a trainer log (the Metrics artifact of the training task)."""
    from spg_lib.pipeline.summary import reward_curve

    curve = [r["reward"] for r in reward_curve(metrics_log)]
    if not curve:
        return {}
    first, last = curve[:window], curve[-window:]
    return {"reward_first": sum(first) / len(first), "reward_last": sum(last) / len(last),
            "rollouts": float(len(curve))}


def run_report(cfg: PipelineConfig, base_eval_dir: str | Path, trained_eval_dir: str | Path,
               train_log: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """The gate and the UI report: base vs trained on one protocol.

    ``passed`` = same protocol and trained - base accuracy >= ``kfp.min_gain`` points. Returns ``passed``,
    ``gain``, ``same_protocol``, ``summary`` (as `summarize`), ``markdown`` (the accuracy table) and ``html``
    (the page with the reward curve and accuracy per completion length).
    """
    from spg_lib.pipeline.report import accuracy_markdown, html_report
    from spg_lib.pipeline.summary import accuracy_by_length, reward_curve, summarize
    from spg_lib.tasks.metrics import read_metrics

    base_file, trained_file = Path(base_eval_dir) / "metrics.json", Path(trained_eval_dir) / "metrics.json"
    base, trained = read_metrics(base_file), read_metrics(trained_file)
    same = not base.protocol.differences(trained.protocol)
    gain = trained.accuracy - base.accuracy
    passed = bool(same and gain >= cfg.kfp.min_gain)
    if same:
        summary = summarize(base_file, trained_file, train_log, out_dir)
    else:  # the table says why; nothing is compared
        summary = {"task": trained.protocol.task, "base_accuracy": base.accuracy,
                   "trained_accuracy": trained.accuracy, "accuracy_gain": None}
    by_length = []
    for label, d in (("base", base_eval_dir), ("trained", trained_eval_dir)):
        gens = Path(d) / "generations.jsonl"
        if gens.is_file():
            by_length += [{"model": label, **row} for row in accuracy_by_length(gens)]
    title = f"SPG run: {cfg.train.algo.name} on {trained.protocol.task}"
    return {"passed": passed, "gain": gain, "same_protocol": same, "summary": summary,
            "markdown": accuracy_markdown(base, trained, min_gain=cfg.kfp.min_gain),
            "html": html_report(summary, reward_curve(train_log), by_length, title=title)}


def run_registration(cfg: PipelineConfig, model_dir: str | Path, metrics_file: str | Path,
                     lineage: Mapping[str, str], work_dir: str | Path, log: Callable[[str], None] = print):
    """Register ``model_dir`` with its evaluation (`register_model`: aliases, the same-protocol champion rule), the
    resolved configuration as ``params.*`` tags and ``lineage`` (``lineage.*`` tags: git sha, data hash, pipeline
    run id, configuration hash). Returns the Registration."""
    from spg_lib.io import atomic_write
    from spg_lib.registry.register import register_model

    params = Path(work_dir) / "resolved_config.json"
    params.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(params) as fh:
        fh.write(dump_pipeline_config(cfg))
    reg = cfg.register
    return register_model(model_dir, metrics_file, reg.name, tracking_uri=reg.tracking_uri,
                          base_model=reg.base_model, params_file=params, experiment=reg.experiment,
                          log=log, extra_tags={f"lineage.{k}": str(v) for k, v in lineage.items()})


def dataset_metadata(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The flat metadata of a Dataset artifact: task, rows and hash per split, one ``data_hash`` over the splits,
    and the DVC origin when the data came from a DVC remote."""
    meta: dict[str, Any] = {"task": manifest.get("task")}
    digests = []
    for split, entry in sorted(manifest.get("files", {}).items()):
        meta[f"rows_{split}"] = entry.get("rows")
        digest = entry.get("sha256") or entry.get("fingerprint")
        meta[f"hash_{split}"] = digest
        digests.append(f"{split}:{digest}")
    meta["data_hash"] = hashlib.sha256("\n".join(digests).encode()).hexdigest()
    if manifest.get("dvc"):
        meta["dvc"] = manifest["dvc"]
    return meta
