"""The in-node launcher: PET_* (and Training Operator v1) environment -> `accelerate launch` arguments, the resume
rule "same process count", and the launch itself for real: two local processes (gloo on loopback, CPU) with the
environment a 2-node TrainJob sets, training two steps of the tiny model into one shared out_dir."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spg_lib.cli import build_parser
from spg_lib.cli.options import load_tree
from spg_lib.io import InputError
from spg_lib.kubeflow import node_launch
from spg_lib.kubeflow.node_launch import check_resume, is_deepspeed_config, launch_args, node_env, recorded_world_size
from spg_lib.pipeline.config import dump_pipeline_config, load_pipeline_config
from spg_lib.training.checkpoint import begin_checkpoint, commit_checkpoint, latest_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TRAINER_ENV = {"PET_NNODES": "2", "PET_NPROC_PER_NODE": "8", "PET_NODE_RANK": "1",
               "PET_MASTER_ADDR": "spg-train-x-node-0-0.spg-train-x", "PET_MASTER_PORT": "29400"}


def test_trainer_environment_maps_to_accelerate_multi_node_arguments():
    args = launch_args(TRAINER_ENV, "configs/accelerate/ddp.yaml", ["train", "--config", "p.yaml", "--resume"],
                       python="python")
    assert args == ["python", "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/ddp.yaml",
                    "--num_machines", "2", "--num_processes", "16", "--machine_rank", "1",
                    "--main_process_ip", "spg-train-x-node-0-0.spg-train-x", "--main_process_port", "29400",
                    "-m", "spg_lib.cli", "train", "--config", "p.yaml", "--resume"]


def test_training_operator_v1_names_are_the_fallback():
    # v1.9.4 sets PET_NPROC_PER_NODE / PET_NNODES / PET_NODE_RANK and MASTER_ADDR / MASTER_PORT (no PET_MASTER_*)
    v1 = {"PET_NPROC_PER_NODE": "4", "PET_NNODES": "3", "PET_NODE_RANK": "2", "MASTER_ADDR": "job-master-0",
          "MASTER_PORT": "23456", "WORLD_SIZE": "12", "RANK": "2"}
    node = node_env(v1)
    assert (node.nnodes, node.nproc_per_node, node.node_rank, node.master_addr, node.master_port) == \
        (3, 4, 2, "job-master-0", 23456)
    # without PET_NNODES / PET_NODE_RANK: WORLD_SIZE (= replicas × nproc) and RANK (the node index)
    older = {k: v for k, v in v1.items() if k not in ("PET_NNODES", "PET_NODE_RANK")}
    assert node_env(older) == node
    assert node_env({**v1, "PET_MASTER_ADDR": "pet-wins"}).master_addr == "pet-wins"


def test_deepspeed_configs_use_the_standard_multinode_launcher():
    assert is_deepspeed_config(ROOT / "configs/accelerate/zero2.yaml")
    assert is_deepspeed_config(ROOT / "configs/accelerate/zero3.yaml")
    assert not is_deepspeed_config(ROOT / "configs/accelerate/ddp.yaml")
    assert not is_deepspeed_config(ROOT / "configs/accelerate/fsdp.yaml")
    args = launch_args(TRAINER_ENV, "configs/accelerate/zero2.yaml", ["train"], deepspeed=True)
    i = args.index("--deepspeed_multinode_launcher")
    assert args[i + 1] == "standard" and args.index("-m", 2) > i  # a launcher option, before the module


@pytest.mark.parametrize("missing", ["PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
                                     "PET_MASTER_PORT"])
def test_a_missing_variable_is_named(missing):
    env = {k: v for k, v in TRAINER_ENV.items() if k != missing}
    with pytest.raises(InputError, match=rf"^{missing} is not set") as err:
        launch_args(env, "ddp.yaml", ["train"])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PET_NNODES", "two", "not a node count"), ("PET_NNODES", "0", "not a node count"),
    ("PET_NNODES", "1:3", "elastic range"), ("PET_NPROC_PER_NODE", "auto", "integer"),
    ("PET_NODE_RANK", "2", "not below the node count 2"), ("PET_NODE_RANK", "-1", "node rank"),
    ("PET_MASTER_PORT", "70000", "TCP port"), ("PET_MASTER_PORT", "http", "TCP port"),
    ("PET_MASTER_ADDR", "a b", "host name"),
])
def test_an_invalid_variable_is_named(name, value, message):
    with pytest.raises(InputError, match=rf"^{name}=.*{message}"):
        node_env({**TRAINER_ENV, name: value})


def test_world_size_must_divide_by_processes_per_node():
    env = {"PET_NPROC_PER_NODE": "4", "WORLD_SIZE": "6", "RANK": "0", "MASTER_ADDR": "m", "MASTER_PORT": "1"}
    with pytest.raises(InputError, match=r"^WORLD_SIZE=6 is not a multiple of PET_NPROC_PER_NODE=4"):
        node_env(env)


def test_no_spg_command_is_an_error():
    with pytest.raises(InputError, match="no spg command"):
        launch_args(TRAINER_ENV, "ddp.yaml", [])


# ---------------------------------------------------------------------------------------------- resume rule
def _params(tmp: Path, out: Path, **train) -> Path:
    (tmp / "train.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(8)))
    cfg = {"train": {
        "model": "builtin:tiny", "task": "toy_dense", "plugins": ["tests.training.toy_task"],
        "train_data": str(tmp / "train.jsonl"), "max_prompt_length": 32,
        "algo": {"name": "spg", "neg_estimator": "mix", "gen_length": 16, "block_length": 8, "num_iterations": 1},
        "rollout": {"steps": 4, "batch_size": 4, "temperature": 1.0}, "optim": {"lr": 1e-3},
        "num_generations": 2, "prompts_per_step": 2, "grad_accum": 1, "max_steps": 2, "seed": 0,
        "out_dir": str(out), "checkpoint_every": 1, "chunk_size": 8, **train}}
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _checkpoint(out: Path, world_size: int, step: int = 3, meta_world: int | None = None) -> Path:
    tmp = begin_checkpoint(out / "checkpoints", step)
    meta = {} if meta_world is None else {"world_size": meta_world}
    return commit_checkpoint(tmp, {}, {"world_size": world_size, "rng": [None] * world_size}, meta)


def test_resume_with_another_process_count_is_refused(tmp_path):
    out = tmp_path / "run"
    params = _params(tmp_path, out)
    ckpt = _checkpoint(out, world_size=4)
    assert recorded_world_size(ckpt) == 4
    check_resume(["train", "--config", str(params), "--resume"], 4)  # the same count: fine
    with pytest.raises(ValueError, match=r"step-3 was written by 4 processes but this launch has 2: exact resume "
                                         r"needs the same process count") as err:
        check_resume(["train", "--config", str(params), "--resume", "--no-progress"], 2)
    assert "run 4 processes in all" in str(err.value) and "fresh train.out_dir" in str(err.value)
    check_resume(["train", "--config", str(params)], 2)  # no --resume: the trainer refuses stale checkpoints
    check_resume(["sft", "--config", str(params), "--resume"], 2)  # other commands: nothing to check


def test_meta_json_world_size_is_read_first(tmp_path):
    ckpt = _checkpoint(tmp_path / "run", world_size=1, meta_world=8)
    assert recorded_world_size(ckpt) == 8


def test_a_process_count_that_does_not_divide_the_step_is_refused(tmp_path):
    params = _params(tmp_path, tmp_path / "run")  # 2 prompts × 2 generations = 4 rows per step
    with pytest.raises(ValueError, match="must be divisible by processes × grad_accum = 8 × 1"):
        check_resume(["train", "--config", str(params), "--resume"], 8)


def test_resume_check_reads_the_out_dir_the_cli_uses(tmp_path):
    params = _params(tmp_path, tmp_path / "from-file")
    flag_dir = tmp_path / "from-flag"
    _checkpoint(flag_dir, world_size=2)
    argv = ["train", "--config", str(params), "-o", f"train.out_dir={tmp_path / 'from-override'}",
            "--out-dir", str(flag_dir), "--resume"]
    cli_out = Path(load_tree(build_parser("train").parse_args(argv)).train.out_dir)
    assert cli_out == flag_dir  # the field flag wins over -o, in the CLI ...
    with pytest.raises(ValueError, match=str(latest_checkpoint(flag_dir / "checkpoints"))):
        check_resume(argv, 1)  # ... and in the check


# ---------------------------------------------------------------------------------------------- entry point
def test_main_errors_are_one_line_with_exit_code_2(tmp_path, monkeypatch, capsys):
    for name in TRAINER_ENV:
        monkeypatch.delenv(name, raising=False)
    assert node_launch.main(["--accelerate-config", str(tmp_path / "nope.yaml"), "--", "train"]) == 2
    assert capsys.readouterr().err.strip().startswith("node_launch: error: --accelerate-config ")
    config = str(ROOT / "configs/accelerate/ddp.yaml")
    assert node_launch.main(["--accelerate-config", config, "--", "train"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PET_NPROC_PER_NODE is not set" in err
    for name, value in TRAINER_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SPG_TEST_TREE", raising=False)
    assert node_launch.main(["--accelerate-config", config, "--config-env", "SPG_TEST_TREE", "--", "train"]) == 2
    assert "environment variable SPG_TEST_TREE is not set" in capsys.readouterr().err
    monkeypatch.setenv("SPG_TEST_TREE", '{"train": {"nope": 1}}')
    assert node_launch.main(["--accelerate-config", config, "--config-env", "SPG_TEST_TREE", "--", "train"]) == 2
    err = capsys.readouterr().err
    assert "$SPG_TEST_TREE" in err and "nope" in err
    monkeypatch.setenv("SPG_TEST_TREE", "{}")
    assert node_launch.main(["--accelerate-config", config, "--config-env", "SPG_TEST_TREE", "--",
                             "train", "--config", "params.yaml"]) == 2
    assert "both name a configuration" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node(rank: int, nnodes: int, port: int, tree: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PET_NNODES": str(nnodes), "PET_NPROC_PER_NODE": "1", "PET_NODE_RANK": str(rank),
           "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port), "SPG_CONFIG_JSON": tree}
    cmd = [sys.executable, "-m", "spg_lib.kubeflow.node_launch", "--accelerate-config",
           "configs/accelerate/ddp.yaml", "--workdir", str(ROOT), "--config-env", "SPG_CONFIG_JSON", "--",
           "train", "--resume", "--no-progress"]
    with open(log, "w") as fh:
        # started outside the repository: --workdir must bring the launch there (configs/accelerate/ddp.yaml)
        return subprocess.Popen(cmd, cwd=log.parent, env=env, stdout=fh, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_two_nodes_train_two_steps_for_real_then_a_one_node_resume_is_refused(tmp_path):
    out = tmp_path / "shared" / "train"  # both "nodes" write one out_dir, as on the checkpoint PVC
    tree = dump_pipeline_config(load_pipeline_config(_params(tmp_path, out)))
    port = _free_port()
    logs = [tmp_path / f"node{rank}.log" for rank in (0, 1)]
    procs = [_node(rank, 2, port, tree, logs[rank]) for rank in (0, 1)]
    try:
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    text = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n----\n".join(t[-3000:] for t in text)
    for rank in (0, 1):
        assert f"node_launch: node {rank} of 2, 1 processes per node, rank 0 at 127.0.0.1:{port}" in text[rank]
        assert "--num_machines 2 --num_processes 2 --machine_rank " + str(rank) in text[rank]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert (out / "final" / "model.safetensors").is_file()
    latest = latest_checkpoint(out / "checkpoints")
    assert latest.name == "step-2" and recorded_world_size(latest) == 2

    one = _node(0, 1, _free_port(), tree, tmp_path / "one-node.log")
    assert one.wait(timeout=120) == 2
    err = (tmp_path / "one-node.log").read_text().strip()
    assert err.startswith("node_launch: error: ") and err.count("\n") == 0
    assert f"{latest} was written by 2 processes but this launch has 1" in err
