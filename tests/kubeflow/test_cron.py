"""KFP cron expressions: six fields, seconds first; five-field crontab lines refused with the six-field form."""

from __future__ import annotations

import pytest

from spg_lib.io import InputError
from spg_lib.kubeflow.cron import CronError, validate_cron


@pytest.mark.parametrize("expr", [
    "0 0 3 * * *",          # 03:00:00 daily
    "*/30 * * * * *",
    "0 0 9 ? * 2-6",        # kfp.Client's own docstring example
    "0 0/10 * * * ?",
    "0 15,45 8-18/2 1,15 JAN-MAR MON-FRI",
    "0 0 0 31 dec sun",     # names are case-insensitive
    "59 59 23 1-31 1-12 0-6",
    "5/15 * * * * *",
    "@daily", "@hourly", "@every 1h30m", "@every 90s",
])
def test_valid_expressions(expr):
    assert validate_cron(expr) == expr


def test_whitespace_is_normalised():
    assert validate_cron("  0  0 3 *\t* * ") == "0 0 3 * * *"


def test_five_fields_shows_the_six_field_form():
    with pytest.raises(CronError) as info:
        validate_cron("0 * * * *")
    assert str(info.value) == ("KFP cron has 6 fields (seconds first); '0 * * * *' would be read as seconds=0 "
                               "minute=* hour=* day-of-month=* month=*, i.e. every minute; did you mean "
                               "'0 0 * * * *'?")
    assert isinstance(info.value, InputError)  # the spg CLI turns it into one line, exit 2


def test_five_fields_daily_line():
    with pytest.raises(CronError, match=r"'30 2 \* \* \*' would be read as seconds=30 minute=2 hour=\*.*i\.e\. every "
                                        r"hour; did you mean '0 30 2 \* \* \*'\?"):
        validate_cron("30 2 * * *")


def test_five_fields_that_are_wrong_anyway():
    with pytest.raises(CronError, match=r"got 5 in '0 25 \* \* \*'; as six fields .*hours field '25': 25 is out of "
                                        r"range 0-23"):
        validate_cron("0 25 * * *")


@pytest.mark.parametrize("expr, message", [
    ("", "cron expression is empty"),
    ("0 0 3 * * * 2027", r"6 fields .*\(no year field\), got 7"),
    ("0 0 3 *", "got 4 in"),
    ("60 0 3 * * *", "seconds field '60': 60 is out of range 0-59"),
    ("0 0 24 * * *", "hours field '24': 24 is out of range 0-23"),
    ("0 0 3 0 * *", "day-of-month field '0': 0 is out of range 1-31"),
    ("0 0 3 * 13 *", "month field '13': 13 is out of range 1-12 or JAN-DEC"),
    ("0 0 3 * * 7", "day-of-week field '7': 7 is out of range 0-6 or SUN-SAT"),
    ("0 0 3 * FOO *", "month field 'FOO': 'FOO' is not a number or a name JAN..DEC"),
    ("0 0 3 * * MON-FOO", "'FOO' is not a number or a name SUN..SAT"),
    ("0 MON 3 * * *", "minutes field 'MON': 'MON' is not a number"),
    ("0 */0 * * * *", "minutes field '\\*/0': step '0' must be a whole number >= 1"),
    ("0 1/2/3 * * * *", "step '2/3' must be a whole number"),
    ("0 30-10 * * * *", r"range '30-10' runs backwards \(30 > 10\)"),
    ("0 1,,2 * * * *", "empty item in the list"),
    ("0 1- * * * *", "'1-' is not a value, range a-b"),
    ("? 0 3 * * *", "seconds field '\\?': '\\?' is only allowed in day-of-month and day-of-week"),
    ("0 0 3 ?/2 * *", "'\\?' takes no step"),
    ("0 0 3 * * -1", "'-1' is not a value"),
    ("@sometimes", "unknown descriptor"),
    ("@every 1 hour", "unknown descriptor"),
    ("0 0 3 * * __import__('os')", "day-of-week field"),
])
def test_bad_expressions(expr, message):
    with pytest.raises(CronError, match=message) as info:
        validate_cron(expr)
    assert "\n" not in str(info.value)
