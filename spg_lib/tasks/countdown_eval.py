"""Safe arithmetic for Countdown: an `ast` walk over numbers and operators — never eval/exec.

The official code checks the equation against ``^[\\d+\\-*/().\\s]+$`` and then calls Python's
``eval`` with no builtins (docs/algorithms.md#tasks-and-rewards, docs/algorithms.md#evaluation-protocol). That whitelist
still admits ``**`` and
``//`` (``9**9**9`` hangs the process). Here the expression is parsed with `ast.parse` in
"eval" mode and walked by hand:

* ``faithful`` evaluation reproduces what Python would compute for the whitelisted characters
  (ints and floats, ``+ - * / // **``, unary ``+ -``), with bounds on size, depth, exponent and
  magnitude — a value out of bounds counts as "could not evaluate";
* ``fixed`` evaluation accepts only integer literals, binary ``+ - * /``, unary minus and
  parentheses, and computes exactly with `fractions.Fraction`.

Every failure returns None; nothing here raises on user text.
"""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction

__all__ = [
    "ALLOWED_PATTERN",
    "MAX_DEPTH",
    "MAX_EXPR_CHARS",
    "MAX_MAGNITUDE",
    "evaluate_exact",
    "evaluate_expression",
    "numbers_in_expression",
]

# official character whitelist (regex fragment quoted from the SPG/d1 reward code)
ALLOWED_PATTERN = re.compile(r"^[\d+\-*/().\s]+$")
MAX_EXPR_CHARS = 512
MAX_DEPTH = 32
MAX_MAGNITUDE = 10**30
_MAX_EXPONENT = 64


class _RejectError(Exception):
    """Internal: the expression is outside the accepted grammar or bounds."""


def numbers_in_expression(expr: str) -> list[int]:
    """All maximal digit runs of `expr` as ints (the official `\\d+` multiset check)."""
    return [int(n) for n in re.findall(r"\d+", expr[: MAX_EXPR_CHARS * 4])]


def _check(value: int | float | Fraction) -> int | float | Fraction:
    if isinstance(value, float) and not math.isfinite(value):
        raise _RejectError("non-finite")
    if abs(value) > MAX_MAGNITUDE:
        raise _RejectError("magnitude")
    return value


def _walk_faithful(node: ast.AST, depth: int) -> int | float:
    if depth > MAX_DEPTH:
        raise _RejectError("depth")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _walk_faithful(node.operand, depth + 1)
        return v if isinstance(node.op, ast.UAdd) else -v
    if isinstance(node, ast.BinOp):
        a = _walk_faithful(node.left, depth + 1)
        b = _walk_faithful(node.right, depth + 1)
        op = node.op
        try:
            if isinstance(op, ast.Add):
                return _check(a + b)
            if isinstance(op, ast.Sub):
                return _check(a - b)
            if isinstance(op, ast.Mult):
                return _check(a * b)
            if isinstance(op, ast.Div):
                return _check(a / b)
            if isinstance(op, ast.FloorDiv):
                return _check(a // b)
            if isinstance(op, ast.Pow):
                if abs(b) > _MAX_EXPONENT:
                    raise _RejectError("exponent")
                if a == 0 and b < 0:
                    raise _RejectError("zero to a negative power")
                # |a| ** b within bounds, checked in log space before computing
                if abs(a) > 1 and b > 0 and b * math.log10(abs(a)) > 30:
                    raise _RejectError("magnitude")
                result = a**b
                if isinstance(result, complex):
                    raise _RejectError("complex")
                return _check(result)
        except (ZeroDivisionError, OverflowError) as exc:
            raise _RejectError(str(exc)) from exc
    raise _RejectError(type(node).__name__)


def _walk_fixed(node: ast.AST, depth: int) -> Fraction:
    if depth > MAX_DEPTH:
        raise _RejectError("depth")
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Fraction(_check(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_walk_fixed(node.operand, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a = _walk_fixed(node.left, depth + 1)
        b = _walk_fixed(node.right, depth + 1)
        if isinstance(node.op, ast.Add):
            return _check(a + b)
        if isinstance(node.op, ast.Sub):
            return _check(a - b)
        if isinstance(node.op, ast.Mult):
            return _check(a * b)
        if b == 0:
            raise _RejectError("division by zero")
        return _check(a / b)
    raise _RejectError(type(node).__name__)


def evaluate_expression(expr: str, *, mode: str = "fixed") -> float | None:
    """Value of an arithmetic expression, or None if it is not acceptable.

    Args:
        expr: untrusted text.
        mode: "faithful" (Python semantics on the official whitelist) or "fixed"
            (integers, + - * /, parentheses; exact rational arithmetic).

    Returns:
        The value as a float, or None when the text is too long, contains anything else,
        does not parse, divides by zero, or leaves the size/depth/magnitude bounds.
    """
    if mode not in ("faithful", "fixed"):
        raise ValueError(f"mode must be 'faithful' or 'fixed', got {mode!r}")
    if not isinstance(expr, str) or len(expr) > MAX_EXPR_CHARS:
        return None
    if not ALLOWED_PATTERN.match(expr):
        return None
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    try:
        if mode == "faithful":
            return float(_walk_faithful(tree.body, 0))
        return float(_walk_fixed(tree.body, 0))
    except (_RejectError, RecursionError, OverflowError):
        return None


def evaluate_exact(expr: str) -> Fraction | None:
    """Fixed-mode value as an exact `Fraction` (same grammar and bounds as ``mode="fixed"``)."""
    if not isinstance(expr, str) or len(expr) > MAX_EXPR_CHARS or not ALLOWED_PATTERN.match(expr):
        return None
    try:
        tree = ast.parse(expr.strip(), mode="eval")
        return _walk_fixed(tree.body, 0)
    except (SyntaxError, ValueError, RecursionError, MemoryError, _RejectError, OverflowError):
        return None
