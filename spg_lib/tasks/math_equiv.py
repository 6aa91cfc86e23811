"""LaTeX answer extraction and equivalence for MATH-style answers.

Two layers, selected by the task `mode`:

* ``faithful`` — the Hendrycks MATH helpers exactly as the SPG/d1 code uses them
  (`last_boxed_only_string`, `remove_boxed`, `strip_string`, `is_equiv`; docs/algorithms.md#tasks-and-rewards),
  quirks included: ``\\boxed `` (with a space) is cut at the next ``$``; no ``\\boxed`` returns the
  whole text; an unbalanced ``\\boxed{`` gives None; normalisation errors fall back to raw string
  equality.
* ``fixed`` — brace-matched extraction that returns None when there is no box, plus
  `math_verify` (symbolic equivalence with a time limit) on top of the Hendrycks string check.

References: Hendrycks et al. 2021 (MATH, `math_equivalence.py`); HuggingFace math-verify.
"""

from __future__ import annotations

import re
import threading

__all__ = [
    "boxed_contents",
    "extract_boxed",
    "is_equiv",
    "is_equiv_fixed",
    "last_boxed_only_string",
    "math_verify_equal",
    "remove_boxed",
    "strip_string",
]

# Inputs longer than this are not handed to math-verify/sympy (their cost grows badly with size).
_MATH_VERIFY_MAX_CHARS = 1000


# ----------------------------------------------------------------------------------------------
# faithful Hendrycks helpers
# ----------------------------------------------------------------------------------------------
def last_boxed_only_string(string: str) -> str | None:
    """The last ``\\boxed{...}``/``\\fbox{...}`` of `string`, as the official code finds it.

    ``\\boxed `` (space form) wins: everything after its last occurrence up to the next ``$``.
    Without any box the WHOLE string is returned (the official eval then compares the whole
    generation). An unclosed brace returns None.
    """
    if "\\boxed " in string:
        return "\\boxed " + string.split("\\boxed ")[-1].split("$")[0]
    idx = string.rfind("\\boxed")
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return string
    depth = 0
    for i in range(idx, len(string)):
        ch = string[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return string[idx : i + 1]
    return None


def remove_boxed(s: str | None) -> str:
    """Strip ``\\boxed `` or ``\\boxed{``…``}``; a string of another shape is returned unchanged.

    Raises:
        TypeError: if `s` is None (an unbalanced box upstream); callers catch it as the
            official code does.
    """
    if s is None:
        raise TypeError("remove_boxed() got None (unbalanced \\boxed{)")
    if "\\boxed " in s:
        left = "\\boxed "
        return s[len(left) :] if s.startswith(left) else s
    left = "\\boxed{"
    if s.startswith(left) and s.endswith("}"):
        return s[len(left) : -1]
    return s


def _fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr[0] == "{":  # IndexError on "\frac" at the end: caught by is_equiv (faithful)
            new_str += substr
            continue
        if len(substr) < 2:
            return string
        a, b = substr[0], substr[1]
        if b != "{":
            new_str += "{" + a + "}{" + b + "}" + substr[2:]
        else:
            new_str += "{" + a + "}" + b + substr[2:]
    return new_str


def _fix_a_slash_b(string: str) -> str:
    parts = string.split("/")
    if len(parts) != 2:
        return string
    a, b = int(parts[0]), int(parts[1])  # ValueError propagates to is_equiv (faithful)
    if string != f"{a}/{b}":
        return string
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _remove_right_units(string: str) -> str:
    if "\\text{ " in string:
        splits = string.split("\\text{ ")
        if len(splits) != 2:  # the official code asserts here; is_equiv catches it
            raise ValueError("more than one '\\text{ ' unit")
        return splits[0]
    return string


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":  # IndexError on a trailing "\sqrt": caught by is_equiv (faithful)
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def strip_string(string: str) -> str:
    """Hendrycks MATH answer normalisation (may raise on odd inputs, like the original)."""
    string = string.replace("\n", "")
    string = string.replace("\\!", "")
    string = string.replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2 and len(string.split("=")[0]) <= 2:
        string = string.split("=")[1]
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def is_equiv(str1: str | None, str2: str | None) -> bool:
    """Official equivalence: both None → True, one None → False, else normalised equality
    (raw equality when normalisation raises)."""
    if str1 is None and str2 is None:
        return True
    if str1 is None or str2 is None:
        return False
    try:
        return strip_string(str1) == strip_string(str2)
    except Exception:  # faithful: any normalisation failure degrades to raw comparison
        return str1 == str2


# ----------------------------------------------------------------------------------------------
# fixed helpers
# ----------------------------------------------------------------------------------------------
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def boxed_contents(text: str) -> list[str]:
    """Contents of every brace-balanced ``\\boxed{...}``/``\\fbox{...}``, ordered by start.

    One pass with a stack of open braces (linear time even for thousands of nested or
    unclosed boxes); unbalanced boxes are skipped.
    """
    box_braces = {m.end() - 1 for m in _BOX_RE.finditer(text)}  # index of each box's "{"
    if not box_braces:
        return []
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            opened = stack.pop()
            if opened in box_braces:
                spans.append((opened + 1, i))
    spans.sort()
    return [text[a:b].strip() for a, b in spans]


def extract_boxed(text: str, *, which: str = "last") -> str | None:
    """Content of the first/last brace-balanced ``\\boxed{...}`` (or ``\\fbox``); None if none.

    Unlike the faithful helper, a missing box gives None (not the whole text) and an unbalanced
    box is skipped in favour of an earlier balanced one.
    """
    if which not in ("first", "last"):
        raise ValueError(f"which must be 'first' or 'last', got {which!r}")
    contents = boxed_contents(text)
    if not contents:
        return None
    return contents[-1] if which == "last" else contents[0]


def _safe_strip(s: str) -> str | None:
    try:
        return strip_string(s)
    except Exception:  # normalisation is best effort in fixed mode
        return None


def math_verify_equal(gold: str, pred: str, *, timeout_s: int = 3) -> bool:
    """Symbolic equivalence with math-verify; False on any failure or time-out.

    math-verify's timeouts use SIGALRM and only work in the main thread; elsewhere they are
    disabled and very long inputs are refused instead (`_MATH_VERIFY_MAX_CHARS`).
    """
    if len(gold) > _MATH_VERIFY_MAX_CHARS or len(pred) > _MATH_VERIFY_MAX_CHARS:
        return False
    try:
        from math_verify import parse, verify
    except ImportError:  # optional at runtime: fall back to the string check only
        return False
    main = threading.current_thread() is threading.main_thread()
    timeout = timeout_s if main else None
    try:
        g = parse(f"${gold}$", parsing_timeout=timeout, raise_on_error=False)
        p = parse(f"${pred}$", parsing_timeout=timeout, raise_on_error=False)
        if not g or not p:
            return False
        return bool(verify(g, p, timeout_seconds=timeout, raise_on_error=False))
    except Exception:  # math-verify/sympy can raise almost anything on adversarial input
        return False


def is_equiv_fixed(gold: str | None, pred: str | None, *, use_math_verify: bool = True) -> bool:
    """Fixed-mode equivalence: Hendrycks-normalised equality, else math-verify."""
    if gold is None or pred is None:
        return False
    a, b = _safe_strip(gold), _safe_strip(pred)
    if a is not None and a == b:
        return True
    if gold.strip() == pred.strip():
        return True
    return use_math_verify and math_verify_equal(gold, pred)
