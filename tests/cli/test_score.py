"""`spg score` end to end through `spg_lib.cli.main`."""

import json

import pytest

from spg_lib.cli import main


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_score_gsm8k_modes(tmp_path, capsys):
    gen = tmp_path / "g.jsonl"
    _write(gen, [
        {"question": "q1", "completion": "<reasoning>r<answer>\\boxed{18}</answer><|eot_id|>", "ground_truth": "18"},
        {"question": "q2", "completion": "<answer>\\boxed{-3}</answer>", "ground_truth": "-3"},
        {"question": "q3", "completion": "<answer>\\boxed{1,000}</answer>", "ground_truth": "1,000"},
        {"question": "q4", "completion": "no answer", "ground_truth": "7"},
    ])
    assert main(["score", "--task", "gsm8k", "--generations", str(gen)]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out == {"task": "gsm8k", "mode": "fixed", "n": 4, "correct": 3, "total": 4, "accuracy": 75.0}
    assert main(["score", "--task", "gsm8k", "--generations", str(gen), "--mode", "faithful"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert (out["correct"], out["accuracy"]) == (1, 25.0)  # negative GT and "1,000" fail


def test_score_sudoku_cell_accuracy(tmp_path, capsys):
    gt = {"puzzle": "0310200404001043", "solution": "4312213434211243"}  # 8 empty cells
    gen = tmp_path / "s.jsonl"
    _write(gen, [
        {"question": "q", "completion": "<answer>\n4312213434211243\n</answer>", "ground_truth": gt},
        {"question": "q", "completion": "<answer>\n4\n</answer>", "ground_truth": gt},
    ])
    assert main(["score", "--task", "sudoku", "--generations", str(gen)]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert (out["n"], out["correct"], out["total"]) == (2, 9, 16)
    assert out["accuracy"] == pytest.approx(100 * 9 / 16)


def test_score_countdown(tmp_path, capsys):
    gen = tmp_path / "c.jsonl"
    gt = {"numbers": [30, 100, 93], "target": 23}
    _write(gen, [
        {"question": "q", "completion": "<answer>\\boxed{93 + 30 - 100}</answer>", "ground_truth": gt},
        {"question": "q", "completion": "<answer>\\boxed{93 + 30 - 100 = 23}</answer>", "ground_truth": gt},
        {"question": "q", "completion": "<answer>\\boxed{93 - 30 - 100}</answer>", "ground_truth": gt},
    ])
    assert main(["score", "--task", "countdown", "--generations", str(gen)]) == 0
    assert json.loads(capsys.readouterr().out)["correct"] == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"completion": "x", "ground_truth": "1"}\n{bad\n', "g.jsonl:2: malformed JSON"),
        ('{"completion": "x"}\n', "g.jsonl:1: missing field 'ground_truth'"),
        ('{"completion": 3, "ground_truth": "1"}\n', "g.jsonl:1: field 'completion' must be str"),
        ('{"completion": "x", "ground_truth": ["1"]}\n', "g.jsonl:1: gsm8k ground_truth must be"),
        ("", "empty dataset"),
    ],
)
def test_score_bad_input(tmp_path, capsys, content, message):
    gen = tmp_path / "g.jsonl"
    gen.write_text(content)
    assert main(["score", "--task", "gsm8k", "--generations", str(gen)]) == 2
    err = capsys.readouterr().err
    assert message in err


def test_score_unknown_task(tmp_path, capsys):
    gen = tmp_path / "g.jsonl"
    gen.write_text('{"completion": "x", "ground_truth": "1"}\n')
    assert main(["score", "--task", "chess", "--generations", str(gen)]) == 2
    assert "gsm8k" in capsys.readouterr().err
