"""Glue, the exit handler: close the run's MLflow record as FINISHED, or FAILED with the step that failed."""

from kfp import dsl


def finalize_run(status: dsl.PipelineTaskFinalStatus, job_id: str, experiment: str) -> str:
    import json

    from spg_lib.registry.pipeline_run import finish_pipeline_run

    error = (status.error_message or "") if status.state != "SUCCEEDED" else None
    record = finish_pipeline_run(job_id, experiment, status.state, error)
    print(json.dumps(record))
    return record["status"]
