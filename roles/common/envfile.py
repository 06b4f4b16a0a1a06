"""systemd EnvironmentFile text (systemd.exec(5), "EnvironmentFile="): one `NAME="value"` line
per variable. In a double-quoted value systemd keeps every character as written except that a
backslash before one of  " \\ ` $  yields that character, and a backslash before a newline joins
lines: so those four are escaped and control characters (newlines included) are refused. `$`
and `%` are not expanded in the file itself (only a unit's `$NAME` uses the value, whole).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ESCAPED = re.compile(r'(["\\`$])')


def quote_env_value(name: str, value: str) -> str:
    """`value` double-quoted for an EnvironmentFile; ValueError names a value that cannot be."""
    bad = CONTROL.search(value)
    if bad:
        raise ValueError(f"{name}: the value holds the control character {bad.group()!r} — "
                         "environment values are one line of text")
    return '"' + ESCAPED.sub(r"\\\1", value) + '"'


def environment_file(values: Mapping[str, str], header: str) -> str:
    """The file: a `# header` comment line, then the variables in the order given."""
    lines = [f"# {header}"]
    for name, value in values.items():
        if not NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a variable name — use letters, digits and '_'")
        lines.append(f"{name}={quote_env_value(name, value)}")
    return "\n".join(lines) + "\n"
