"""Glue: the UI report (Markdown accuracy table, HTML page with the reward curve and accuracy per completion
length) and the registration gate: same protocol and a gain of at least ``kfp.min_gain`` points."""

from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Output


def report(config: str, mlflow_run_id: str, base_eval: Input[Artifact], trained_eval: Input[Artifact],
           train_log: Input[Artifact], table: Output[Markdown], page: Output[HTML], summary: Output[Metrics]) -> bool:
    import tempfile

    from spg_lib.pipeline.config import parse_pipeline_config
    from spg_lib.pipeline.stages import run_report
    from spg_lib.registry.pipeline_run import log_run_metrics, pipeline_step

    cfg = parse_pipeline_config(config)
    with pipeline_step(mlflow_run_id, "report"):
        result = run_report(cfg, base_eval.path, trained_eval.path, train_log.path, tempfile.mkdtemp())
    with open(table.path, "w") as fh:
        fh.write(result["markdown"])
    with open(page.path, "w") as fh:
        fh.write(result["html"])
    numbers = {k: v for k, v in result["summary"].items() if isinstance(v, int | float) and not isinstance(v, bool)}
    for key, value in numbers.items():
        summary.log_metric(key, value)
    summary.log_metric("passed_gate", float(result["passed"]))
    summary.log_metric("gain", float(result["gain"]))
    log_run_metrics(mlflow_run_id, {"accuracy_gain": result["gain"], "passed_gate": float(result["passed"])})
    return bool(result["passed"])  # the gate (one output: kfp.local resolves conditions on `Output` only)
