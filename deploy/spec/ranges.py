"""Ranges so that 300 servers need no 300 entries.

A name or address may hold one range `[START:END]` (both ends included):
`app-[001:120]` gives app-001 … app-120 (a leading zero in START pads to its width) and
`203.0.113.[10:129]` gives 120 addresses. An address may instead be given as a start,
`address_start: 10.1.0.10`, counting up one per name. Ranges in one server entry must be
the same length as the name range: a shorter one is exhausted, a longer one is ambiguous.
"""

from __future__ import annotations

import ipaddress
import re

RANGE_RE = re.compile(r"\[(\d+):(\d+)\]")
MAX_RANGE = 100_000


class RangeError(ValueError):
    """A malformed range; the message says what and how to fix it."""


def has_range(text: str) -> bool:
    return "[" in text or "]" in text


def expand(text: str) -> list[str]:
    """Expand one `[START:END]` range in `text`; text without brackets is returned alone."""
    if not has_range(text):
        return [text]
    matches = list(RANGE_RE.finditer(text))
    if len(matches) != 1 or text.count("[") != 1 or text.count("]") != 1:
        raise RangeError(f"'{text}' is not a range — write one [START:END] with whole numbers, "
                         "e.g. app-[001:120]")
    m = matches[0]
    start_s, end_s = m.group(1), m.group(2)
    start, end = int(start_s), int(end_s)
    if start > end:
        raise RangeError(f"range '{text}' runs backwards ({start} > {end}) — "
                         f"write [{end_s}:{start_s}]")
    if end - start + 1 > MAX_RANGE:
        raise RangeError(f"range '{text}' has {end - start + 1} items — split it "
                         f"(at most {MAX_RANGE})")
    width = len(start_s) if start_s.startswith("0") and len(start_s) > 1 else 0
    head, tail = text[: m.start()], text[m.end():]
    return [f"{head}{i:0{width}d}{tail}" for i in range(start, end + 1)]


def expand_addresses(text: str, count: int) -> list[str]:
    """Expand an address or address range into `count` IPv4 addresses (as strings)."""
    values = expand(text)
    if len(values) > 1 and len(values) != count:
        what = "exhausted" if len(values) < count else "longer than the name range"
        raise RangeError(f"address range '{text}' is {what}: {len(values)} addresses for "
                         f"{count} names — make it cover exactly {count}")
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.IPv4Address(value)))
        except ValueError:
            raise RangeError(f"'{value}' (from '{text}') is not an IPv4 address — "
                             "each octet is 0-255, e.g. 203.0.113.10") from None
    if len(out) == 1 and count > 1:
        raise RangeError(f"one address '{text}' for {count} names — give a range "
                         "(e.g. 203.0.113.[10:129]) or an *_start address")
    return out


def count_up(start: str, count: int) -> list[str]:
    """`count` consecutive IPv4 addresses from `start`."""
    try:
        first = ipaddress.IPv4Address(start)
    except ValueError:
        raise RangeError(f"'{start}' is not an IPv4 address — e.g. 10.1.0.10") from None
    if int(first) + count - 1 > int(ipaddress.IPv4Address("255.255.255.255")):
        raise RangeError(f"start {start} is exhausted before {count} addresses — start lower")
    return [str(first + i) for i in range(count)]
