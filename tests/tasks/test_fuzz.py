"""Fuzzing: rewards and parsers never raise, never execute anything, and stay fast on hostile text."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spg_lib.tasks import get_task
from spg_lib.tasks.countdown_eval import evaluate_expression

FRAGMENTS = [
    "<reasoning>", "</reasoning>", "<answer>", "</answer>", "\\boxed{", "\\boxed ", "}", "{", "\n", "$",
    "9**9**9", "__import__('os').system('echo pwned')", "(" * 50, ")" * 50, "1,000", "-3", "<|eot_id|>",
    "<|endoftext|>", "\\frac", "\\sqrt", "=", "/", "0", "1234123412341234", "```", "\\text{ ", "**",
]
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=40).map("".join)

GT = {
    "gsm8k": "18",
    "math500": "\\frac{1}{2}",
    "countdown": {"numbers": [30, 100, 93], "target": 23},
    "sudoku": {"puzzle": "0310200404001043", "solution": "4312213434211243"},
}
EXAMPLES = {
    "gsm8k": {"answer": "18"},
    "math500": {"answer": "\\frac{1}{2}", "solution": "\\boxed{\\frac{1}{2}}"},
    "countdown": {"numbers": [30, 100, 93], "target": 23},
    "sudoku": {"puzzle": "0310200404001043", "solution": "4312213434211243"},
}
PER_CALL_S = 5.0  # generous: shared CPU; math-verify parses take tens of ms


def _check_all(text, names=("gsm8k", "countdown", "sudoku"), modes=("faithful", "fixed")):
    for name in names:
        task = get_task(name)
        for mode in modes:
            t0 = time.perf_counter()
            for r in task.reward_functions(mode):
                v = r(text, **task.reward_kwargs(EXAMPLES[name]))
                assert isinstance(v, float) and -1000 < v <= 4.0
            res = task.score(text, GT[name], mode=mode)
            assert 0 <= res.correct <= res.total
            assert time.perf_counter() - t0 < PER_CALL_S, (name, mode, len(text))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_fuzz_rewards_and_parsers(text):
    _check_all(text)


@settings(max_examples=15, deadline=None)
@given(hostile)
def test_fuzz_math_cheap(text):
    # math-verify is slow: fewer examples, faithful path always, fixed path on short inputs
    _check_all(text[:200], names=("math500",))


@pytest.mark.parametrize(
    "text",
    [
        "x" * 100_000,
        "<answer>" * 12_500,
        "\\boxed{" * 14_000,
        "<answer>" + "1 " * 50_000 + "=" + "</answer>",
        "(" * 100_000,
        "<reasoning>" + "</reasoning>" * 8000,
        "<answer>\\boxed{" + "9" * 50_000 + "}</answer>",
        "1" * 100_000,
        "}" * 50_000 + "\\boxed{" * 5000,
        "\\boxed{" * 10_000 + "1" + "}" * 10_000,
    ],
)
def test_huge_inputs_bounded(text):
    _check_all(text, names=("gsm8k", "countdown", "sudoku", "math500"))


def test_nothing_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    for expr in (payload, f"<answer>{payload}</answer>", "().__class__.__bases__[0].__subclasses__()"):
        assert evaluate_expression(expr, mode="faithful") is None
        assert evaluate_expression(expr, mode="fixed") is None
        _check_all(f"<answer>\\boxed{{{expr}}}</answer>")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("expr", "faithful", "fixed"),
    [
        ("1 + 2 * 3", 7.0, 7.0),
        ("(8 - 2) / 4", 1.5, 1.5),
        ("2 ** 10", 1024.0, None),
        ("7 // 2", 3.0, None),
        ("1.5 * 2", 3.0, None),
        ("9**9**9", None, None),
        ("10 ** 40", None, None),
        ("1 / 0", None, None),
        ("(" * 40 + "1" + ")" * 40, 1.0, 1.0),
        ("(" * 300 + "1" + ")" * 300, None, None),
        ("02 + 1", None, None),
        ("3 (4)", None, None),
        ("", None, None),
    ],
)
def test_evaluator_golden(expr, faithful, fixed):
    assert evaluate_expression(expr, mode="faithful") == faithful
    assert evaluate_expression(expr, mode="fixed") == fixed
