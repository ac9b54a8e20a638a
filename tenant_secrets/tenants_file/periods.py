"""The words of a rotation policy, checked: a period (`90d`) and a date (`2027-03-01`).

Apart from tenant_secrets/rotation/policy.py so that the model can use them (policy.py reads the model).
"""

from __future__ import annotations

import re
from datetime import date

from tenant_secrets.tenants_file.names import Problem

_PERIOD = re.compile(r"([1-9][0-9]{0,3})d")
PERIOD_MAX_DAYS = 3650
PERIOD_PATTERN = r"^[1-9][0-9]{0,3}d$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def period_problem(value: str) -> Problem | None:
    """None for a period such as `90d`: a whole number of days, 1 to 3650."""
    found = _PERIOD.fullmatch(value)
    if found and int(found.group(1)) <= PERIOD_MAX_DAYS:
        return None
    return Problem(f"'{value}' is not a period", f"write a number of days from 1 to {PERIOD_MAX_DAYS}, e.g. 90d")


def period_days(value: str) -> int:
    """`90d` -> 90 (the value has passed period_problem)."""
    return int(value.removesuffix("d"))


def date_problem(value: str) -> Problem | None:
    """None for a calendar date written YYYY-MM-DD."""
    try:
        if len(value) == 10 and date.fromisoformat(value):
            return None
    except ValueError:
        pass
    return Problem(f"'{value}' is not a date", "write it as YYYY-MM-DD, e.g. 2027-03-01")
