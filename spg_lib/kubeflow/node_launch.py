"""What every node of a multi-node training job runs: the controller's ``PET_*`` environment -> ``accelerate launch``.

The TrainJob (Kubeflow Trainer v2, runtime ``spg-torchrun``) or PyTorchJob (Training Operator v1) starts on each
node::

    python -m spg_lib.kubeflow.node_launch --accelerate-config configs/accelerate/ddp.yaml \\
        [--workdir /opt/spg] [--config-env SPG_CONFIG_JSON] -- train --resume --no-progress [-o ...]

which runs (no shell; SIGTERM/SIGINT are forwarded, the exit status is passed on)::

    python -m accelerate.commands.launch --config_file configs/accelerate/ddp.yaml \\
        --num_machines N --num_processes N*P --machine_rank R --main_process_ip A --main_process_port PORT \\
        [--deepspeed_multinode_launcher standard] -m spg_lib.cli train --config ... --resume --no-progress

    accelerate argument         Kubeflow Trainer v2 sets   Training Operator v1 (fallback when PET_* is absent)
    --num_machines N            PET_NNODES                 WORLD_SIZE / PET_NPROC_PER_NODE
    --num_processes N*P         N × PET_NPROC_PER_NODE     (the same)
    --machine_rank R            PET_NODE_RANK              RANK (v1 sets the replica's node index)
    --main_process_ip           PET_MASTER_ADDR            MASTER_ADDR
    --main_process_port         PET_MASTER_PORT            MASTER_PORT

DeepSpeed configurations (``distributed_type: DEEPSPEED``) get ``--deepspeed_multinode_launcher standard``: each
node starts its own processes (torchrun), no ssh/pdsh between pods.

Before anything starts, a ``train --resume`` launch checks the trainer's exact-resume rule: the latest checkpoint in
``train.out_dir`` (shared storage, so a retried job finds it) must have been written by as many processes as this
launch has (N*P), since the data split, the rollout buffers and the RNG states are per process. A launch that
breaks the rule fails with one line saying so, as does a process count that does not divide the step's rows.
``--config-env NAME`` takes the configuration tree (JSON, ``dump_pipeline_config``) from environment variable NAME,
so a pipeline can hand the resolved tree to every node without a shared file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from spg_lib.io import InputError, read_json

__all__ = ["NodeEnv", "check_resume", "is_deepspeed_config", "launch_args", "main", "node_env", "recorded_world_size"]


@dataclasses.dataclass(frozen=True)
class NodeEnv:
    """One node's view of the job: N nodes × P processes, this node's rank R, the rank-0 node's address."""

    nnodes: int
    nproc_per_node: int
    node_rank: int
    master_addr: str
    master_port: int

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node


def _first(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    """(name, stripped value) of the first of ``names`` set non-empty in ``env``."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _missing(names: Sequence[str]) -> InputError:
    alt = f" (nor {', '.join(names[1:])})" if len(names) > 1 else ""
    return InputError(f"{names[0]} is not set{alt}: node_launch runs inside a TrainJob/PyTorchJob node, whose "
                      "controller sets it")


def _int(name: str, value: str, minimum: int, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        extra = " (an elastic range: SPG needs a fixed node count)" if ":" in value else ""
        raise InputError(f"{name}={value!r} is not {what}{extra}")
    return number


def node_env(env: Mapping[str, str]) -> NodeEnv:
    """The node's geometry from the controller's environment (``PET_*`` first, Training Operator v1 names second).

    Raises:
        InputError: one line naming the variable that is missing or invalid.
    """
    found = _first(env, ["PET_NPROC_PER_NODE"])
    if found is None:
        raise _missing(["PET_NPROC_PER_NODE"])
    nproc = _int(*found, 1, "a process count >= 1 (set trainer.numProcPerNode / nprocPerNode to an integer)")
    found = _first(env, ["PET_NNODES"])
    if found is not None:
        nnodes = _int(*found, 1, "a node count >= 1")
    else:
        found = _first(env, ["WORLD_SIZE"])
        if found is None:
            raise _missing(["PET_NNODES", "WORLD_SIZE"])
        world = _int(*found, 1, "a process count >= 1")
        if world % nproc:
            raise InputError(f"WORLD_SIZE={world} is not a multiple of PET_NPROC_PER_NODE={nproc}")
        nnodes = world // nproc
    found = _first(env, ["PET_NODE_RANK", "RANK"])
    if found is None:
        raise _missing(["PET_NODE_RANK", "RANK"])
    rank = _int(*found, 0, "a node rank >= 0")
    if rank >= nnodes:
        raise InputError(f"{found[0]}={rank} is not below the node count {nnodes}")
    found = _first(env, ["PET_MASTER_ADDR", "MASTER_ADDR"])
    if found is None:
        raise _missing(["PET_MASTER_ADDR", "MASTER_ADDR"])
    addr = found[1]
    if any(c.isspace() for c in addr):
        raise InputError(f"{found[0]}={addr!r} is not a host name or address")
    found = _first(env, ["PET_MASTER_PORT", "MASTER_PORT"])
    if found is None:
        raise _missing(["PET_MASTER_PORT", "MASTER_PORT"])
    port = _int(*found, 1, "a TCP port (1-65535)")
    if port > 65535:
        raise InputError(f"{found[0]}={port} is not a TCP port (1-65535)")
    return NodeEnv(nnodes=nnodes, nproc_per_node=nproc, node_rank=rank, master_addr=addr, master_port=port)


def launch_args(env: Mapping[str, str], accelerate_config: str, spg_args: list[str], *, deepspeed: bool = False,
                python: str = sys.executable) -> list[str]:
    """The ``accelerate launch`` argv of this node: ``num_processes`` is the total N*P over all nodes.

    ``deepspeed``: the configuration is a DeepSpeed one (adds ``--deepspeed_multinode_launcher standard``).

    Raises:
        InputError: a ``PET_*`` (or fallback) variable is missing or invalid, or ``spg_args`` is empty.
    """
    node = node_env(env)
    if not spg_args:
        raise InputError("no spg command after '--' (e.g. -- train --config params.yaml --resume)")
    args = [python, "-m", "accelerate.commands.launch", "--config_file", accelerate_config,
            "--num_machines", str(node.nnodes), "--num_processes", str(node.world_size),
            "--machine_rank", str(node.node_rank), "--main_process_ip", node.master_addr,
            "--main_process_port", str(node.master_port)]
    if deepspeed:
        args += ["--deepspeed_multinode_launcher", "standard"]
    return [*args, "-m", "spg_lib.cli", *spg_args]


# ---------------------------------------------------------------------------------------------- resume rule
def recorded_world_size(checkpoint: str | Path) -> int:
    """The process count that wrote ``checkpoint`` (``step-<N>/``): ``meta.json`` ``world_size`` if recorded there,
    else ``state.pt`` ``world_size`` (memory-mapped: the tensors are not read), 1 when absent (as the trainer)."""
    path = Path(checkpoint)
    meta = read_json(path / "meta.json", what="checkpoint meta")
    if "world_size" in meta:
        return int(meta["world_size"])
    import torch

    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False, mmap=True)
    return int(state.get("world_size", 1))


def _train_args(spg_args: Sequence[str]) -> argparse.Namespace:
    """The few `spg train` options that decide the tree and out_dir (the same names as spg_lib.cli.options)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", default=None)
    p.add_argument("-o", "--override", action="append", default=[])
    p.add_argument("--out-dir", default=None)
    p.add_argument("--resume", action="store_true")
    args, _ = p.parse_known_args(list(spg_args[1:]))
    return args


def check_resume(spg_args: Sequence[str], world_size: int) -> None:
    """Refuse a `train` launch of ``world_size`` processes that cannot work: a process count that does not divide
    the step's rows, or ``--resume`` from a checkpoint written by a different process count.

    Raises:
        ValueError: one line stating the rule and what to change.
    """
    if not spg_args or spg_args[0] != "train":
        return
    import json

    from spg_lib.pipeline.config import load_pipeline_config
    from spg_lib.training.checkpoint import latest_checkpoint

    args = _train_args(spg_args)
    overrides = list(args.override) + ([f"train.out_dir={json.dumps(args.out_dir)}"] if args.out_dir else [])
    cfg = load_pipeline_config(args.config, overrides)
    cfg.train.check_world(world_size)
    if not args.resume:
        return  # a fresh run refuses an out_dir with checkpoints by itself
    latest = latest_checkpoint(Path(cfg.train.out_dir) / "checkpoints")
    if latest is None:
        return
    recorded = recorded_world_size(latest)
    if recorded != world_size:
        raise ValueError(f"{latest} was written by {recorded} processes but this launch has {world_size}: exact "
                         f"resume needs the same process count (data split, rollout buffers and RNG states are per "
                         f"process); run {recorded} processes in all (nodes × processes per node), or train into "
                         f"a fresh train.out_dir")


# ---------------------------------------------------------------------------------------------- entry point
def is_deepspeed_config(config: str | Path) -> bool:
    """Whether an accelerate configuration file launches DeepSpeed (``distributed_type: DEEPSPEED``)."""
    from spg_lib.config import read_yaml_mapping

    return str(read_yaml_mapping(config).get("distributed_type", "")).upper() == "DEEPSPEED"


def _with_config_from_env(spg_args: list[str], name: str, env: Mapping[str, str], tmp: Path) -> list[str]:
    """``spg_args`` with ``--config <file>``, the file holding the tree from environment variable ``name``."""
    from spg_lib.pipeline.config import parse_pipeline_config

    text = env.get(name, "")
    if not text.strip():
        raise InputError(f"--config-env {name}: environment variable {name} is not set or empty")
    if any(a == "--config" or a.startswith("--config=") for a in spg_args):
        raise InputError(f"--config-env {name} and {spg_args[0]} --config both name a configuration: give one")
    parse_pipeline_config(text, where=f"${name}")
    path = tmp / "config.json"
    path.write_text(text)
    return [spg_args[0], "--config", str(path), *spg_args[1:]]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m spg_lib.kubeflow.node_launch", description=__doc__.split("\n")[0])
    p.add_argument("--accelerate-config", required=True, metavar="FILE",
                   help="accelerate launch configuration (configs/accelerate/*.yaml)")
    p.add_argument("--workdir", default=None, metavar="DIR",
                   help="change to DIR first (relative config paths and the DeepSpeed JSONs resolve there)")
    p.add_argument("--config-env", default=None, metavar="NAME",
                   help="take the configuration tree (JSON) from environment variable NAME")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, spg_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    opts = _parser().parse_args(own)
    tmp = Path(tempfile.mkdtemp(prefix="spg-node-launch-"))
    try:
        if opts.workdir:
            os.chdir(opts.workdir)
        config = Path(opts.accelerate_config)
        if not config.is_file():
            raise InputError(f"--accelerate-config {config}: no such file (in {Path.cwd()})")
        if opts.config_env and spg_args:
            spg_args = _with_config_from_env(spg_args, opts.config_env, os.environ, tmp)
        argv_launch = launch_args(os.environ, str(config), spg_args, deepspeed=is_deepspeed_config(config))
        node = node_env(os.environ)
        check_resume(spg_args, node.world_size)
    except (InputError, ValueError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.environ.get("SPG_DEBUG"):
            raise
        print(f"node_launch: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 2
    print(f"node_launch: node {node.node_rank} of {node.nnodes}, {node.nproc_per_node} processes per node, "
          f"rank 0 at {node.master_addr}:{node.master_port}: {' '.join(argv_launch)}", flush=True)
    try:
        proc = subprocess.Popen(argv_launch)
        for sig in (signal.SIGTERM, signal.SIGINT):  # as PID 1 of a container nothing else would pass them on
            signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
        code = proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
