"""systemd's EnvironmentFile= reader, for tests: `read_environment_file` follows systemd's own
parser (src/basic/env-file.c, parse_env_file_internal, documented in systemd.exec(5)) state by
state, so a test can check what a unit would really see."""

from __future__ import annotations

NEWLINE = "\n\r"
WHITESPACE = " \t\n\r"
SHELL_NEED_ESCAPE = '"\\`$'


def read_environment_file(text: str) -> dict[str, str]:
    """Variables as systemd's EnvironmentFile= loads them (comments, bare, '…' and "…" values)."""
    out: dict[str, str] = {}
    state, key, value = "pre_key", "", ""
    chomp: int | None = None  # where trailing whitespace of a bare value starts

    def push() -> None:
        nonlocal key, value, chomp
        out[key.rstrip(" \t")] = value
        key, value, chomp = "", "", None

    for c in text:
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif c not in WHITESPACE:
                state, key = "key", c
        elif state == "key":
            if c in NEWLINE:
                state, key = "pre_key", ""
            elif c == "=":
                state = "pre_value"
            else:
                key += c
        elif state == "pre_value":
            if c in NEWLINE:
                push()
                state = "pre_key"
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif c not in WHITESPACE:
                state, value = "value", value + c
        elif state == "value":
            if c in NEWLINE:
                if chomp is not None:
                    value = value[:chomp]
                push()
                state = "pre_key"
            elif c == "\\":
                state, chomp = "value_escape", None
            else:
                if c not in WHITESPACE:
                    chomp = None
                elif chomp is None:
                    chomp = len(value)
                value += c
        elif state == "value_escape":
            state = "value"
            if c not in NEWLINE:
                value += c
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value += c
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value += c
        elif state == "double_escape":
            state = "double"
            if c in SHELL_NEED_ESCAPE:
                value += c
            elif c != "\n":
                value += "\\" + c
        elif state == "comment" and c in NEWLINE:
            state = "pre_key"
    if state not in ("pre_key", "key", "comment"):
        if state == "value" and chomp is not None:
            value = value[:chomp]
        push()
    return out
