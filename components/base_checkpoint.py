"""Component 2, base checkpoint: fetch ``base_model.uri`` (hf://, s3://, file://) or SFT-bootstrap one."""

from kfp.dsl import Dataset, Input, Model, Output


def base_checkpoint(config: str, mlflow_run_id: str, dataset: Input[Dataset], model: Output[Model]):
    from spg_lib.pipeline.config import parse_pipeline_config
    from spg_lib.pipeline.stages import run_base_model
    from spg_lib.registry.pipeline_run import pipeline_step

    cfg = parse_pipeline_config(config)
    with pipeline_step(mlflow_run_id, "base-checkpoint"):
        result = run_base_model(cfg, dataset.path, model.path)
    model.metadata.update({"checkpoint_subdir": "model", "source": result["source"],
                           "base_model": cfg.base_model.uri or f"sft:{cfg.sft.model}", "method": "base", "step": 0,
                           "mlflow_run_id": mlflow_run_id, "wall_time_s": result["wall_time_s"]})
