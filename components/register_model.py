"""Component 5, model registration: an MLflow model version with aliases (``champion`` only under the
same-protocol rule) and lineage tags (git sha, data hash, pipeline run id, configuration hash)."""

from kfp.dsl import Artifact, Dataset, Input, Model, Output


def register_model(config: str, mlflow_run_id: str, job_id: str, config_hash: str, dataset: Input[Dataset],
                   model: Input[Model], trained_eval: Input[Artifact], registration: Output[Artifact]) -> str:
    import json
    import os
    import tempfile

    from spg_lib.pipeline import stages
    from spg_lib.pipeline.config import parse_pipeline_config
    from spg_lib.registry.lineage import git_commit
    from spg_lib.registry.pipeline_run import pipeline_step

    cfg = parse_pipeline_config(config)
    scratch = os.environ.get("SPG_SCRATCH", tempfile.gettempdir())
    lineage = {"git_commit": git_commit(), "data_hash": dataset.metadata.get("data_hash", "unknown"),
               "pipeline_job_id": job_id, "mlflow_pipeline_run": mlflow_run_id, "config_hash": config_hash}
    with pipeline_step(mlflow_run_id, "register-model"):
        model_dir = stages.model_dir_of(model.metadata, model.path, scratch)
        result = stages.run_registration(cfg, model_dir, os.path.join(trained_eval.path, "metrics.json"), lineage,
                                         tempfile.mkdtemp(dir=scratch))
    with open(registration.path, "w") as fh:
        json.dump(result.as_dict(), fh, indent=2)
    registration.metadata.update({"name": result.name, "version": result.version, "aliases": result.aliases,
                                  "model_uri": result.model_uri})
    return result.version
