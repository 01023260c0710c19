"""Syntax of maintenance windows, shared by the CRD schema (server-side) and the operator (evaluation).

The cron pattern checks each of the five fields against its own value range, so the API server
rejects '61 * * * *' and not only garbage; the operator evaluates accepted schedules with croniter.
"""


def _field(number: str, names: str = "") -> str:
    atom = number if not names else f"(?:{number}|{names})"
    single = rf"(?:\*|{atom}(?:-{atom})?)(?:/[1-9][0-9]?)?"
    return rf"{single}(?:,{single})*"


_MINUTE = _field(r"[0-5]?[0-9]")
_HOUR = _field(r"(?:[01]?[0-9]|2[0-3])")
_DAY_OF_MONTH = _field(r"(?:0?[1-9]|[12][0-9]|3[01])")
_MONTH = _field(r"(?:0?[1-9]|1[0-2])", "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC")
_DAY_OF_WEEK = _field(r"[0-7]", "SUN|MON|TUE|WED|THU|FRI|SAT")

CRON_PATTERN = rf"^{_MINUTE} {_HOUR} {_DAY_OF_MONTH} {_MONTH} {_DAY_OF_WEEK}$"
DURATION_PATTERN = r"^(?:[0-9]{1,3}h)?(?:[0-9]{1,5}m)?$"
TIME_ZONE_PATTERN = r"^(?:UTC|[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2})$"
