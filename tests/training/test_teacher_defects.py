"""spg_lib.training.teacher_defects: the systematic SFT-demonstration error of the CPU demonstration (the defect
itself is the task's: Sudoku's ``off_by_one``)."""

from __future__ import annotations

import pytest

from spg_lib.tasks import get_task
from spg_lib.tasks.sudoku import off_by_one_solution, sudoku_reward
from spg_lib.training.teacher_defects import apply_teacher_defect

SUDOKU = get_task("sudoku")

PUZZLE, SOLUTION = "4213100031042400", "4213134231242431"


def test_off_by_one_shifts_only_the_filled_cells():
    wrong = off_by_one_solution(PUZZLE, SOLUTION)
    assert wrong == "4213" "1231" "3114" "2420"  # filled cells 342, 2, 31 -> 231, 1, 20
    assert all(w == s for p, w, s in zip(PUZZLE, wrong, SOLUTION, strict=True) if p != "0")
    # the reward gives such an answer nothing (every filled cell is off by one), the right answer everything
    assert sudoku_reward(f"<answer>{wrong}</answer>", puzzle=PUZZLE, solution=SOLUTION) == 0.0
    assert sudoku_reward(f"<answer>{SOLUTION}</answer>", puzzle=PUZZLE, solution=SOLUTION) == 1.0


def test_fraction_is_exact_seeded_and_leaves_the_input_alone():
    examples = [{"puzzle": PUZZLE, "solution": SOLUTION, "i": i} for i in range(10)]
    out = apply_teacher_defect(SUDOKU, examples, "off_by_one", 0.3, seed=0)
    changed = [ex["i"] for ex in out if ex["solution"] != SOLUTION]
    assert len(changed) == 3
    assert changed == [ex["i"] for ex in apply_teacher_defect(SUDOKU, examples, "off_by_one", 0.3, seed=0)
                       if ex["solution"] != SOLUTION]
    assert all(ex["solution"] == SOLUTION for ex in examples)  # copies, not the caller's dicts
    assert apply_teacher_defect(SUDOKU, examples, "none", 0.9, seed=0) == examples
    assert all(ex["solution"] != SOLUTION for ex in apply_teacher_defect(SUDOKU, examples, "off_by_one", 1.0, 0))


@pytest.mark.parametrize(("task", "kind", "fraction", "match"), [
    ("sudoku", "typo", 0.5, r"sft.teacher_defect must be one of \['none', 'off_by_one'\] for task 'sudoku'"),
    ("sudoku", "off_by_one", 1.5, r"teacher_defect_fraction must be in \[0, 1\]"),
    ("gsm8k", "off_by_one", 0.5, r"must be one of \['none'\] for task 'gsm8k'"),
])
def test_bad_settings_name_the_field(task, kind, fraction, match):
    with pytest.raises(ValueError, match=match):
        apply_teacher_defect(get_task(task), [{"puzzle": PUZZLE, "solution": SOLUTION}], kind, fraction, seed=0)


def test_run_sft_trains_on_the_defective_demonstrations(tmp_path, monkeypatch):
    """`spg sft` with a teacher defect: the SFT targets carry it, the prompts (and the data file) do not."""
    import json

    from spg_lib.training import run as run_mod

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"puzzle": PUZZLE, "solution": SOLUTION}) + "\n" for _ in range(4)))
    seen = {}

    class StopBeforeTrainingError(Exception):
        pass

    def capture(tokenizer, prompts, responses, **kw):
        seen.update(prompts=prompts, responses=responses)
        raise StopBeforeTrainingError

    monkeypatch.setattr(run_mod, "build_sft_batch", capture)
    cfg = run_mod.SFTRunConfig(train_data=str(data), out_dir=str(tmp_path / "sft"), teacher_defect="off_by_one",
                               teacher_defect_fraction=0.5)
    with pytest.raises(StopBeforeTrainingError):
        run_mod.run_sft(cfg, log=lambda *_: None)
    wrong = off_by_one_solution(PUZZLE, SOLUTION)
    assert sorted(seen["responses"]) == sorted(f"<answer>{s}</answer>" for s in (SOLUTION, SOLUTION, wrong, wrong))
    assert all(PUZZLE in p for p in seen["prompts"]) and SOLUTION in data.read_text()
    with pytest.raises(ValueError, match="teacher_defect_fraction must be in"):
        run_mod.SFTRunConfig(teacher_defect="off_by_one", teacher_defect_fraction=2.0)  # at construction
    typo = run_mod.SFTRunConfig(train_data=str(data), teacher_defect="typo", teacher_defect_fraction=0.5)
    with pytest.raises(ValueError, match="teacher_defect must be one of"):  # the task's list: before any model load
        run_mod.run_sft(typo, log=lambda *_: None)
