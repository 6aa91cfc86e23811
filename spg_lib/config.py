"""One way to configure: frozen dataclasses loaded from YAML and overridden from the CLI.

    cfg = load_config(TrainConfig, "params.yaml", section="train", overrides=["optim.lr=1e-4"])
    tree = spg_lib.pipeline.config.load_pipeline_config("params.yaml", ["train.optim.lr=1e-4"])  # the CLI's way

Unknown keys are errors that name the file and the dotted key (nanoGPT's configurator rule);
values are type-checked against the field annotation; `__post_init__` of each dataclass does the
cross-field validation. The same loader serves the CLI, DVC stages and the KFP components.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from spg_lib.io import InputError, read_yaml

T = TypeVar("T")


class ConfigError(InputError):
    """A configuration value or key is invalid; the message names the file and dotted key."""


def param(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its help text in ``metadata["help"]`` (the CLI and docs read it from there).

    ``param(0.5, "mix weight ω")``; mutable defaults through ``factory`` (``param(help=..., factory=list)``).
    """
    return dataclasses.field(default=default, default_factory=factory, metadata={"help": help})


_EXPONENT_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not match {annotation}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {annotation.__name__}, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            return float(value)  # PyYAML (YAML 1.1) reads `1e-4` (no dot) as a string
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys: {sorted(fields)}"
        )
    kwargs = {
        name: _coerce(value, hints[name], f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        message = str(exc)
        if where and where in message:  # the validator already named the dotted key
            raise ConfigError(message) from exc
        raise ConfigError(f"{where or cls.__name__}: {message}") from exc


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (for YAML/JSON/MLflow params)."""
    return dataclasses.asdict(cfg)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": leaf}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _parse_scalar(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(data: dict[str, Any], overrides: list[str], where: str = "override") -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested mapping, returning a copy."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{where} {item!r}: expected KEY=VALUE (dotted key)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where} {item!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_scalar(raw)
    return out


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of parameter file ``path``; a missing file, bad YAML or a non-mapping raise
    ConfigError (one line: the file, and the line for bad YAML)."""
    try:
        return read_yaml(path, what="config file")
    except InputError as exc:
        raise ConfigError(str(exc)) from None


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    *,
    section: str | None = None,
    overrides: list[str] | None = None,
) -> T:
    """Load `cls` from YAML file `path` (optionally its top-level `section`), then apply overrides."""
    data: dict[str, Any] = {}
    where = str(path) if path else "defaults"
    if path is not None:
        p = Path(path)
        loaded = read_yaml_mapping(p)
        if section is not None:
            if section not in loaded:
                raise ConfigError(f"{p}: missing section {section!r}")
            loaded = loaded[section] or {}
            where = f"{p}:{section}"
        data = loaded
    if overrides:
        data = apply_overrides(data, overrides)
    return from_dict(cls, data, where)
