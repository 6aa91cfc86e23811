"""Golden tests for every reward branch (docs/algorithms.md#tasks-and-rewards) in both modes."""

import pytest

from spg_lib.tasks import gsm8k, math500
from spg_lib.tasks.countdown import countdown_reward
from spg_lib.tasks.sudoku import sudoku_reward


@pytest.mark.parametrize(
    ("text", "faithful", "fixed"),
    [
        ("", 0.0, 0.0),
        ("<reasoning>\n", 0.125, 0.125),
        ("<reasoning>\nx\n</reasoning>\n", 0.25, 0.25),
        # one "\n<answer>\n": faithful charges the 3 chars after it, fixed the chars after "\n</answer>\n"
        ("\n<answer>\n42\n", 0.125 - 0.003, 0.125 - 0.013),
        ("\n</answer>xyz", 0.125 - 0.002, 0.125 - 0.002),
    ],
)
def test_xmlcount(text, faithful, fixed):
    assert gsm8k.xmlcount_reward(text, mode="faithful") == pytest.approx(faithful)
    assert gsm8k.xmlcount_reward(text, mode="fixed") == pytest.approx(fixed)


def test_soft_and_strict_format_dotall():
    one_line = "<reasoning>r</reasoning>\n<answer>1</answer>"
    multi = "<reasoning>a\nb</reasoning><answer>1</answer>"
    strict_multi = "<reasoning>\na\nb\n</reasoning>\n<answer>\n1\n</answer>\n"
    assert gsm8k.soft_format_reward(one_line, mode="faithful") == 0.5
    assert gsm8k.soft_format_reward(multi, mode="faithful") == 0.0
    assert gsm8k.soft_format_reward(multi, mode="fixed") == 0.5
    assert gsm8k.soft_format_reward("x" + one_line, mode="fixed") == 0.0  # anchored at start
    assert gsm8k.strict_format_reward(strict_multi, mode="faithful") == 0.0
    assert gsm8k.strict_format_reward(strict_multi, mode="fixed") == 0.5
    assert gsm8k.strict_format_reward(strict_multi + "tail", mode="fixed") == 0.0


@pytest.mark.parametrize(
    ("ans", "faithful", "fixed"), [("42", 0.5, 0.5), ("-3", 0.0, 0.5), ("1.5", 0.0, 0.0), ("1,000", 0.0, 0.5)]
)
def test_int_reward(ans, faithful, fixed):
    c = f"<answer>{ans}</answer>"
    assert gsm8k.int_reward(c, mode="faithful") == faithful
    assert gsm8k.int_reward(c, mode="fixed") == fixed


def test_gsm8k_correctness():
    assert gsm8k.correctness_reward("<answer> 18 </answer>", answer="18", mode="faithful") == 2.0
    assert gsm8k.correctness_reward("<answer>1000</answer>", answer="1,000", mode="faithful") == 0.0
    assert gsm8k.correctness_reward("<answer>1000</answer>", answer="1,000", mode="fixed") == 2.0
    assert gsm8k.correctness_reward("<answer>$18.00</answer>", answer="18", mode="fixed") == 2.0
    assert gsm8k.correctness_reward("<answer>17</answer>", answer="18", mode="fixed") == 0.0
    # no <answer>: the whole text up to the first </answer> is the answer
    assert gsm8k.correctness_reward("18", answer="18", mode="faithful") == 2.0


def test_math_format_backspace_quirk():
    with_both = "<answer>\\boxed{1}</answer>"
    assert math500.format_reward(with_both, mode="faithful") == 0.75  # \b = backspace: box never seen
    assert math500.format_reward(with_both, mode="fixed") == 1.0
    assert math500.format_reward("\\boxed{1}", mode="faithful") == 0.25
    assert math500.format_reward("\\boxed{1}", mode="fixed") == 0.5
    assert math500.format_reward("nothing", mode="fixed") == 0.25
    assert math500.format_reward("\x08oxed <answer>", mode="faithful") == 1.0


def test_math_correctness():
    sol = "so $x = \\boxed{\\frac{1}{2}}$."
    for mode in ("faithful", "fixed"):
        assert math500.correctness_reward("\\boxed{\\dfrac12}", solution=sol, mode=mode) == 2.0
        assert math500.correctness_reward("\\boxed{1/3}", solution=sol, mode=mode) == 0.0
    # fixed uses math-verify on top of string normalisation
    assert math500.correctness_reward("\\boxed{0.5}", answer="\\frac{1}{2}", mode="fixed") == 2.0
    assert math500.correctness_reward("\\boxed{2/4}", answer="\\frac{1}{2}", mode="faithful") == 0.0
    assert math500.correctness_reward("\\boxed{2/4}", answer="\\frac{1}{2}", mode="fixed") == 2.0


@pytest.mark.parametrize("mode", ["faithful", "fixed"])
def test_countdown_reward_branches(mode):
    kw = {"numbers": [30, 100, 93], "target": 23, "mode": mode}
    assert countdown_reward("no tags", **kw) == 0.0
    assert countdown_reward("<answer>93 + 30 - 100</answer>", **kw) == 1.0
    assert countdown_reward("<answer>x</answer><answer>\n(30 - 100) + 93\n</answer>", **kw) == 1.0
    assert countdown_reward("<answer>100 - 93</answer>", **kw) == 0.1  # numbers mismatch
    assert countdown_reward("<answer>100 + 93 + 30</answer>", **kw) == 0.1  # wrong value
    assert countdown_reward("<answer>__import__('os') 30 100 93</answer>", **kw) == 0.1  # rejected
    assert countdown_reward("<answer>30 / (100 - 100) 93</answer>", **kw) == 0.1


def test_countdown_pow_faithful_only():
    kw = {"numbers": [2, 3, 15], "target": 23}
    assert countdown_reward("<answer>2**3+15</answer>", **kw, mode="faithful") == 1.0
    assert countdown_reward("<answer>2**3+15</answer>", **kw, mode="fixed") == 0.1
    big = {"numbers": [9, 9, 9], "target": 1}
    assert countdown_reward("<answer>9**9**9</answer>", **big, mode="faithful") == 0.1


def test_sudoku_reward():
    puzzle, sol = "0310200404001043", "4312213434211243"
    assert sudoku_reward("none", puzzle=puzzle, solution=sol) == 0.0
    assert sudoku_reward("<answer></answer>", puzzle=puzzle, solution=sol) == 0.0
    assert sudoku_reward(f"<answer>\n{sol}\n</answer>", puzzle=puzzle, solution=sol) == 1.0
    assert sudoku_reward("<answer>4</answer>", puzzle=puzzle, solution=sol) == pytest.approx(1 / 8)
    assert sudoku_reward(f"<answer>{sol}99</answer>", puzzle=puzzle, solution=sol) == 1.0
    assert sudoku_reward(f"<answer>{sol}</answer>", puzzle=sol, solution=sol) == 0.0  # no empty cell
