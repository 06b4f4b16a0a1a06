"""Post text rules: length in Unicode code points, hashtags and @mentions."""

from __future__ import annotations

import re

from freehold.app.services.errors import Invalid

TAG_RE = re.compile(r"(?<![\w#])#(\w{1,64})")
MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,30})\b")


def check_body(body: str, max_chars: int, *, allow_empty: bool = False) -> str:
    if not isinstance(body, str):
        raise Invalid("text must be a string", field="body")
    body = body.replace("\r\n", "\n").strip()
    if "\x00" in body:
        raise Invalid("text must not contain NUL characters", field="body")
    n = len(body)  # Python strings count Unicode code points
    if n > max_chars:
        raise Invalid(f"text is {n} characters long: at most {max_chars} allowed, shorten it",
                      field="body")
    if not body and not allow_empty:
        raise Invalid("text is empty: write something", field="body")
    return body


def hashtags(body: str) -> list[str]:
    seen: dict[str, None] = {}
    for m in TAG_RE.finditer(body):
        seen.setdefault(m.group(1).lower(), None)
    return list(seen)


def mentions(body: str) -> list[str]:
    seen: dict[str, None] = {}
    for m in MENTION_RE.finditer(body):
        seen.setdefault(m.group(1).lower(), None)
    return list(seen)
