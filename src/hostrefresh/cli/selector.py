"""kubectl's label selector syntax (``-l``), read into the requirement pairs lightkube sends.

``KEY=VALUE`` (or ``==``), ``KEY!=VALUE``, ``KEY in (A,B)``, ``KEY notin (A,B)``, ``KEY`` and ``!KEY``,
joined by commas, as ``kubectl get -l`` takes them; the API server does the selecting."""

from __future__ import annotations

import re
from typing import Any

from lightkube import operators

from hostrefresh.cli.errors import CliError, Exit

Requirement = tuple[str, "operators.Operator[Any]"]

_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?)"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_ABSENT = re.compile(rf"^!\s*(?P<key>{_KEY})$")
_COMPARE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})$")
_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_PRESENT = re.compile(rf"^(?P<key>{_KEY})$")
_HINT = "write KEY=VALUE, KEY!=VALUE, 'KEY in (A,B)', 'KEY notin (A,B)', KEY or !KEY, joined by commas"


def _split(text: str) -> list[str]:
    """The requirements of ``text``: its commas, except those inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def parse(text: str) -> list[Requirement]:
    """The requirements of a ``-l`` selector; a CliError (usage) naming the part that is not one."""
    requirements: list[Requirement] = []
    for raw in _split(text):
        part = raw.strip()
        if m := _ABSENT.match(part):
            requirements.append((m["key"], operators.not_exists()))
        elif m := _COMPARE.match(part):
            op = operators.not_equal if m["op"] == "!=" else operators.equal
            requirements.append((m["key"], op(m["value"])))
        elif m := _SET.match(part):
            values = [v.strip() for v in m["values"].split(",")]
            if not all(re.fullmatch(_VALUE, v) for v in values):
                raise CliError(f"-l {text!r}: {part!r} lists a value that is not a label value", _HINT, Exit.USAGE)
            requirements.append((m["key"], (operators.in_ if m["op"] == "in" else operators.not_in)(values)))
        elif m := _PRESENT.match(part):
            requirements.append((m["key"], operators.exists()))
        else:
            raise CliError(f"-l {text!r}: {part!r} is not a label requirement", _HINT, Exit.USAGE)
    return requirements
