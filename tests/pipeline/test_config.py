"""The one configuration tree: params.yaml whole, full-path overrides, JSON round trip, options from the fields."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest
import yaml

from spg_lib.cli import build_parser
from spg_lib.cli.options import section_fields
from spg_lib.config import ConfigError
from spg_lib.pipeline.config import (
    SECTIONS,
    PipelineConfig,
    dump_pipeline_config,
    load_pipeline_config,
    parse_pipeline_config,
)

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "params.yaml", *sorted((ROOT / "configs" / "paper").glob("*.yaml"))]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_section_of_the_shipped_files_is_a_dataclass(path):
    doc = yaml.safe_load(path.read_text())
    assert set(doc) == set(SECTIONS)  # data, base_model, sft, train, evaluate, register: nothing untyped
    cfg = load_pipeline_config(path)
    for name in SECTIONS:
        assert dataclasses.is_dataclass(getattr(cfg, name))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_json_round_trip(path):
    cfg = load_pipeline_config(path)
    text = dump_pipeline_config(cfg)
    assert json.loads(text)["train"]["algo"]["name"] == cfg.train.algo.name
    assert parse_pipeline_config(text) == cfg


def test_full_path_overrides_match_dvc_exp_run_paths():
    cfg = load_pipeline_config(ROOT / "params.yaml", ["train.optim.lr=1e-4", "evaluate.steps=10",
                                                      "data.n_train=7", "register.name=x"])
    assert (cfg.train.optim.lr, cfg.evaluate.steps, cfg.data.n_train, cfg.register.name) == (1e-4, 10, 7, "x")


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lr=1e-4", "'optim.lr' is not a path of params.yaml; did you mean train.optim.lr?"),
    ("gen_length=64", "did you mean evaluate.gen_length or train.algo.gen_length?"),
    ("algo.gen_length=64", "did you mean train.algo.gen_length?"),
    ("sft.steps=5", "did you mean sft.sft.steps?"),
    ("nothing.at_all=1", "paths start with a section: data, base_model, sft, train, evaluate, register"),
    ("train.optim.lrr=1", "'train.optim.lrr' is not a path of params.yaml; paths start with a section"),
    ("train.algo.mode=exact", "params.yaml: train.algo.mode: 'exact' is not one of ['fixed', 'faithful']"),
    ("evaluate.prompt_style=short", "evaluate.prompt_style: 'short' is not one of ['paper', 'compact']"),
])
def test_bad_overrides_name_the_full_path(override, message):
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(ROOT / "params.yaml", [override])
    assert message in str(err.value)


def test_parse_rejects_garbage():
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        parse_pipeline_config("[1, 2]")
    with pytest.raises(ConfigError, match="train: unknown key"):
        parse_pipeline_config('{"train": {"nope": 1}}')


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize(("command", "section"), [
    ("prepare-data", "data"), ("base-model", "base_model"), ("sft", "sft"), ("train", "train"),
    ("evaluate", "evaluate"), ("register", "register"),
])
def test_options_derive_from_the_fields(command, section):
    """Every scalar field of the command's section is a flag whose help is the field's, and whose argparse default
    is None: the value comes from the dataclass (no default written twice)."""
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    p = sub.choices[command]
    by_flag = {s: a for a in p._actions for s in a.option_strings}
    fields = section_fields(section)
    assert fields
    for f, kind in fields:
        action = by_flag[_flag(f.name)]
        assert action.default is None
        assert f.metadata["help"].replace("%", "%%") in action.help
        if typing.get_origin(kind) is typing.Literal:
            assert action.choices == [str(a) for a in typing.get_args(kind)]


def test_flag_equals_override():
    parser = build_parser("evaluate")
    from spg_lib.cli.options import load_tree

    flagged = load_tree(parser.parse_args(["evaluate", "--gen-length", "64", "--steps", "32", "--model", "007"]))
    overridden = load_pipeline_config(None, ["evaluate.gen_length=64", "evaluate.steps=32", "evaluate.model='007'"])
    assert flagged == overridden and flagged.evaluate.model == "007"  # a string flag stays a string


def test_pipeline_config_defaults_are_the_section_defaults():
    cfg = PipelineConfig()
    assert cfg == load_pipeline_config(None)
    assert cfg.train.optim.lr == dataclasses.fields(type(cfg.train.optim))[0].default
