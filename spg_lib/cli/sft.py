"""`spg sft`: masked-diffusion SFT (the d1 SFT loss) to bootstrap a starting checkpoint (section `sft`).

    spg sft --config params.yaml
    spg sft -o sft.sft.steps=500 --out-dir runs/sft
    accelerate launch -m spg_lib.cli sft --config params.yaml
"""

from __future__ import annotations

import argparse

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "sft")


def run(args: argparse.Namespace) -> int:
    from spg_lib.training.run import run_sft

    result = run_sft(load_tree(args).sft)
    print(f"sft model: {result['model_dir']}")
    return 0
