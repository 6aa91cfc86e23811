"""`spg base-model`: the RL starting checkpoint: fetch `base_model.uri`, or SFT-bootstrap with the `sft` section.

    spg base-model --config params.yaml                              # DVC stage base_model
    spg base-model --uri s3://ckpts/llada-sft                        # = -o base_model.uri=s3://ckpts/llada-sft
    spg base-model -o sft.sft.steps=100
"""

from __future__ import annotations

import argparse

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "base_model")


def run(args: argparse.Namespace) -> int:
    from spg_lib.pipeline.base_model import make_base_model

    cfg = load_tree(args)
    result = make_base_model(cfg.base_model, None if cfg.base_model.uri else cfg.sft)
    print(f"base model ({result['source']}): {result['model_dir']}  [{result['wall_time_s']:.0f} s]")
    return 0
