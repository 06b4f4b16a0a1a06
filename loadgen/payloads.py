"""What the simulated users write: tags, words, report reasons and small unique images.

Pure Python (no Locust, no roster): the Locust users and benchmarks/mix_costs.py share it.
"""

from __future__ import annotations

import random
import struct
import zlib

TAGS = ["freedom", "news", "politics", "music", "sports", "tech", "memes", "local", "faith",
        "photography", "gaming", "science", "books", "food", "travel", "art", "health", "cars",
        "movies", "weather"]
REPORT_REASONS = {"spam": 0.55, "harassment": 0.2, "other": 0.12, "incitement": 0.07,
                  "threat": 0.04, "illegal": 0.02}
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "people",
         "talk", "about", "what", "matters", "today", "in", "our", "town", "city", "world"]


def tiny_png(rng: random.Random, side: int = 64) -> bytes:
    """A unique, valid RGB PNG of random pixels (~12 KB for 64 x 64, barely compressible)."""
    raw = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 1))
            + chunk(b"IEND", b""))
