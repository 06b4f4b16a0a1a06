"""The web app's icons, drawn as PNGs in pure Python (zlib) once per process and cached.

A rounded square in the theme colour with a white open circle ("the commons"); `maskable`
fills the whole square (the platform rounds it) and keeps the mark in the safe zone.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

SIZES = (192, 512)
THEME = (0x1D, 0x4E, 0x89)
WHITE = (0xFF, 0xFF, 0xFF)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGBA PNG from rows of width*4 bytes."""
    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 on every row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


@lru_cache(maxsize=8)
def icon_png(size: int, maskable: bool = False) -> bytes:
    if size not in SIZES:
        raise ValueError(f"icon size {size}: one of {SIZES}")
    c = (size - 1) / 2
    corner = 0 if maskable else size * 0.18
    ring_out = size * (0.26 if maskable else 0.32)
    ring_in = ring_out * 0.62
    bg = bytes((*THEME, 255))
    fg = bytes((*WHITE, 255))
    clear = bytes((0, 0, 0, 0))
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            # rounded-square mask
            dx = max(corner - x, x - (size - 1 - corner), 0)
            dy = max(corner - y, y - (size - 1 - corner), 0)
            if corner and dx * dx + dy * dy > corner * corner:
                row += clear
                continue
            d2 = (x - c) ** 2 + (y - c) ** 2
            row += fg if ring_in * ring_in <= d2 <= ring_out * ring_out else bg
        rows.append(bytes(row))
    return encode_png(size, size, rows)
