"""Command-line options derived from the configuration tree, so no default or help text is written twice.

    configure(p, section="evaluate")      # --config, -o/--override, and one flag per scalar field of `evaluate`
    cfg = load_tree(args)                 # the PipelineConfig: file, then -o overrides, then field flags

Without ``--config`` the built-in defaults are used (DVC stages pass ``--config params.yaml``).
Overrides use the full dotted path of ``params.yaml`` and ``dvc exp run -S`` (``-o train.optim.lr=1e-4``); a
field flag ``--gen-length 64`` of command ``evaluate`` is the override ``evaluate.gen_length=64``. Values are
parsed as YAML scalars and type-checked by the loader, so a flag and an override fail with the same message.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from spg_lib.pipeline.config import DEFAULT_PARAMS, PipelineConfig, load_pipeline_config

_SCALARS = (str, int, float, bool)


def _scalar_type(annotation: Any) -> Any:
    """The scalar type behind ``annotation`` (Optional/Literal unwrapped), or None for sections and lists."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar_type(args[0]) if len(args) == 1 else None
    if origin is typing.Literal or annotation in _SCALARS:
        return annotation
    return None


def section_fields(section: str) -> list[tuple[dataclasses.Field, Any]]:
    """(field, scalar annotation) of the top-level scalar fields of ``section``."""
    cls = typing.get_type_hints(PipelineConfig)[section]
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = _scalar_type(hints[f.name])
        if kind is not None and f.init:
            out.append((f, kind))
    return out


def configure(p: argparse.ArgumentParser, section: str | None = None, *,
              only: tuple[str, ...] | None = None) -> None:
    """Add ``--config``, ``-o/--override`` and (for ``section``) one ``--field-name`` flag per scalar field
    (or per field named in ``only``)."""
    p.add_argument("--config", default=None, metavar="FILE",
                   help=f"parameter file, e.g. {DEFAULT_PARAMS} or configs/paper/gsm8k.yaml (default: the built-in "
                        "defaults)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="full dotted path as in params.yaml and `dvc exp run -S`, e.g. train.optim.lr=1e-4 "
                        "(repeatable; the value is YAML)")
    if section is None:
        return
    group = p.add_argument_group(f"`{section}` settings (each flag = -o {section}.<field>=VALUE)")
    for f, kind in section_fields(section):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else "see params"
        text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")
        dest = f"field:{'str' if kind is str else 'yaml'}:{section}.{f.name}"  # strings stay strings ("007")
        if kind is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(kind) is typing.Literal:
            group.add_argument(flag, dest=dest, default=None, choices=[str(a) for a in typing.get_args(kind)],
                               help=text)
        else:
            group.add_argument(flag, dest=dest, default=None, metavar=f.name.upper(), help=text)


def config_path(args: argparse.Namespace) -> Path | None:
    """``--config``, or None for the built-in defaults."""
    return Path(args.config) if args.config is not None else None


def overrides_of(args: argparse.Namespace) -> list[str]:
    """``-o`` overrides followed by the field flags that were given (flags win)."""
    out = list(args.override)
    for dest, value in vars(args).items():
        if dest.startswith("field:") and value is not None:
            _, kind, key = dest.split(":", 2)
            if isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = json.dumps(value) if kind == "str" else str(value)
            out.append(f"{key}={text}")
    return out


def load_tree(args: argparse.Namespace) -> PipelineConfig:
    """The configuration tree for this invocation (raises ConfigError with one line naming file and key)."""
    return load_pipeline_config(config_path(args), overrides_of(args))
