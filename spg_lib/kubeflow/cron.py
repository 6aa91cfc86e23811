"""KFP cron expressions: six fields, seconds first, checked before a recurring run is created.

KFP's scheduler parses ``trigger.cron_schedule.cron`` with robfig/cron v1: six fields
``second minute hour day-of-month month day-of-week`` (``0 0 3 * * *`` is 03:00:00 every day). The same parser
also takes five fields as *seconds* to month with the day of week left out, so a five-field crontab line
``0 * * * *`` ("every hour" in crontab) would run at second 0 of every minute. `validate_cron` refuses five fields
with the six-field form it most likely means, and checks each field's syntax and range (no eval):

    *  ?  5  1-5  */15  10-40/10  1,15,30  JAN-MAR (month)  MON-FRI (day of week, 0 = Sunday)

``?`` (no specific value) is taken in day-of-month and day-of-week only. The parser's descriptors
(``@hourly``, ``@daily``, ``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``, ``@annually`` and
``@every <Go duration>``, e.g. ``@every 1h30m``) are accepted as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spg_lib.io import InputError

__all__ = ["CRON_FIELDS", "CronError", "validate_cron"]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_GO_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+")  # Go time.ParseDuration
_NUMBER = re.compile(r"\d+")


class CronError(InputError):
    """A cron expression KFP would refuse or misread (one line naming the expression and the field)."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i
    question: bool = False  # '?' allowed

    def span(self) -> str:
        text = f"{self.low}-{self.high}"
        return f"{text} or {self.names[0]}-{self.names[-1]}" if self.names else text


#: The six fields of a KFP cron expression, in order.
CRON_FIELDS: tuple[_Field, ...] = (
    _Field("seconds", 0, 59),
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31, question=True),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 6, _DAYS, question=True),
)


def _value(text: str, field: _Field, where: str) -> int:
    """One number or name of ``field`` (names are case-insensitive)."""
    upper = text.upper()
    if field.names and upper in field.names:
        return field.low + field.names.index(upper)
    if not _NUMBER.fullmatch(text):
        names = f" or a name {field.names[0]}..{field.names[-1]}" if field.names else ""
        raise CronError(f"{where}: {text!r} is not a number{names}")
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{where}: {value} is out of range {field.span()}")
    return value


def _check_field(text: str, field: _Field, expr: str) -> None:
    where = f"cron {expr!r}: {field.name} field {text!r}"
    for part in text.split(","):
        if not part:
            raise CronError(f"{where}: empty item in the list")
        base, slash, step = part.partition("/")
        if slash and (not _NUMBER.fullmatch(step) or int(step) == 0):
            raise CronError(f"{where}: step {step!r} must be a whole number >= 1")
        if base in ("*", "?"):
            if base == "?" and not field.question:
                raise CronError(f"{where}: '?' is only allowed in day-of-month and day-of-week (use '*')")
            if base == "?" and slash:
                raise CronError(f"{where}: '?' takes no step (use '*/{step}')")
            continue
        low_text, dash, high_text = base.partition("-")
        if not low_text or (dash and not high_text):
            raise CronError(f"{where}: {part!r} is not a value, range a-b, '*' or '?'")
        low = _value(low_text, field, where)
        if dash:
            high = _value(high_text, field, where)
            if high < low:
                raise CronError(f"{where}: range {base!r} runs backwards ({low} > {high})")


def _reading_of_five(fields: list[str]) -> str:
    """How the scheduler reads five fields (seconds..month), with the gloss that matters."""
    names = ("seconds", "minute", "hour", "day-of-month", "month")
    reading = " ".join(f"{n}={v}" for n, v in zip(names, fields, strict=True))
    if fields[1] == "*":
        return f"{reading}, i.e. every minute"
    if fields[2] == "*":
        return f"{reading}, i.e. every hour"
    return reading


def validate_cron(expr: str) -> str:
    """``expr`` with its whitespace normalised, after checking it is a six-field KFP cron expression.

    Raises:
        CronError: one line naming the expression and the field; for five fields, the six-field form.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise CronError("cron expression is empty; KFP cron has 6 fields (seconds first), e.g. '0 0 3 * * *' "
                        "is 03:00:00 every day")
    fields = expr.split()
    text = " ".join(fields)
    if text.startswith("@"):
        if text in _DESCRIPTORS:
            return text
        if fields[0] == "@every" and len(fields) == 2 and _GO_DURATION.fullmatch(fields[1]):
            return text
        raise CronError(f"cron {text!r}: unknown descriptor; use one of {', '.join(sorted(_DESCRIPTORS))} or "
                        "'@every <duration>' (e.g. @every 1h30m)")
    if len(fields) == 5:
        suggestion = "0 " + text
        try:
            validate_cron(suggestion)
        except CronError as exc:
            raise CronError(f"KFP cron has 6 fields (seconds first), got 5 in {text!r}; as six fields {exc}") from None
        raise CronError(f"KFP cron has 6 fields (seconds first); {text!r} would be read as "
                        f"{_reading_of_five(fields)}; did you mean {suggestion!r}?")
    if len(fields) != 6:
        extra = " (no year field)" if len(fields) == 7 else ""
        raise CronError(f"KFP cron has 6 fields (second minute hour day-of-month month day-of-week){extra}, "
                        f"got {len(fields)} in {text!r}; e.g. '0 0 3 * * *' is 03:00:00 every day")
    for part, field in zip(fields, CRON_FIELDS, strict=True):
        _check_field(part, field, text)
    return text
