"""Skewed picks: a few accounts and posts draw most reads (Zipf over a popularity ranking).

Pure Python (no Locust): the Locust users, the seed and the tests share it. Item 0 is the most
popular; the probability of rank r (0-based) is proportional to 1 / (r + 1) ** s.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Zipf(Generic[T]):
    """Draws items of a ranked sequence with Zipf(s) probabilities; O(log n) per draw."""

    def __init__(self, items: Sequence[T], s: float, rng: random.Random | None = None) -> None:
        if not items:
            raise ValueError("Zipf needs at least one item")
        if s < 0:
            raise ValueError(f"Zipf exponent must be >= 0, got {s}")
        self.items = items
        self.s = s
        self.rng = rng or random.Random()
        self._cum = list(itertools.accumulate(1.0 / (r + 1) ** s for r in range(len(items))))
        self.total = self._cum[-1]

    def rank(self, rng: random.Random | None = None) -> int:
        """A 0-based rank drawn with Zipf probabilities (`rng`: the caller's, to share tables)."""
        i = bisect.bisect_left(self._cum, (rng or self.rng).random() * self.total)
        return min(i, len(self.items) - 1)

    def pick(self, rng: random.Random | None = None) -> T:
        return self.items[self.rank(rng)]

    def share_of_top(self, k: int) -> float:
        """Probability mass of the k most popular items (what 'a few draw most' means)."""
        k = max(0, min(k, len(self.items)))
        return self._cum[k - 1] / self.total if k else 0.0


def weighted_choice(weights: dict[str, float], rng: random.Random) -> str:
    """One key of `weights` with probability proportional to its value (values >= 0)."""
    keys = [k for k, w in weights.items() if w > 0]
    if not keys:
        raise ValueError("no action has a positive weight")
    return rng.choices(keys, weights=[weights[k] for k in keys], k=1)[0]


def first_pause(rng: random.Random, lo: float, hi: float) -> float:
    """How long a user that just arrived waits before its first action, so that users started
    together act at the steady rate at once instead of all at the same moment.

    A user in steady state is at a random point of its current think time, and a random point in
    time falls more often in a long think time than a short one: the pause is a uniform share of
    a think time drawn with density proportional to its length (think times uniform on lo..hi),
    the renewal process's equilibrium residual. Its mean is E[T^2] / (2 E[T]).
    """
    lo, hi = min(lo, hi), max(lo, hi)
    length = (lo * lo + rng.random() * (hi * hi - lo * lo)) ** 0.5  # length-biased draw
    return rng.random() * length
