"""Small text helpers shared by the tasks: answer-tag extraction, numbers, special tokens.

All functions are total (never raise on str input) and linear-time in the input length.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = [
    "END_TOKENS",
    "FAITHFUL_MAX_CHARS",
    "extract_xml_answer",
    "first_answer_block",
    "last_answer_block",
    "parse_number",
    "strip_end_tokens",
]

# End-of-text markers LLaDA completions keep when decoded with skip_special_tokens=False.
END_TOKENS: tuple[str, ...] = ("<|eot_id|>", "<|endoftext|>")

# Official eval parsers use regexes that are quadratic on adversarial text; completions of
# gen_length <= 512 tokens are a few thousand characters, so they only ever see this prefix.
FAITHFUL_MAX_CHARS = 8192


def strip_end_tokens(text: str) -> str:
    """Cut `text` at the first end-of-text marker (what follows is padding)."""
    cut = len(text)
    for tok in END_TOKENS:
        i = text.find(tok)
        if 0 <= i < cut:
            cut = i
    return text[:cut]


def extract_xml_answer(text: str) -> str:
    """Text after the LAST ``<answer>`` up to the next ``</answer>``, stripped (the official
    training extraction, docs/algorithms.md#tasks-and-rewards)."""
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


def _answer_blocks(text: str) -> list[tuple[int, int]]:
    # same matches as re.finditer(r"<answer>(.*?)</answer>", text, re.DOTALL), in linear time
    spans = []
    pos = 0
    while True:
        i = text.find("<answer>", pos)
        if i < 0:
            break
        j = text.find("</answer>", i + 8)
        if j < 0:
            break
        spans.append((i + 8, j))
        pos = j + 9
    return spans


def last_answer_block(text: str) -> str | None:
    """Content of the last complete ``<answer>…</answer>`` (DOTALL), stripped; None if none."""
    spans = _answer_blocks(text)
    return text[spans[-1][0] : spans[-1][1]].strip() if spans else None


def first_answer_block(text: str) -> str | None:
    """Content of the first complete ``<answer>…</answer>`` (DOTALL), stripped; None if none."""
    i = text.find("<answer>")
    if i < 0:
        return None
    j = text.find("</answer>", i + 8)
    return None if j < 0 else text[i + 8 : j].strip()


_LATEX_NOISE = re.compile(r"\\[,!;: ]|\\\$|\$|\\%|%|\\text\{\s*\}|\{,\}")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}$")
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def parse_number(text: str | None, *, last: bool = True) -> Fraction | None:
    """An exact number from answer text: ``"1,234"``, ``"-3"``, ``"\\$18.50"``, ``"\\frac{1}{2}"``.

    The whole (cleaned) text is tried first; otherwise the last (or first) number in it.
    Thousands separators are only accepted in groups of three (``"1,000"``, not ``"1,00"``).
    """
    if text is None:
        return None
    s = _LATEX_NOISE.sub("", text[:10_000]).strip().rstrip(".").strip()
    m = _FRAC.match(s)
    if m:
        num, den = int(m.group(2)), int(m.group(3))
        if den == 0:
            return None
        value = Fraction(num, den)
        return -value if m.group(1) else value
    found = _NUMBER_RE.findall(s)
    if not found:
        return None
    token = s if _NUMBER_RE.fullmatch(s) else (found[-1] if last else found[0])
    token = token.replace(",", "")
    if len(token) > 400:  # absurdly long digit runs are not answers
        return None
    try:
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None
