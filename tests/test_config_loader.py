"""spg_lib.config: YAML + dotted overrides into frozen dataclasses, with errors that name file and key."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from spg_lib.config import ConfigError, apply_overrides, from_dict, load_config


@dataclasses.dataclass(frozen=True)
class Inner:
    steps: int = 4
    tau: float = 0.0
    mode: Literal["fixed", "faithful"] = "fixed"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("inner.steps must be >= 1")


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    tags: list[str] = dataclasses.field(default_factory=list)
    inner: Inner = dataclasses.field(default_factory=Inner)
    limit: int | None = None


def test_load_with_section_and_overrides(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("run:\n  name: a\n  inner:\n    steps: 8\n    tau: 1\n")
    cfg = load_config(Outer, p, section="run", overrides=["inner.mode=faithful", "limit=3", "tags=[a, b]"])
    assert cfg == Outer(name="a", tags=["a", "b"], inner=Inner(steps=8, tau=1.0, mode="faithful"), limit=3)
    assert isinstance(cfg.inner.tau, float)


def test_unknown_key_names_file_and_key(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("run:\n  inner:\n    stepz: 8\n")
    with pytest.raises(ConfigError, match=r"params.yaml:run\.inner.*stepz"):
        load_config(Outer, p, section="run")


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"inner": {"steps": "many"}}, r"inner\.steps: expected an integer"),
        ({"inner": {"mode": "exact"}}, r"inner\.mode: 'exact' is not one of"),
        ({"inner": {"steps": 0}}, r"steps must be >= 1"),
        ({"name": 3}, r"name: expected a string"),
        ({"limit": 1.5}, r"limit"),
        ({"inner": 5}, r"inner: expected a mapping"),
    ],
)
def test_bad_values(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        from_dict(Outer, data)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")
    p = tmp_path / "p.yaml"
    p.write_text("other: {}\n")
    with pytest.raises(ConfigError, match="missing section 'run'"):
        load_config(Outer, p, section="run")


def test_overrides_do_not_mutate_input():
    data = {"inner": {"steps": 2}}
    out = apply_overrides(data, ["inner.steps=5"])
    assert data == {"inner": {"steps": 2}} and out == {"inner": {"steps": 5}}


def test_exponent_floats_without_dot(tmp_path):
    """PyYAML reads `1e-4` as a string (YAML 1.1 wants a dot); a float field still takes it, a bad one names it."""
    p = tmp_path / "params.yaml"
    p.write_text("run:\n  inner:\n    tau: 3e-5\n")
    cfg = load_config(Outer, p, section="run", overrides=[])
    assert cfg.inner.tau == pytest.approx(3e-5)
    assert load_config(Outer, p, section="run", overrides=["inner.tau=1E-4"]).inner.tau == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match=r"inner\.tau: expected a number, got '1e'"):
        load_config(Outer, p, section="run", overrides=["inner.tau=1e"])
