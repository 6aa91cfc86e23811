"""`spg train`: RL fine-tuning (SPG and baselines), section `train` of the parameter file.

    spg train --config params.yaml
    spg train -o train.algo.name=d1 -o train.algo.kl_beta=0.04 --max-steps 200
    spg train --config params.yaml --resume            # continue from the latest checkpoint
    accelerate launch --config_file configs/accelerate/ddp.yaml -m spg_lib.cli train --config params.yaml

With ``train.before_after_eval`` the starting and trained models are evaluated with the `evaluate` section (the
protocol of the evaluate stage) and a before/after table is printed. Launch configurations (DDP, FSDP, DeepSpeed
ZeRO-2/3, multi-node) are in configs/accelerate/. A task outside spg_lib comes in through
``train.plugins: [mypkg.tasks]``: the modules are imported before the task lookup and register their tasks with
``@spg_lib.tasks.registry.register_task``. A fresh run refuses an out_dir that already holds checkpoints (pass
--resume, or choose another out_dir); a resumed run restores weights, optimizer, scheduler, the rollout buffer,
data position and every process's RNG states, so a run killed at any point and resumed ends bitwise equal to an
uninterrupted one (same number of processes).
"""

from __future__ import annotations

import argparse

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "train")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in out_dir (none: start fresh)")
    p.add_argument("--no-progress", action="store_true",
                   help="silent (default: a bar on a terminal, a line every few steps otherwise)")


def run(args: argparse.Namespace) -> int:
    import torch

    from spg_lib.training.run import run_train

    cfg = load_tree(args)  # fails before anything loads
    # the only global RNG consumer is dropout (LoRA/attention); seeded here at the edge, saved in checkpoints
    torch.manual_seed(cfg.train.seed)
    result = run_train(cfg.train, evaluation=cfg.evaluate, resume=args.resume, progress=not args.no_progress)
    if result["final_model"]:
        print(f"final model: {result['final_model']}")
    return 0
