"""Kubeflow: what runs against a cluster's APIs, as opposed to the pipeline definition in `pipelines/`.

Submission and scheduled retraining (`spg kfp submit`, `spg kfp schedule`):

    from spg_lib.kubeflow.client import schedule_run, submit_run
    submit_run("pipeline.yaml", {"train_steps": "80"}, experiment="spg", run_name="spg-sudoku-1")
    schedule_run("pipeline.yaml", {}, cron="0 0 3 * * *", schedule_name="nightly", experiment="spg")

- `spg_lib.kubeflow.client`: upload a compiled pipeline (or a new version of it), get or create the experiment,
  create a run or a recurring run through `kfp.Client`; endpoint and credentials from KFP_ENDPOINT,
  KFP_NAMESPACE, KFP_TOKEN / KFP_TOKEN_FILE; every local check before the first request.
- `spg_lib.kubeflow.cron`: KFP's six-field cron expressions (seconds first), checked field by field.

The package imports nothing at import time, so each module stays as light as its own imports.
"""
