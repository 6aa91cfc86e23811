"""The `spg` console script: one sub-command per module, each exposing ``configure(parser)`` and ``run(args)``.

Only the invoked sub-command's module is imported (``spg --help`` stays fast and a heavy dependency of one
command never slows another). Every command turns bad input — a missing file, a bad field, an unknown key —
into one line on stderr naming the file, field or argument, and exit code 2 (``SPG_DEBUG=1`` re-raises with
the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing

# sub-command -> (module under spg_lib.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare-data": ("prepare_data", "stage prepare_data: a task's train/test splits + manifest"),
    "base-model": ("base_model", "stage base_model: fetch the starting checkpoint, or SFT-bootstrap one"),
    "sft": ("sft", "masked-diffusion SFT of a model on a task's training split"),
    "train": ("train", "stage train: RL fine-tuning with SPG / D1 / WD1 / UniGRPO / ESPO"),
    "evaluate": ("evaluate", "stage evaluate: generations + metrics of a model on a task's test split"),
    "summarize": ("summarize", "base vs trained table, metrics/summary.json and plot data of a pipeline run"),
    "register": ("register", "stage register: an MLflow model version (candidate / champion aliases)"),
    "fetch-checkpoint": ("fetch_checkpoint", "fetch a checkpoint (s3://, hf://, file://, builtin:tiny) with a "
                                             "manifest"),
    "score": ("score", "re-score saved generations (faithful or fixed parser)"),
    "bench": ("bench", "benchmarks: fast vs reference implementations, with ratios"),
    "kfp": ("kfp", "Kubeflow: compile the pipeline, run it locally, submit a run or schedule retraining"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``spg train: error: argument --max-steps: invalid int value``)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The `spg` parser; only ``command`` (if any) gets its full set of options."""
    parser = _Parser(
        prog="spg", description="SPG (Sandwiched Policy Gradient) for masked diffusion language models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, text) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=text)
            continue
        mod = importlib.import_module(f"spg_lib.cli.{module}")
        p = sub.add_parser(name, help=text, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.configure(p)
        p.set_defaults(func=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from spg_lib.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, ValueError, OSError) as exc:  # bad input: files, fields, values (incl. DataError)
        if os.environ.get("SPG_DEBUG"):
            raise
        print(f"spg {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
