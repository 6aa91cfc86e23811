"""`spg base-model`: the RL starting checkpoint: fetch `base_model.uri`, or SFT-bootstrap with the `sft` section.

    spg base-model --config params.yaml                              # DVC stage `base_model`
    spg base-model --config params.yaml -o base_model.uri=s3://ckpts/llada-sft
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("base-model", help="fetch the starting checkpoint, or SFT-bootstrap one")
    p.add_argument("--config", default="params.yaml", help="YAML with `base_model:` and `sft:` sections")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. base_model.uri=builtin:tiny or sft.sft.steps=100 (repeatable)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from spg_lib.config import ConfigError, load_config
    from spg_lib.pipeline.base_model import BaseModelConfig, make_base_model
    from spg_lib.training.run import SFTRunConfig

    def section(name: str) -> list[str]:
        return [o.split(".", 1)[1] for o in args.override if o.startswith(name + ".")]

    unknown = [o for o in args.override if not o.startswith(("base_model.", "sft."))]
    try:
        if unknown:
            raise ConfigError(f"overrides {unknown} must start with base_model. or sft.")
        cfg = load_config(BaseModelConfig, args.config, section="base_model", overrides=section("base_model"))
        sft = None if cfg.uri else load_config(SFTRunConfig, args.config, section="sft", overrides=section("sft"))
        result = make_base_model(cfg, sft)
    except (ValueError, OSError) as exc:
        print(f"spg base-model: error: {exc}", file=sys.stderr)
        return 2
    print(f"base model ({result['source']}): {result['model_dir']}  [{result['wall_time_s']:.0f} s]")
    return 0
