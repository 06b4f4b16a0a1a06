"""Small real PNG images drawn in code for the demo data: landscapes for posts, silhouettes for
avatars. Standard library only (zlib): the app servers' environment carries no imaging library.

    landscape(SCENES["dawn"])  # -> PNG bytes, 360x240
    avatar((29, 78, 137))      # -> PNG bytes, 96x96
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

RGB = tuple[int, int, int]


def png(width: int, height: int, rows: Iterable[bytes]) -> bytes:
    """An 8-bit RGB PNG from `height` rows of `width` * 3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    if len(raw) != height * (1 + width * 3):
        raise ValueError(f"rows: {height} rows of {width * 3} bytes expected")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


@dataclass(frozen=True)
class Scene:
    sky_top: RGB
    sky_low: RGB
    sun: RGB
    far: RGB   # distant ridge
    near: RGB  # hills in front
    phase: float  # shifts the ridges, so each scene has its own skyline


SCENES: dict[str, Scene] = {
    "dawn": Scene((58, 62, 120), (250, 170, 120), (255, 230, 160), (120, 90, 130),
                  (50, 60, 70), 0.0),
    "lake": Scene((90, 160, 220), (200, 230, 245), (255, 250, 220), (90, 130, 150),
                  (40, 90, 130), 1.7),
    "forest": Scene((120, 190, 230), (225, 240, 235), (255, 245, 200), (80, 130, 90),
                    (30, 80, 40), 3.1),
    "dusk": Scene((30, 30, 70), (200, 90, 80), (255, 200, 120), (70, 50, 80), (25, 25, 40), 4.4),
    "field": Scene((100, 170, 240), (230, 240, 250), (255, 255, 230), (150, 170, 110),
                   (190, 160, 60), 5.9),
}


def landscape(scene: Scene, width: int = 360, height: int = 240) -> bytes:
    """Sky gradient, a sun, a far ridge and near hills: a photo-like picture for a post."""
    p = scene.phase
    far = [height * .55 + 22 * math.sin(x / 37 + p) + 10 * math.sin(x / 13 + 2 * p)
           for x in range(width)]
    near = [height * .74 + 16 * math.sin(x / 53 + 3 * p) + 6 * math.sin(x / 19 + p)
            for x in range(width)]
    sx, sy, sr = width * (.25 + .5 * ((p * 7) % 1)), height * .33, height * .09
    rows = []
    for y in range(height):
        sky = _mix(scene.sky_top, scene.sky_low, y / height)
        row = bytearray()
        for x in range(width):
            if y > near[x]:
                c = _mix(scene.near, (0, 0, 0), .35 * (y - near[x]) / height)
            elif y > far[x]:
                c = _mix(scene.far, scene.sky_low, .25 * (1 - (y - far[x]) / height))
            elif (x - sx) ** 2 + (y - sy) ** 2 < sr * sr:
                c = scene.sun
            else:
                c = sky
            row += bytes(c)
        rows.append(bytes(row))
    return png(width, height, rows)


def avatar(color: RGB, size: int = 96) -> bytes:
    """A head-and-shoulders silhouette on a coloured ground: a profile picture."""
    light = _mix(color, (255, 255, 255), .65)
    cx, hy, hr = size / 2, size * .40, size * .19
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            head = (x - cx) ** 2 + (y - hy) ** 2 < hr * hr
            body = ((x - cx) / (size * .36)) ** 2 + ((y - size * .98) / (size * .34)) ** 2 < 1
            row += bytes(light if head or body else color)
        rows.append(bytes(row))
    return png(size, size, rows)
