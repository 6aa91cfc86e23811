"""The SPG pipeline: prepare -> base checkpoint -> train -> evaluate base | evaluate trained -> report ->
register (only when the gain clears ``min_gain`` on one protocol), inside an exit handler that closes the run's
MLflow record (FAILED with the failed step when anything fails).

``build_pipeline(cfg, config_file)`` returns the pipeline function for one configuration file: every UI
parameter's default comes from that file (`spg_lib.pipeline.stages.ui_defaults`), so a UI run with defaults and
``dvc repro`` of the same file agree. Placement (kfp-kubernetes): accelerator type and count, CPU/memory
requests, a memory-backed /dev/shm, node selector and tolerations as parameters on training and evaluation;
S3 and MLflow credentials from Secrets as environment variables on every task; caching only for data
preparation; retries with exact resume on training.
"""


from typing import Any

from kfp import dsl, kubernetes

import components
from spg_lib.pipeline.config import PipelineConfig
from spg_lib.pipeline.stages import ui_defaults

__all__ = ["MLFLOW_SECRET_KEYS", "S3_SECRET_KEYS", "build_pipeline"]

# Secret key -> environment variable (the keys are the variable names); the optional ones may be absent.
S3_SECRET_KEYS = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}
S3_OPTIONAL_KEYS = {"AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION": "AWS_DEFAULT_REGION"}
MLFLOW_SECRET_KEYS = {"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI"}
MLFLOW_OPTIONAL_KEYS = {"MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                        "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
                        "MLFLOW_TRACKING_TOKEN": "MLFLOW_TRACKING_TOKEN"}


def _secrets(task: Any, cfg: PipelineConfig) -> Any:
    kubernetes.use_secret_as_env(task, cfg.kfp.s3_secret, S3_SECRET_KEYS)
    kubernetes.use_secret_as_env(task, cfg.kfp.s3_secret, S3_OPTIONAL_KEYS, optional=True)
    kubernetes.use_secret_as_env(task, cfg.kfp.mlflow_secret, MLFLOW_SECRET_KEYS)
    kubernetes.use_secret_as_env(task, cfg.kfp.mlflow_secret, MLFLOW_OPTIONAL_KEYS, optional=True)
    return task


def _gpu_placement(task: Any, cfg: PipelineConfig, gpus: Any, accelerator_type: Any, node_selector: Any,
                   tolerations: Any) -> Any:
    task.set_accelerator_type(accelerator_type).set_accelerator_limit(gpus)
    task.set_cpu_request(cfg.kfp.cpu_request).set_memory_request(cfg.kfp.memory_request)
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                               size_limit=cfg.kfp.shm_size)
    kubernetes.add_node_selector_json(task, node_selector)
    kubernetes.add_toleration_json(task, tolerations)
    task.set_caching_options(False)
    return task


def build_pipeline(cfg: PipelineConfig, config_file: str) -> Any:
    """The pipeline function for configuration file ``config_file`` (a path inside the image's working
    directory, e.g. ``params.yaml``) whose loaded tree is ``cfg``."""
    c = components.build(cfg.kfp.image, cfg.kfp.cpu_image)
    d = ui_defaults(cfg)

    @dsl.pipeline(name=cfg.kfp.pipeline_name,
                  description=f"SPG RL fine-tuning of a masked diffusion LM ({config_file}): prepare, base "
                              "checkpoint, train, evaluate base and trained, report, register if it gains.")
    def spg_pipeline(
        config_file: str = config_file,
        overrides: list = [],  # noqa: B006 - a KFP parameter default (compiled into the IR), never mutated
        task: str = d["task"],
        method: str = d["method"],
        neg_estimator: str = d["neg_estimator"],
        base_model_uri: str = d["base_model_uri"],
        experiment: str = d["experiment"],
        registered_model: str = d["registered_model"],
        min_gain: float = d["min_gain"],
        gpus: int = d["gpus"],
        eval_gpus: int = d["eval_gpus"],
        nodes: int = d["nodes"],
        accelerator_type: str = d["accelerator_type"],
        checkpoint_root: str = d["checkpoint_root"],
        node_selector: dict = cfg.kfp.node_selector,
        tolerations: list = cfg.kfp.tolerations,
    ):
        final = c.finalize_run(job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, experiment=experiment)
        final.set_caching_options(False)
        _secrets(final, cfg)
        with dsl.ExitHandler(final, name="spg-run"):
            conf = c.resolve_config(config_file=config_file, overrides=overrides, task=task, method=method,
                                    neg_estimator=neg_estimator, base_model_uri=base_model_uri,
                                    experiment=experiment, registered_model=registered_model, min_gain=min_gain,
                                    gpus=gpus, eval_gpus=eval_gpus, nodes=nodes, accelerator_type=accelerator_type,
                                    checkpoint_root=checkpoint_root, job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
            conf.set_caching_options(False).set_display_name("resolve configuration")
            config, run_id = conf.outputs["config"], conf.outputs["mlflow_run_id"]

            prep = c.prepare_dataset(config=config, mlflow_run_id=run_id)
            prep.set_caching_options(True).set_display_name("prepare dataset")

            base = c.base_checkpoint(config=config, mlflow_run_id=run_id, dataset=prep.outputs["dataset"])
            base.set_caching_options(False).set_display_name("base checkpoint")

            # one node: this task trains on `gpus` accelerators; several: it is the launcher of a TrainJob that gets
            # the GPUs, so it requests none (resolve-config's train_gpus = gpus if nodes == 1 else 0). Retries
            # resume from the run-scoped checkpoints either way.
            train = c.train_spg(config=config, mlflow_run_id=run_id, job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                                dataset=prep.outputs["dataset"], base_model=base.outputs["model"])
            _gpu_placement(train, cfg, conf.outputs["train_gpus"], accelerator_type, node_selector, tolerations)
            train.set_retry(num_retries=cfg.kfp.retries, backoff_duration=cfg.kfp.retry_backoff,
                            backoff_factor=2.0, backoff_max_duration="600s")
            train.set_display_name("SPG training")

            evals = {}
            for label, model in (("base", base.outputs["model"]), ("trained", train.outputs["model"])):
                ev = c.evaluate_model(config=config, mlflow_run_id=run_id, label=label,
                                      dataset=prep.outputs["dataset"], model=model)
                _gpu_placement(ev, cfg, eval_gpus, accelerator_type, node_selector, tolerations)
                ev.set_display_name(f"evaluate {label}")
                evals[label] = ev

            rep = c.report(config=config, mlflow_run_id=run_id, base_eval=evals["base"].outputs["evaluation"],
                           trained_eval=evals["trained"].outputs["evaluation"], train_log=train.outputs["train_log"])
            rep.set_caching_options(False).set_display_name("report and gate")

            with dsl.If(rep.outputs["Output"] == True, name="gain-at-least-min-gain"):  # noqa: E712 - a KFP condition
                reg = c.register_model(config=config, mlflow_run_id=run_id, job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                                       config_hash=conf.outputs["config_hash"], dataset=prep.outputs["dataset"],
                                       model=train.outputs["model"],
                                       trained_eval=evals["trained"].outputs["evaluation"])
                reg.set_caching_options(False).set_display_name("register model")

        for t in (conf, prep, base, train, *evals.values(), rep, reg):
            _secrets(t, cfg)
        if cfg.kfp.checkpoint_pvc:  # checkpoints (and multi-node inputs) on the shared volume
            for t in (train, *evals.values(), reg):
                kubernetes.mount_pvc(t, pvc_name=cfg.kfp.checkpoint_pvc, mount_path=cfg.kfp.checkpoint_mount)

    return spg_pipeline
