"""The `spg` console script: one sub-command per module, each exposing `add_parser(subparsers)`.

A sub-command module defines ``add_parser(subparsers) -> argparse.ArgumentParser`` and sets
``func=<callable(args) -> int>`` as a parser default. Modules are imported lazily by name so that
``spg --help`` stays fast and a heavy dependency of one command never slows another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command name -> module under spg_lib.cli
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "sft": "sft",
    "train": "train",
    "bench": "bench",
    "evaluate": "evaluate",
    "score": "score",
    "prepare-data": "prepare_data",
    "fetch-checkpoint": "fetch_checkpoint",
    "register": "register",
    "base-model": "base_model",
    "summarize": "summarize",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spg",
        description="SPG (Sandwiched Policy Gradient) for masked diffusion language models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        mod = importlib.import_module(f"spg_lib.cli.{module}")
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
