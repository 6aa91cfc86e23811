"""Gold answers score 100% (fixed mode) and near-100% in faithful mode; wrong answers score 0."""

import json

import pytest

from spg_lib.tasks import get_task
from spg_lib.tasks.countdown import solve
from spg_lib.tasks.scoring import score_rows


def _score(task, completions, examples, mode):
    rows = [(f"row{i}", {"completion": c, "ground_truth": task.ground_truth(e)})
            for i, (c, e) in enumerate(zip(completions, examples))]
    return score_rows(task, rows, mode=mode)


def test_gsm8k_gold(data_dir):
    task = get_task("gsm8k")
    ex = task.load_split(str(data_dir / "gsm8k_test.jsonl"), "test")
    assert len(ex) == 1319
    gold = [e["solution"].split("####")[0] + f"<answer>\n\\boxed{{{e['answer']}}}\n</answer><|eot_id|>" for e in ex]
    assert _score(task, gold, ex, "fixed").accuracy == 100.0
    faithful = _score(task, gold, ex, "faithful")
    # faithful quirks: negative ground truths never match, "1,000" parses as 1
    bad = sum(1 for e in ex if e["answer"].startswith("-") or "," in e["answer"])
    assert faithful.correct == 1319 - bad
    wrong = [f"<answer>\\boxed{{{e['answer']}1}}</answer>" for e in ex]
    assert _score(task, wrong, ex, "fixed").correct == 0


def test_math500_gold(data_dir):
    task = get_task("math500")
    ex = task.load_split(str(data_dir / "math500_test.jsonl"), "test")
    assert len(ex) == 500
    sols = [e["solution"] for e in ex]
    assert _score(task, sols, ex, "faithful").accuracy == 100.0
    boxed = [f"<reasoning>x</reasoning><answer>\\boxed{{{e['answer']}}}</answer>" for e in ex]
    assert _score(task, boxed, ex, "fixed").accuracy == 100.0
    assert _score(task, ["<answer>\\boxed{\\text{nope}}</answer>"] * 500, ex, "faithful").correct == 0


def test_countdown_gold(data_dir):
    task = get_task("countdown")
    ex = task.load_split(str(data_dir / "countdown_cd3_test.jsonl"), "test")
    assert len(ex) == 256
    sol = [solve(e["numbers"], e["target"]) for e in ex]
    solvable = [(s, e) for s, e in zip(sol, ex) if s is not None]
    assert len(solvable) == 256
    comps = [f"<answer>\n\\boxed{{{s}}}\n</answer>" for s, _ in solvable]
    exs = [e for _, e in solvable]
    for mode in ("faithful", "fixed"):
        assert _score(task, comps, exs, mode).accuracy == 100.0
    assert _score(task, ["<answer>\\boxed{1+2+3}</answer>"] * len(exs), exs, "fixed").correct == 0


@pytest.mark.parametrize("name", ["sudoku_4x4_test_spg.csv", "sudoku_4x4_test_d1.csv"])
def test_sudoku_gold(data_dir, name):
    task = get_task("sudoku")
    ex = task.load_split(str(data_dir / name), "test")
    gold = [f"<reasoning>\n...\n</reasoning>\n<answer>\n{e['solution']}\n</answer><|eot_id|>" for e in ex]
    for mode in ("faithful", "fixed"):
        s = _score(task, gold, ex, mode)
        assert s.accuracy == 100.0 and s.total == sum(e["puzzle"].count("0") for e in ex)
    assert _score(task, [f"<answer>{e['puzzle']}</answer>" for e in ex], ex, "fixed").correct == 0


def test_gold_rewards_max(data_dir):
    task = get_task("gsm8k")
    e = task.load_split(str(data_dir / "gsm8k_test.jsonl"), "test")[0]
    perfect = f"<reasoning>\nthink\n</reasoning>\n<answer>\n{e['answer']}\n</answer>\n"
    # faithful: soft-format regex has no DOTALL (multi-line reasoning fails) and SPG's xml
    # count charges 0.001 per char after "\n<answer>\n" ("18\n</answer>\n" = 13 chars)
    assert task.total_reward(perfect, e, "faithful") == pytest.approx(0.487 + 0.0 + 0.5 + 0.5 + 2.0)
    assert task.total_reward(perfect, e, "fixed") == pytest.approx(4.0)
    line = json.dumps(task.ground_truth(e))
    assert line == json.dumps(e["answer"])
