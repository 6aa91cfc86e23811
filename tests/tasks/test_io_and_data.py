"""Data loading errors name file and line; writes are atomic; prepared data has a manifest."""

import json
import os

import pytest

from spg_lib.tasks import DataError, get_task, list_tasks
from spg_lib.tasks.io import atomic_write, load_source, read_table, sha256_file
from spg_lib.tasks.prepare import prepare_data
from spg_lib.tasks.prompts import FEW_SHOT, SUDOKU_SYSTEM_PROMPT
from spg_lib.tasks.sudoku import all_solutions, count_solutions, generate_puzzles


def test_registry():
    assert list_tasks() == ["countdown", "gsm8k", "math500", "sudoku"]
    assert get_task("math").name == "math500"
    with pytest.raises(ValueError, match="countdown, gsm8k, math500, sudoku"):
        get_task("nope")


def test_malformed_json_names_line(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text('{"question": "q", "answer": "#### 1"}\n{not json}\n')
    with pytest.raises(DataError, match=r"g\.jsonl:2: malformed JSON"):
        read_table(p)


def test_missing_field_and_wrong_type_name_line(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text('{"question": "q", "answer": "#### 1"}\n\n{"question": "q2"}\n')
    with pytest.raises(DataError, match=r"g\.jsonl:3: missing field 'answer'"):
        get_task("gsm8k").load_split(str(p), "test")
    p.write_text('{"question": 5, "answer": "#### 1"}\n')
    with pytest.raises(DataError, match=r"g\.jsonl:1: field 'question' must be str"):
        get_task("gsm8k").load_split(str(p), "test")
    c = tmp_path / "s.csv"
    c.write_text("Puzzle,Solution\n0310200404001043,4312213434211243\n031020040400104,4312213434211243\n")
    with pytest.raises(DataError, match=r"s\.csv:3: Puzzle must be a 16-character"):
        get_task("sudoku").load_split(str(c), "test")


def test_empty_and_missing(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty dataset"):
        read_table(tmp_path / "e.jsonl")
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="unsupported file type"):
        (tmp_path / "x.txt").write_text("a")
        read_table(tmp_path / "x.txt")


def test_hub_without_datasets_is_clear(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name in ("datasets", "huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DataError, match=r"install|datasets"):
        load_source("openai/gsm8k", split="test", config="main")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_sudoku_enumeration_and_uniqueness():
    sols = all_solutions()
    assert len(sols) == 288 and len(set(sols)) == 288
    puzzles = generate_puzzles(50, seed=3, exclude_solutions=sols[:100])
    assert all(count_solutions(p["puzzle"]) == 1 for p in puzzles)
    assert not {p["solution"] for p in puzzles} & set(sols[:100])


def test_prepare_sudoku_disjoint(tmp_path, data_dir):
    out = tmp_path / "sudoku"
    m = prepare_data(get_task("sudoku"), str(out), test_source=str(data_dir / "sudoku_4x4_test_spg.csv"),
                     n_train=300, seed=1)
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert len(train) == 300 and len(test) == 256
    assert not {r["solution"] for r in train} & {r["solution"] for r in test}
    assert m["files"]["train"]["sha256"] == sha256_file(out / "train.jsonl")
    assert m["files"]["test"]["rows"] == 256 and m["schema_version"] == 1
    assert train[0]["prompt"].startswith(SUDOKU_SYSTEM_PROMPT + "\n\n" + FEW_SHOT + "\n\nQuestion: ")
    assert test[0]["prompt"].endswith(f"{test[0]['puzzle']}\n\nAnswer:\n")
    assert train[0]["prompt"].endswith(f"{train[0]['puzzle']}\nAnswer:\n")


def test_prepare_countdown_disjoint_and_solvable(tmp_path, data_dir):
    out = tmp_path / "cd"
    prepare_data(get_task("countdown"), str(out), test_source=str(data_dir / "countdown_cd3_test.jsonl"),
                 n_train=500, seed=7, fmt="parquet")
    import pyarrow.parquet as pq

    train = pq.read_table(out / "train.parquet").to_pylist()
    test = get_task("countdown").load_split(str(data_dir / "countdown_cd3_test.jsonl"), "test")
    keys = {(tuple(sorted(e["numbers"])), e["target"]) for e in test}
    assert len(train) == 500
    assert not {(tuple(sorted(r["numbers"])), r["target"]) for r in train} & keys
    task = get_task("countdown")
    assert all(task.total_reward(f"<answer>{r['solution']}</answer>", r) == 1.0 for r in train)


def test_prepare_gsm8k_local(tmp_path, data_dir):
    out = tmp_path / "g"
    m = prepare_data(get_task("gsm8k"), str(out), source=str(data_dir / "gsm8k_train.jsonl"),
                     test_source=str(data_dir / "gsm8k_test.jsonl"), n_train=100)
    assert m["files"]["train"]["rows"] == 100 and m["files"]["test"]["rows"] == 1319
    row = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert row["prompt"].startswith("\nRespond in the following format:\n<reasoning>\n")
