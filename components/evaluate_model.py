"""Component 4, benchmark evaluation: greedy decoding on the prepared test split with the ``evaluate`` protocol."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def evaluate_model(config: str, mlflow_run_id: str, label: str, dataset: Input[Dataset], model: Input[Model],
                   metrics: Output[Metrics], evaluation: Output[Artifact]) -> float:
    import os
    import tempfile

    from spg_lib.pipeline import stages
    from spg_lib.pipeline.config import parse_pipeline_config
    from spg_lib.registry.pipeline_run import log_run_metrics, pipeline_step

    cfg = parse_pipeline_config(config)
    with pipeline_step(mlflow_run_id, f"evaluate-{label}"):
        model_dir = stages.model_dir_of(model.metadata, model.path, os.environ.get("SPG_SCRATCH",
                                                                                   tempfile.gettempdir()))
        result = stages.run_evaluation(cfg, dataset.path, model_dir, evaluation.path)
    values = {"accuracy": result.accuracy, "wall_time_s": result.wall_time_s, "n": float(result.protocol.n)}
    if result.mean_completion_tokens is not None:
        values["mean_completion_tokens"] = result.mean_completion_tokens
    for key, value in values.items():
        metrics.log_metric(key, value)
    evaluation.metadata.update({"label": label, "accuracy": result.accuracy, "task": result.protocol.task})
    log_run_metrics(mlflow_run_id, {f"{label}_{k}": v for k, v in values.items()})
    return float(result.accuracy)
