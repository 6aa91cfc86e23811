"""The evaluation protocol and the metrics.json schema (spg_lib.tasks.metrics), and the `evaluate:` section."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from spg_lib.tasks.evaluate import EvalConfig
from spg_lib.tasks.metrics import (
    METRICS_SCHEMA_VERSION,
    PROTOCOL_KEYS,
    EvalMetrics,
    EvalProtocol,
    MetricsError,
    examples_hash,
    read_metrics,
)

PROTOCOL = EvalProtocol(task="sudoku", data_hash=examples_hash([{"puzzle": "1", "solution": "2"}]), n=1,
                        prompt_style="compact", mode="fixed", gen_length=40, block_length=8, steps=20,
                        temperature=0.0, remasking="low_confidence",
                        redecode_earlier_masks=False)
METRICS = EvalMetrics(protocol=PROTOCOL, accuracy=37.5, exact_match=25.0, mean_completion_tokens=30.5,
                      median_completion_tokens=31.0, batch_size=8, wall_time_s=2.0, tokens_per_s=20.0, device="cpu",
                      model="runs/base/model", data="data/sudoku/test.jsonl")


def test_protocol_keys_are_the_comparability_settings():
    assert PROTOCOL_KEYS == ("task", "data_hash", "n", "prompt_style", "mode", "gen_length", "block_length", "steps",
                             "temperature", "remasking", "redecode_earlier_masks", "cache", "unmasking", "threshold",
                             "early_stop")


def test_an_approximate_engine_is_another_protocol_and_old_files_read_as_exact():
    import dataclasses

    fast = dataclasses.replace(PROTOCOL, cache="dual", unmasking="threshold", threshold=0.9)
    assert set(PROTOCOL.differences(fast)) == {"cache", "unmasking", "threshold"}
    old = {k: v for k, v in PROTOCOL.as_dict().items() if k not in ("cache", "unmasking", "threshold", "early_stop")}
    assert EvalProtocol.from_dict(old, "old metrics.json") == PROTOCOL


def test_metrics_file_round_trip(tmp_path):
    flat = METRICS.as_dict()
    assert flat["schema_version"] == METRICS_SCHEMA_VERSION == 1
    assert {k: flat[k] for k in PROTOCOL_KEYS} == PROTOCOL.as_dict()  # one flat object, protocol at top level
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(flat))
    assert read_metrics(path) == METRICS


def test_differences_name_each_setting():
    other = dataclasses.replace(PROTOCOL, prompt_style="paper", temperature=0.3)
    assert PROTOCOL.differences(other) == {"prompt_style": ("compact", "paper"), "temperature": (0.0, 0.3)}
    assert PROTOCOL.differences(dataclasses.replace(PROTOCOL)) == {}


def test_examples_hash_is_content_not_order_of_keys_or_path():
    a = [{"puzzle": "0123", "solution": "4123"}, {"puzzle": "1", "solution": "2"}]
    assert examples_hash(a) == examples_hash([{"solution": "4123", "puzzle": "0123"}, a[1]])  # key order: same
    assert examples_hash(a) != examples_hash(a[::-1])  # example order: different
    assert examples_hash(a) != examples_hash([a[0], {"puzzle": "1", "solution": "3"}])  # one character: different
    assert examples_hash(a) != examples_hash(a[:1])


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda m: m.pop("accuracy"), "missing required field 'accuracy'"),
    (lambda m: m.pop("data_hash"), "missing required field 'data_hash'"),
    (lambda m: m.update(accuracy=101.0), "field 'accuracy' must be a percentage in [0, 100], got 101.0"),
    (lambda m: m.update(steps="20"), "field 'steps' must be an integer, got '20'"),
    (lambda m: m.update(gen_length=True), "field 'gen_length' must be an integer, got True"),
    (lambda m: m.update(temperature=float("nan")), "field 'temperature' must be a finite number"),
    (lambda m: m.update(remasking="greedy"), "field 'remasking' must be one of ['low_confidence', 'random']"),
    (lambda m: m.update(prompt_style="short"), "field 'prompt_style' must be one of ['paper', 'compact']"),
    (lambda m: m.update(task=""), "field 'task' must be a non-empty string"),
    (lambda m: m.update(extra=1), "unknown field(s) ['extra']"),
    (lambda m: m.pop("schema_version"), "not a metrics file of `spg evaluate` (no 'schema_version'"),
    (lambda m: m.update(schema_version=2), "schema_version 2, this spg_lib reads 1"),
])
def test_bad_metrics_file_is_one_line_naming_file_and_field(tmp_path, edit, needle):
    data = METRICS.as_dict()
    edit(data)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(data))
    with pytest.raises(MetricsError) as info:
        read_metrics(path)
    message = str(info.value)
    assert message.startswith(f"metrics file {path}: ") and needle in message and "\n" not in message


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(MetricsError, match="does not exist"):
        read_metrics(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MetricsError, match=r"bad\.json: not valid JSON"):
        read_metrics(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(MetricsError, match="expected a JSON object, got list"):
        read_metrics(tmp_path / "list.json")


def test_eval_config_is_a_documented_section():
    """Every field has a default and a help text (the CLI derives its options from them); closed sets are
    Literals; model/task/out_dir are required only when an evaluation runs."""
    cfg = EvalConfig()
    hints = typing.get_type_hints(EvalConfig)
    for f in dataclasses.fields(EvalConfig):
        assert f.metadata.get("help"), f.name
    for name in ("mode", "prompt_style", "remasking"):
        assert typing.get_origin(hints[name]) is typing.Literal, name
    assert (cfg.temperature, cfg.remasking) == (0.0, "low_confidence")  # greedy, as the paper evaluates
    with pytest.raises(ValueError, match=r"evaluate.model is required"):
        cfg.require()
    with pytest.raises(ValueError, match=r"evaluate.out_dir is required"):
        EvalConfig(model="builtin:tiny", task="sudoku").require()
    assert EvalConfig(model="m", task="t", out_dir="o").require() == ("m", "t", "o")


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"gen_length": 20, "block_length": 8}, "evaluate.gen_length (20) must be a multiple of block_length (8)"),
    ({"steps": 7}, "evaluate.steps (7) must be a multiple of the number of blocks (8)"),
    ({"temperature": -0.1}, "evaluate.temperature must be >= 0"),
    ({"remasking": "greedy"}, "evaluate.remasking must be one of low_confidence, random"),
    ({"prompt_style": "short"}, "evaluate.prompt_style must be one of paper, compact"),
    ({"limit": 0}, "evaluate.limit must be >= 1"),
])
def test_eval_config_rejects_bad_values(kwargs, needle):
    with pytest.raises(ValueError) as info:
        EvalConfig(**kwargs)
    assert needle in str(info.value)
