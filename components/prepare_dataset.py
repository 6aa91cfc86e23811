"""Component 1, prepare dataset: a task's train/test splits + manifest (from the hub, a path, S3 or a DVC remote)."""

from kfp.dsl import Dataset, Output


def prepare_dataset(config: str, mlflow_run_id: str, dataset: Output[Dataset]):
    from spg_lib.pipeline.config import parse_pipeline_config
    from spg_lib.pipeline.prepare import prepare_stage
    from spg_lib.pipeline.stages import dataset_metadata
    from spg_lib.registry.pipeline_run import pipeline_step

    cfg = parse_pipeline_config(config)
    with pipeline_step(mlflow_run_id, "prepare-dataset"):
        manifest = prepare_stage(cfg.data, out_dir=dataset.path)
    dataset.metadata.update(dataset_metadata(manifest))
