"""`spg train`: RL fine-tuning (SPG and baselines) from a YAML config.

    spg train --config params.yaml                     # section `train`
    spg train --config params.yaml -o algo.name=d1 -o algo.kl_beta=0.04
    spg train --config params.yaml --resume            # continue from the latest checkpoint
    accelerate launch --config_file configs/accelerate/ddp.yaml -m spg_lib.cli train --config params.yaml

Launch configurations (DDP, FSDP, DeepSpeed ZeRO-2/3, multi-node) are in configs/accelerate/ (README.md there).
A task outside spg_lib comes in through `train.plugins: [mypkg.tasks]`: the modules are imported before the task
lookup and register their tasks with `@spg_lib.tasks.registry.register_task`.
A fresh run refuses an out_dir that already holds checkpoints (pass --resume, or choose another out_dir); a
resumed run restores weights, optimizer, scheduler, the rollout buffer, data position and every process's RNG
states, so a run killed at any point and resumed ends bitwise equal to an uninterrupted one (same processes).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="RL fine-tuning with SPG / D1 / WD1 / UniGRPO / ESPO")
    p.add_argument("--config", default="params.yaml", help="YAML with a `train:` section (default params.yaml)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override of the `train` section, e.g. algo.name=d1 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in out_dir (none: start fresh)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from spg_lib.config import load_config
    from spg_lib.training.config import TrainConfig
    from spg_lib.training.run import run_train

    cfg = load_config(TrainConfig, args.config, section="train", overrides=args.override)  # fails before loading
    # the only global RNG consumer is dropout (LoRA/attention); seeded here at the edge, saved in checkpoints
    torch.manual_seed(cfg.seed)
    result = run_train(cfg, resume=args.resume, progress=not args.no_progress)
    if result["final_model"]:
        print(f"final model: {result['final_model']}")
    return 0
