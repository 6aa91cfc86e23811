"""The run summary: accuracy comparison, reward gain, protocol check, plot CSVs, report text."""

from __future__ import annotations

import dataclasses
import json

import pytest

from spg_lib.pipeline.summary import ProtocolMismatchError, accuracy_by_length, report, reward_curve, summarize
from spg_lib.tasks.metrics import EvalMetrics, EvalProtocol, MetricsError

PROTOCOL = EvalProtocol(task="sudoku", data_hash="ab" * 32, n=4, prompt_style="compact", mode="fixed", gen_length=40,
                        block_length=8, steps=20, temperature=0.0, remasking="low_confidence",
                        redecode_earlier_masks=False)


def _metrics(path, accuracy, wall=10.0, **protocol):
    """A metrics.json as `spg evaluate` writes it (protocol fields overridable) and its generations.jsonl."""
    path.parent.mkdir(parents=True, exist_ok=True)
    m = EvalMetrics(protocol=dataclasses.replace(PROTOCOL, **protocol), accuracy=accuracy, exact_match=25.0,
                    mean_completion_tokens=10.0, median_completion_tokens=9.0, batch_size=4, wall_time_s=wall,
                    tokens_per_s=16.0, device="cpu", model="runs/x", data="data/sudoku/test.jsonl")
    path.write_text(json.dumps(m.as_dict()))
    gens = [{"correct": i < 2, "completion_tokens": t} for i, t in enumerate([5, 10, 30, 300])]
    path.with_name("generations.jsonl").write_text("".join(json.dumps(g) + "\n" for g in gens))
    return path


def _log(path, rewards):
    rows = []
    for i, r in enumerate(rewards):
        rows.append({"step": 2 * i + 1, "reward/mean": r, "train/loss": 0.1})
        rows.append({"step": 2 * i + 2, "train/loss": 0.1})  # inner iteration: no rollout reward
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_summary_numbers_and_files(tmp_path):
    base = _metrics(tmp_path / "base/metrics.json", 30.0, wall=5.0)
    trained = _metrics(tmp_path / "trained/metrics.json", 42.5, wall=6.0)
    log = _log(tmp_path / "metrics.jsonl", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    timing = tmp_path / "t.json"
    timing.write_text(json.dumps({"wall_time_s": 100.0}))
    s = summarize(base, trained, log, tmp_path / "out", timings=[timing], window=2)
    assert s["base_accuracy"] == 30.0 and s["trained_accuracy"] == 42.5
    assert s["accuracy_gain"] == pytest.approx(12.5)
    assert s["reward_first"] == pytest.approx(0.15) and s["reward_last"] == pytest.approx(0.55)
    assert s["reward_gain"] == pytest.approx(0.4)
    assert s["wall_time_s"] == pytest.approx(111.0)
    assert s["train_steps"] == 12
    saved = json.loads((tmp_path / "out/summary.json").read_text())
    assert saved == s
    curve = (tmp_path / "out/reward_curve.csv").read_text().splitlines()
    assert curve[0] == "step,reward" and len(curve) == 7 and curve[1] == "1,0.1"
    by_len = (tmp_path / "out/accuracy_by_length.csv").read_text().splitlines()
    assert by_len[0] == "model,length_bin,n,accuracy" and len(by_len) == 1 + 2 * 4
    text = report(tmp_path / "out/summary.json")
    assert "30.0" in text and "42.5" in text and "+12.5" in text


@pytest.mark.parametrize(("field", "value"), [
    ("gen_length", 64), ("prompt_style", "paper"), ("data_hash", "cd" * 32), ("temperature", 0.3),
    ("remasking", "random"), ("mode", "faithful"), ("steps", 40), ("n", 5),
])
def test_protocol_mismatch_is_refused(tmp_path, field, value):
    base = _metrics(tmp_path / "base/metrics.json", 30.0)
    trained = _metrics(tmp_path / "trained/metrics.json", 40.0, **{field: value})
    log = _log(tmp_path / "metrics.jsonl", [0.1])
    with pytest.raises(ProtocolMismatchError, match=f"{field}: .* \\(base\\) vs {value!r} \\(trained\\)"):
        summarize(base, trained, log, tmp_path / "out")
    assert not (tmp_path / "out/summary.json").exists()


def test_summary_records_the_shared_protocol(tmp_path):
    base = _metrics(tmp_path / "base/metrics.json", 30.0)
    trained = _metrics(tmp_path / "trained/metrics.json", 40.0)
    s = summarize(base, trained, _log(tmp_path / "metrics.jsonl", [0.1]), tmp_path / "out")
    assert s["protocol"] == PROTOCOL.as_dict()


def test_bad_inputs_name_the_file(tmp_path):
    base = _metrics(tmp_path / "base/metrics.json", 30.0)
    log = _log(tmp_path / "metrics.jsonl", [0.1])
    with pytest.raises(MetricsError, match=r"missing\.json does not exist"):
        summarize(base, tmp_path / "missing.json", log, tmp_path / "out")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"step": 1, "reward/mean": 0.5}\n{not json\n')
    with pytest.raises(ValueError, match=r"broken.jsonl:2"):
        reward_curve(broken)
    no_acc = tmp_path / "noacc/metrics.json"
    no_acc.parent.mkdir()
    no_acc.write_text(json.dumps({k: v for k, v in json.loads(base.read_text()).items() if k != "accuracy"}))
    with pytest.raises(MetricsError, match=f"{no_acc}: missing required field 'accuracy'"):
        summarize(base, no_acc, log, tmp_path / "out")
    old = tmp_path / "old/metrics.json"  # written before the schema had a version: one clear line, no KeyError
    old.parent.mkdir()
    old.write_text(json.dumps({"task": "sudoku", "accuracy": 30.0}))
    with pytest.raises(MetricsError, match=f"{old}: not a metrics file of `spg evaluate` \\(no 'schema_version'"):
        summarize(old, base, log, tmp_path / "out")


def test_accuracy_by_length_bins(tmp_path):
    gens = tmp_path / "generations.jsonl"
    gens.write_text("".join(json.dumps({"correct": c, "completion_tokens": n}) + "\n"
                            for c, n in [(True, 3), (False, 7), (True, 9), (True, 1000)]))
    rows = accuracy_by_length(gens, bins=(8, 16))
    assert rows == [{"length_bin": 8, "n": 2, "accuracy": 50.0}, {"length_bin": 16, "n": 2, "accuracy": 100.0}]
