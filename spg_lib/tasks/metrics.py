"""The evaluation protocol and the ``metrics.json`` schema: one definition for evaluate, summarize and register.

Two accuracies are comparable only when their evaluations ran the same protocol (`EvalProtocol`): the same task
on the same test examples (``data_hash``, a content hash of the examples evaluated, so a copy of the split under
another path compares and an edited file does not; ``n`` their number), the same prompts (``prompt_style``),
the same decoding (``gen_length``, ``block_length``, ``steps``, ``temperature``, ``remasking``,
``redecode_earlier_masks``) and the same
scorer (``mode``: faithful or fixed parsing). `spg summarize` refuses to compare base and trained
evaluations that differ in any of them, and the registry's champion gate refuses to rank a version against a
champion evaluated otherwise.

``metrics.json`` (written by `spg evaluate`) is `EvalMetrics.as_dict`: one flat JSON object with
``schema_version``, the protocol fields and the results. `read_metrics` checks it field by field and raises
`MetricsError` with one line naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from spg_lib.decoding import REMASKING_MODES, Remasking
from spg_lib.io import InputError, read_json
from spg_lib.tasks.base import MODES, PROMPT_STYLES, Mode, PromptStyle

__all__ = ["METRICS_SCHEMA_VERSION", "PROTOCOL_KEYS", "EvalMetrics", "EvalProtocol", "MetricsError", "examples_hash",
           "read_metrics"]

METRICS_SCHEMA_VERSION = 1


class MetricsError(InputError):
    """A metrics file or record does not follow the schema; the message names the file and the field."""


def examples_hash(examples: Iterable[Mapping[str, Any]]) -> str:
    """sha256 (hex) of the examples in order, each as canonical JSON (sorted keys) on its own line."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps(ex, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
                      .encode() + b"\n")
    return digest.hexdigest()


def _check(value: Any, annotation: Any, where: str, name: str) -> Any:
    """`value` converted to `annotation` (bool, int, float, str, a Literal, or X | None), else MetricsError."""
    args = typing.get_args(annotation)
    if type(None) in args:
        if value is None:
            return None
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        if value not in args:
            raise MetricsError(f"{where}: field {name!r} must be one of {list(args)}, got {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise MetricsError(f"{where}: field {name!r} must be true or false, got {value!r}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        if number and math.isfinite(value) and float(value).is_integer():
            return int(value)
        raise MetricsError(f"{where}: field {name!r} must be an integer, got {value!r}")
    if annotation is float:
        if number and math.isfinite(value):
            return float(value)
        raise MetricsError(f"{where}: field {name!r} must be a finite number, got {value!r}")
    if annotation is str:
        if isinstance(value, str) and value:
            return value
        raise MetricsError(f"{where}: field {name!r} must be a non-empty string, got {value!r}")
    raise TypeError(f"unsupported schema annotation {annotation!r}")  # a bug in this module, not in the file


def _fields_from(cls: type, data: Mapping[str, Any], where: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of dataclass `cls` (but `skip`) read from `data`, each present (or defaulted) and type-checked."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING:
                raise MetricsError(f"{where}: missing required field {f.name!r}")
            continue
        out[f.name] = _check(data[f.name], hints[f.name], where, f.name)
    return out


@dataclasses.dataclass(frozen=True)
class EvalProtocol:
    """The settings that make two evaluations comparable (see the module docstring)."""

    task: str
    data_hash: str
    n: int
    prompt_style: PromptStyle
    mode: Mode
    gen_length: int
    block_length: int
    steps: int
    temperature: float
    remasking: Remasking
    redecode_earlier_masks: bool
    # the rollout engine (docs/decoding.md, "Cache modes"): approximate settings make a different protocol;
    # defaults = the exact sampler, so metrics.json files written before these fields read as exact
    cache: str = "none"
    unmasking: str = "schedule"
    threshold: float = 0.0  # the confidence threshold with unmasking "threshold", else 0
    early_stop: bool = False

    def __post_init__(self) -> None:
        for name, valid in (("prompt_style", PROMPT_STYLES), ("mode", MODES), ("remasking", REMASKING_MODES)):
            if getattr(self, name) not in valid:
                raise MetricsError(f"field {name!r} must be one of {list(valid)}, got {getattr(self, name)!r}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: EvalProtocol) -> dict[str, tuple[Any, Any]]:
        """{field: (this value, other value)} for every protocol field that differs; empty = comparable."""
        mine, theirs = self.as_dict(), other.as_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> EvalProtocol:
        """The protocol fields of `data` (other keys ignored), type-checked; MetricsError naming `where`."""
        return cls(**_fields_from(cls, data, where))


PROTOCOL_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EvalProtocol))


@dataclasses.dataclass(frozen=True)
class EvalMetrics:
    """One evaluation's result: its protocol, the accuracy (%, Σ correct / Σ total: micro-averaged cells for
    Sudoku), exact match (% of examples fully correct), completion lengths (tokens before EOS) and speed."""

    protocol: EvalProtocol
    accuracy: float
    exact_match: float
    mean_completion_tokens: float
    median_completion_tokens: float
    batch_size: int
    wall_time_s: float
    tokens_per_s: float
    device: str
    model: str | None = None  # what was evaluated (informational)
    data: str | None = None  # where the test split came from (informational: the protocol holds its hash)
    schema_version: int = METRICS_SCHEMA_VERSION

    def __post_init__(self) -> None:
        for name in ("accuracy", "exact_match"):
            value = getattr(self, name)
            if not 0.0 <= value <= 100.0:
                raise MetricsError(f"field {name!r} must be a percentage in [0, 100], got {value!r}")

    def as_dict(self) -> dict[str, Any]:
        """The flat ``metrics.json`` object: schema_version, the protocol fields, then the results."""
        out: dict[str, Any] = {"schema_version": self.schema_version, **self.protocol.as_dict()}
        out.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                    if f.name not in ("protocol", "schema_version")})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> EvalMetrics:
        """Parse a ``metrics.json`` object; MetricsError naming `where` and the first bad field."""
        if not isinstance(data, Mapping):
            raise MetricsError(f"{where}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != METRICS_SCHEMA_VERSION:
            hint = ("no 'schema_version': written by an older spg evaluate? re-run `spg evaluate`"
                    if version is None else f"schema_version {version!r}, this spg_lib reads "
                                            f"{METRICS_SCHEMA_VERSION}")
            raise MetricsError(f"{where}: not a metrics file of `spg evaluate` ({hint})")
        known = (set(PROTOCOL_KEYS) | {f.name for f in dataclasses.fields(cls)}) - {"protocol"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MetricsError(f"{where}: unknown field(s) {unknown}")
        protocol = EvalProtocol.from_dict(data, where)
        results = {k: v for k, v in data.items() if k not in PROTOCOL_KEYS}
        kwargs = _fields_from(cls, results, where, skip=("protocol",))
        try:
            return cls(protocol=protocol, **kwargs)
        except MetricsError as exc:
            raise MetricsError(f"{where}: {exc}") from None


def read_metrics(path: str | os.PathLike[str]) -> EvalMetrics:
    """The `EvalMetrics` in ``metrics.json`` file `path`; MetricsError (one line naming the file) otherwise."""
    try:
        data = read_json(path, what="metrics file", hint="did its evaluate stage run?")
    except InputError as exc:
        raise MetricsError(str(exc)) from None
    return EvalMetrics.from_dict(data, f"metrics file {path}")
