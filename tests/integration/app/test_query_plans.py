"""How PostgreSQL plans the app's queries: generic plans on the app's connections (app.db: a
custom plan made at every execution cost more than running it on the partitioned posts table),
a plan made for the value where the value decides the index (search's LIKE 'prefix%')."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from freehold.app.db import custom_planned

PREPARE = "PREPARE {} (text) AS SELECT id FROM accounts WHERE username LIKE $1"


async def plan_of(con: Any, name: str) -> str:
    """The plan PostgreSQL uses for a prepared statement (as asyncpg's are) run with 'ab%'."""
    await con.execute(PREPARE.format(name))
    try:
        return "\n".join(r[0] for r in await con.fetch(f"EXPLAIN EXECUTE {name}('ab%')"))
    finally:
        await con.execute(f"DEALLOCATE {name}")


def test_generic_plans_by_default_custom_for_prefix_search(client: TestClient) -> None:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]

    async def plans() -> tuple[str, str, str, str]:
        async with ctx.ro.acquire() as con:
            mode = await con.fetchval("SHOW plan_cache_mode")
            generic = await plan_of(con, "plan_generic")

        async def planned(con: Any) -> tuple[str, str]:
            return await con.fetchval("SHOW plan_cache_mode"), await plan_of(con, "plan_custom")

        inside, custom = await custom_planned(ctx.ro, planned)
        return mode, generic, inside, custom

    mode, generic, inside, custom = client.portal.call(plans)  # type: ignore[union-attr]
    assert mode == "force_generic_plan"  # every connection of the app's pools
    assert "$1" in generic and "'ab%'" not in generic  # planned without the value
    assert inside == "force_custom_plan" and "'ab%'" in custom  # planned for the value

    async def after() -> str:
        async with ctx.ro.acquire() as con:  # SET LOCAL ended with the transaction
            return str(await con.fetchval("SHOW plan_cache_mode"))

    assert client.portal.call(after) == "force_generic_plan"  # type: ignore[union-attr]
