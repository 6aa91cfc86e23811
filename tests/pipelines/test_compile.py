"""The compiled pipelines: committed YAML is fresh, parses strictly as KFP IR, and has the promised structure
(five components, GPU request on training, the If gate, the exit handler, secrets as env, caching, retries)."""

from __future__ import annotations

import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines.compile import COMPILED, ROOT, compile_text, shipped_configs
from spg_lib.pipeline.config import load_pipeline_config

COMPONENTS = ("prepare-dataset", "base-checkpoint", "train-spg", "evaluate-model", "register-model")


def _docs(text: str) -> tuple[pipeline_spec_pb2.PipelineSpec, dict, dict]:
    """(PipelineSpec parsed strictly, its dict, the platform spec dict)."""
    docs = list(yaml.safe_load_all(text))
    assert len(docs) == 2, "pipeline spec + kubernetes platform spec"
    spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    platform = json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
    assert platform.platforms["kubernetes"]
    return spec, docs[0], docs[1]


@pytest.fixture(scope="module")
def compiled() -> dict[str, str]:
    return {name: compile_text(config) for name, config in shipped_configs().items()}


def test_committed_yaml_is_fresh(compiled):
    for name, text in compiled.items():
        path = COMPILED / name
        assert path.is_file(), f"{path} missing: run python -m pipelines.compile"
        assert path.read_text() == text, f"{path} is stale: run python -m pipelines.compile"
    assert {p.name for p in COMPILED.glob("*.yaml")} == set(compiled), "compiled/ holds a pipeline nobody ships"


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_structure(compiled, name):
    config = shipped_configs()[name]
    cfg = load_pipeline_config(ROOT / config)
    spec, doc, platform_doc = _docs(compiled[name])
    assert spec.pipeline_info.name == cfg.kfp.pipeline_name
    executors = doc["deploymentSpec"]["executors"]
    for comp in COMPONENTS:
        assert f"exec-{comp}" in executors, comp
    # images fixed at compile time, nothing installed at run time
    for exe_name, exe in executors.items():
        image = exe["container"]["image"]
        gpu_step = exe_name in ("exec-train-spg", "exec-evaluate-model", "exec-evaluate-model-2")
        assert image == (cfg.kfp.image if gpu_step else cfg.kfp.cpu_image), exe_name
        script = " ".join(exe["container"]["command"])
        assert "pip install" not in script and "pip3 install" not in script, exe_name

    # GPU request on training and evaluation: type and count from the UI parameters (training: resolve-config's
    # train_gpus, which is `gpus` on one node and 0 for the launcher of a multi-node TrainJob)
    for exe_name, count in (("exec-train-spg", "resolve-config-train_gpus"), ("exec-evaluate-model", "eval_gpus"),
                            ("exec-evaluate-model-2", "eval_gpus")):
        acc = executors[exe_name]["container"]["resources"]["accelerator"]
        assert f"pipelinechannel--{count}'" in acc["resourceCount"]
        assert "pipelinechannel--accelerator_type" in acc["resourceType"]
        assert executors[exe_name]["container"]["resources"]["resourceCpuRequest"] == cfg.kfp.cpu_request
    params = doc["root"]["inputDefinitions"]["parameters"]
    assert params["gpus"]["defaultValue"] == cfg.kfp.gpus
    assert params["config_file"]["defaultValue"] == config
    assert params["task"]["defaultValue"] == cfg.train.task
    assert params["method"]["defaultValue"] == cfg.train.algo.name
    if config.startswith("configs/paper"):
        assert cfg.kfp.gpus >= 1

    # exit handler: finalize-run after the exit-handler group, whatever its outcome, gets the final status
    root_tasks = doc["root"]["dag"]["tasks"]
    assert set(root_tasks) == {"exit-handler-1", "finalize-run"}
    fin = root_tasks["finalize-run"]
    assert fin["dependentTasks"] == ["exit-handler-1"]
    assert fin["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert "taskFinalStatus" in str(fin["inputs"])

    # the If gate: register-model only inside the condition on report's output
    body = doc["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    tasks = {n: t for comp in doc["components"].values() for n, t in comp.get("dag", {}).get("tasks", {}).items()}
    conds = {n: t for n, t in tasks.items() if "condition" in t.get("triggerPolicy", {})}
    gate = [t for t in conds.values() if "report-Output" in t["triggerPolicy"]["condition"]]
    assert len(gate) == 1 and gate[0]["triggerPolicy"]["condition"].endswith("== true")
    assert list(doc["components"][gate[0]["componentRef"]["name"]]["dag"]["tasks"]) == ["register-model"]
    assert "register-model" not in body

    # caching: on for data preparation only; retries on training
    assert body["prepare-dataset"]["cachingOptions"]["enableCache"] is True
    for t in ("train-spg", "evaluate-model", "evaluate-model-2", "base-checkpoint", "resolve-config",
              "report", "register-model"):
        assert not tasks[t].get("cachingOptions", {}).get("enableCache", False), t
    retry = tasks["train-spg"]["retryPolicy"]
    assert retry["maxRetryCount"] == cfg.kfp.retries and retry["backoffDuration"] == cfg.kfp.retry_backoff

    # kubernetes platform: secrets as env on every task, /dev/shm on the GPU tasks, selector/tolerations as params
    configs = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(configs) == set(executors)
    for exe_name, conf in configs.items():
        k8s = json_format.ParseDict(conf, k8s_pb2.KubernetesExecutorConfig(), ignore_unknown_fields=False)
        names = {s.secret_name for s in k8s.secret_as_env}
        assert names == {cfg.kfp.s3_secret, cfg.kfp.mlflow_secret}, exe_name
        env = {kv.env_var for s in k8s.secret_as_env for kv in s.key_to_env}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_URI"} <= env
        assert all(not s.optional for s in k8s.secret_as_env if any(
            kv.env_var in ("AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_URI") for kv in s.key_to_env))
        if exe_name in ("exec-train-spg", "exec-evaluate-model", "exec-evaluate-model-2"):  # not the launcher
            shm = [m for m in k8s.empty_dir_mounts if m.mount_path == "/dev/shm"]
            assert shm and shm[0].medium == "Memory" and shm[0].size_limit == cfg.kfp.shm_size
            assert "node_selector" in str(conf["nodeSelector"]) and "tolerations" in str(conf["tolerations"])
    # no credential is a pipeline parameter
    assert not any("secret" in p.lower() or "password" in p.lower() or "key" in p.lower() for p in params)
