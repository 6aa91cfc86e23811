"""Component 3, SPG training: the trainer on the base checkpoint, checkpointing to ``<kfp.checkpoint_root>/<job
id>/train`` so that a retried (preempted) task resumes exactly; under ``accelerate launch`` for several GPUs, and
for several nodes as a small launcher of a Kubeflow Trainer TrainJob (``kfp.nodes`` > 1), with the same outputs."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def train_spg(config: str, mlflow_run_id: str, job_id: str, dataset: Input[Dataset], base_model: Input[Model],
              model: Output[Model], metrics: Output[Metrics], train_log: Output[Artifact]):
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import torch

    from spg_lib.pipeline import stages
    from spg_lib.pipeline.config import parse_pipeline_config
    from spg_lib.registry.pipeline_run import log_run_metrics, pipeline_step

    cfg = parse_pipeline_config(config)
    scratch = os.environ.get("SPG_SCRATCH", tempfile.gettempdir())
    torch.manual_seed(cfg.train.seed)  # dropout's global RNG, seeded at the entry point as `spg train` does
    with pipeline_step(mlflow_run_id, "train"):
        base_dir = stages.model_dir_of(base_model.metadata, base_model.path, scratch)
        if cfg.kfp.nodes > 1:
            from spg_lib.kubeflow.trainjob import launch_training

            run = stages.training_dir(cfg.kfp.checkpoint_root, job_id)
            data_dir, base_dir = stages.stage_shared_inputs(dataset.path, base_dir, run)
            result = launch_training(stages.train_config(cfg, data_dir, base_dir, run), job_id=job_id, out_dir=run,
                                     accelerate_config=cfg.kfp.accelerate_config, controller=cfg.kfp.controller)
            result.update(checkpoint_uri=Path(result["final_model"]).as_uri(), steps=cfg.train.max_steps,
                          resumed=None)
        else:
            result = stages.run_pipeline_training(cfg, dataset.path, base_dir, job_id, scratch)
    shutil.copyfile(result["metrics_log"], train_log.path)
    os.makedirs(model.path, exist_ok=True)
    model.metadata.update({"checkpoint_uri": result["checkpoint_uri"], "base_model": base_model.metadata.get(
        "base_model"), "method": cfg.train.algo.name, "neg_estimator": cfg.train.algo.neg_estimator,
        "step": result["steps"], "mlflow_run_id": mlflow_run_id, "resumed": result["resumed"],
        "nodes": cfg.kfp.nodes})
    values = {**stages.reward_summary(result["metrics_log"]), "wall_time_s": result["wall_time_s"],
              "steps": float(result["steps"])}
    for key, value in values.items():
        metrics.log_metric(key, value)
    log_run_metrics(mlflow_run_id, {f"train_{k}": v for k, v in values.items()})
