"""Data loading (through `datasets`) names file and line in errors; prepared data has a manifest with each split's
fingerprint; Countdown from the hub layout is selected as the official code does."""

import json

import pytest

from spg_lib.tasks import DataError, get_task, list_tasks
from spg_lib.tasks.io import fingerprint, load_source, read_table
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
    with pytest.raises(DataError, match=r"data file .*missing\.jsonl does not exist"):
        read_table(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="unsupported file type"):
        (tmp_path / "x.txt").write_text("a")
        read_table(tmp_path / "x.txt")


def test_hub_id_offline_is_one_clear_error():
    # (tests/conftest.py switches the Hugging Face libraries offline: the hub path runs, without the network)
    with pytest.raises(DataError, match=r"hf://openai/gsm8k: cannot load split 'test' from the Hugging Face hub.*"
                                        r"local path"):
        load_source("openai/gsm8k:main", split="test")


def test_formats_locations_and_null_fields(tmp_path):
    (tmp_path / "a.jsonl").write_text('\n{"q": "x", "n": 1}\n\n{"q": "y"}\n')
    t = read_table(tmp_path / "a.jsonl")
    assert t.rows == [{"q": "x", "n": 1}, {"q": "y"}]  # datasets' null for the missing "n" is dropped
    assert t.locations == [f"{tmp_path}/a.jsonl:2", f"{tmp_path}/a.jsonl:4"]
    (tmp_path / "c.csv").write_text('Puzzle,Note\n0012,"two\nlines"\n\n0340,\n')
    t = read_table(tmp_path / "c.csv")
    assert t.rows == [{"Puzzle": "0012", "Note": "two\nlines"}, {"Puzzle": "0340", "Note": ""}]  # strings kept
    assert [loc.rsplit(":", 1)[1] for loc in t.locations] == ["2", "5"]
    (tmp_path / "g.json").write_text(json.dumps({"generations": [{"completion": "a"}, {"completion": "b"}]}))
    assert [loc.split(": ")[1] for loc in read_table(tmp_path / "g.json").locations] == ["item 0", "item 1"]
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(DataError, match=r"bad\.json: expected a JSON list of objects"):
        read_table(tmp_path / "bad.json")
    assert load_source(str(tmp_path), split="a").rows == read_table(tmp_path / "a.jsonl").rows  # {split}.jsonl
    assert len(load_source(f"file://localhost{tmp_path}/c.csv", split="train")) == 2


def test_fingerprint_is_a_content_hash(tmp_path):
    rows = [{"question": "q1", "answer": "1"}, {"question": "q2", "answer": "2"}]
    from spg_lib.tasks.io import write_rows

    write_rows(tmp_path / "a.jsonl", rows)
    write_rows(tmp_path / "b.parquet", rows)
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r, indent=None, separators=(", ", ": ")) for r in rows))
    prints = {read_table(tmp_path / name).fingerprint for name in ("a.jsonl", "b.parquet", "c.jsonl")}
    assert prints == {fingerprint(rows)}  # path, format and byte layout do not matter
    assert fingerprint(rows[:1]) != fingerprint(rows) != fingerprint([rows[0], {**rows[1], "answer": "3"}])


def _hub_rows(n3: int, n4: int) -> list[dict]:
    """Rows in the layout of Jiayi-Pan/Countdown-Tasks-3to4: target + nums (3 or 4 numbers), interleaved."""
    rows = [{"target": 10 + i, "nums": [i + 1, i + 2, i + 3]} for i in range(n3)]
    for j in range(n4):
        rows.insert(3 * j, {"target": 99, "nums": [1, 2, 3, 4 + j]})
    return rows


def test_countdown_hub_layout_is_selected_as_the_official_code_does(tmp_path):
    import datasets

    path = tmp_path / "countdown_hub.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _hub_rows(n3=530, n4=40)))
    task = get_task("countdown")
    got = task.load_split(str(path), "train")
    # the official selection, transcribed: filter to 3 numbers, shuffle(seed=42), drop the last 500
    official = datasets.load_dataset("json", data_files=str(path), split="train")
    official = official.filter(lambda x: len(x["nums"]) == 3).shuffle(seed=42)
    official = official.select(range(0, len(official) - 500))
    assert [(e["numbers"], e["target"]) for e in got] == [(r["nums"], r["target"]) for r in official]
    assert len(got) == 30 and [(e["numbers"], e["target"]) for e in got] != [
        (r["nums"], r["target"]) for r in _hub_rows(30, 0)]  # shuffled, not the first 30
    assert len(task.load_split(str(path), "test")) == 530  # no hold-out outside the training split
    path.write_text("".join(json.dumps(r) + "\n" for r in _hub_rows(n3=500, n4=3)))
    with pytest.raises(DataError, match=r"500 rows with 3 numbers.*leaves none"):
        task.load_split(str(path), "train")
    path.write_text(json.dumps({"target": 5, "nums": [1, "x", 3]}) + "\n")
    with pytest.raises(DataError, match=r"countdown_hub\.jsonl:1: numbers must be a list of ints"):
        task.load_split(str(path), "train")


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
    assert m["files"]["train"]["fingerprint"] == fingerprint(train)
    assert m["files"]["test"]["rows"] == 256 and m["schema_version"] == 2
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
