"""`spg sft`: masked-diffusion SFT (d1 SFT, §5.1) to bootstrap a starting checkpoint.

    spg sft --config params.yaml                       # section `sft`
    spg sft --config params.yaml -o sft.steps=500
    accelerate launch -m spg_lib.cli sft --config params.yaml
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("sft", help="masked-diffusion SFT of a model on a task's training split")
    p.add_argument("--config", default="params.yaml", help="YAML with an `sft:` section (default params.yaml)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override of the `sft` section, e.g. sft.steps=500 (repeatable)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from spg_lib.config import load_config
    from spg_lib.training.run import SFTRunConfig, run_sft

    cfg = load_config(SFTRunConfig, args.config, section="sft", overrides=args.override)
    result = run_sft(cfg)
    print(f"sft model: {result['model_dir']}")
    return 0
