"""The home feed's page merge (feed._merge_page) against a plain model: the `limit` newest
distinct ids below the cursor of the feed's own entries and the big accounts' lists."""

from __future__ import annotations

import asyncio
import random

import pytest

from freehold.app.services.feed import _merge_page


def model(own: list[int], heads: dict[int, list[int]], max_id: int | None,
          limit: int) -> list[int]:
    every = set(own).union(*heads.values())
    return sorted((i for i in every if max_id is None or i < max_id), reverse=True)[:limit]


@pytest.mark.parametrize("seed", range(300))
def test_merge_matches_the_model(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.choice([1, 5, 40])
    pool = rng.sample(range(1, 5000), 600)
    own_n = rng.choice([0, 3, limit - 1, limit, limit + 10])
    own = rng.sample(pool, min(own_n, len(pool)))
    own += rng.sample(own, min(len(own), rng.choice([0, 0, 2])))  # an id pushed twice
    rng.shuffle(own)
    heads = {a: sorted(rng.sample(pool, rng.choice([0, 1, 10, 64])), reverse=True)
             for a in range(rng.choice([0, 1, 5, 30]))}
    max_id = rng.choice([None, None, rng.choice(pool)])
    if max_id is not None:
        own = [i for i in own if i < max_id]  # home_ids passes only ids below the cursor
    held = {a: (ids, True) for a, ids in heads.items()}  # whole lists: nothing read deeper
    got = asyncio.run(_merge_page(None, list(heads), held, max_id, limit, own))  # type: ignore
    assert got == model(own, heads, max_id, limit)


def test_an_id_pushed_twice_does_not_raise_the_floor() -> None:
    own = [100, 100, 90, 80]  # three posts, one of them twice in the list
    got = asyncio.run(_merge_page(None, [1], {1: ([85], True)}, None, 3, own))  # type: ignore
    assert got == [100, 90, 85]
