"""Glue: resolve the run's configuration tree once (file in the image + UI parameters + dotted overrides) and open
the run's MLflow record; every later step receives the resolved tree as JSON."""

from typing import NamedTuple


def resolve_config(config_file: str, overrides: list, task: str, method: str, neg_estimator: str,
                   base_model_uri: str, experiment: str, registered_model: str, min_gain: float, gpus: int,
                   eval_gpus: int, nodes: int, accelerator_type: str, checkpoint_root: str, job_id: str
                   ) -> NamedTuple("ResolvedConfig", config=str, config_hash=str, mlflow_run_id=str,
                                                    train_gpus=int):
    from spg_lib.pipeline.config import dump_pipeline_config
    from spg_lib.pipeline.stages import config_hash, resolve_config, training_task_gpus
    from spg_lib.registry.pipeline_run import pipeline_step, start_pipeline_run

    ui = dict(task=task, method=method, neg_estimator=neg_estimator, base_model_uri=base_model_uri,
              experiment=experiment, registered_model=registered_model, min_gain=min_gain, gpus=gpus,
              eval_gpus=eval_gpus, nodes=nodes, accelerator_type=accelerator_type, checkpoint_root=checkpoint_root)
    cfg = resolve_config(config_file, overrides, ui)
    digest = config_hash(cfg)
    run_id = start_pipeline_run(job_id, cfg.train.experiment, {"config_hash": digest, "config_file": config_file,
                                                                "task": cfg.train.task, "method": cfg.train.algo.name})
    with pipeline_step(run_id, "resolve-config"):
        pass
    return (dump_pipeline_config(cfg), digest, run_id, training_task_gpus(cfg))
