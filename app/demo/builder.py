"""Build the demo network (app.demo.content) through the app's own services, idempotently, and
only with accounts it created itself.

Each account, each account's follows, each post and report it makes is recorded in the audit
log (action `demo.create`, the item's key in `detail`): that ledger says what is the builder's
own. A second run makes only what the ledger lacks, so it adds nothing to a complete demo (nor
re-follows what a demo account unfollowed since). A username of the script that someone else
holds is left alone with everything of the script that involves it — follows, posts by it or
mentioning it, their replies and echoes — and listed in the summary's `skipped`. The one
exception: a demo account made before the ledger existed (by app/dev.py's old seed: the same
username, the e-mail <username>@example.org and the public demo password, so anyone could log in
as it) is adopted into the ledger, so that labs seeded before get the whole demo on their next
`freehold up`. One builder at a time (a PostgreSQL advisory lock).
"""

from __future__ import annotations

import asyncio
from typing import Any

from freehold.app.context import Ctx, close_ctx, open_ctx
from freehold.app.demo import content
from freehold.app.demo.images import SCENES, avatar, landscape
from freehold.app.services import accounts, audit, moderation, posts, social
from freehold.app.services.passwords import password_matches
from freehold.app.services.text import mentions
from freehold.app.settings import Settings

ACTION = "demo.create"
LOCK = 0x46_72_65_65_44_65_6D_6F  # pg_advisory_lock key: "FreeDemo"


class Ledger:
    """What the builder made before: item key -> id, from the audit log."""

    def __init__(self, ctx: Ctx, made: dict[str, int]) -> None:
        self.ctx = ctx
        self.made = made
        self.created: dict[str, int] = {"accounts": 0, "adopted": 0, "follows": 0, "posts": 0,
                                        "images": 0, "reports": 0}

    @classmethod
    async def load(cls, ctx: Ctx) -> Ledger:
        rows = await ctx.db.fetch("SELECT detail->>'key' AS key, target_id FROM audit_log"
                                  " WHERE action = $1", ACTION)
        return cls(ctx, {r["key"]: r["target_id"] for r in rows})

    async def record(self, kind: str, key: str, target_id: int, made: str, n: int = 1) -> None:
        """Note item `key` (audit target `kind`/`target_id`) as made; `n` more `made`."""
        async with self.ctx.db.acquire() as conn:
            await audit.log(conn, None, ACTION, kind, target_id, {"key": key})
        self.made[key] = target_id
        self.created[made] += n


async def _people(ctx: Ctx, ledger: Ledger, skipped: list[str]) -> dict[str, int]:
    """The script's accounts that are the builder's own (made now or before), by username."""
    own: dict[str, int] = {}
    for p in content.PEOPLE:
        key = f"account:{p.username}"
        if key in ledger.made:
            aid = ledger.made[key]
            if await ctx.db.fetchval("SELECT true FROM accounts WHERE id = $1", aid):
                own[p.username] = aid
            continue  # made before and deleted since: not made again
        email = f"{p.username}@example.org"
        held = await ctx.db.fetchrow("SELECT id, email, password_hash FROM accounts"
                                     " WHERE username = $1", p.username)
        if held is None:
            aid = (await accounts.signup(ctx, p.username, email, content.PASSWORD,
                                         display_name=p.display_name))["id"]
            await ledger.record("account", key, aid, "accounts")
        elif held["email"] == email and await password_matches(held["password_hash"],
                                                               content.PASSWORD):
            aid = held["id"]  # the old seed's: adopted
            await ledger.record("account", key, aid, "adopted")
            await accounts.update_profile(ctx, aid, display_name=p.display_name)
        else:
            skipped.append(p.username)  # someone else's: never touched
            continue
        await accounts.update_profile(ctx, aid, bio=p.bio)
        if ctx.media is not None:
            await accounts.set_avatar(ctx, aid, avatar(p.color))
            ledger.created["images"] += 1
        if p.username == content.ADMIN:
            await ctx.db.execute("UPDATE accounts SET is_juror = true, is_verified = true"
                                 " WHERE id = $1", aid)
        own[p.username] = aid
    return own


async def _posts(ctx: Ctx, ledger: Ledger, own: dict[str, int]) -> dict[str, int]:
    """The script's posts by the builder's own accounts (made now or before), by key."""
    made: dict[str, int] = {}
    for p in content.POSTS:
        key = f"post:{p.key}"
        if key in ledger.made:
            made[p.key] = ledger.made[key]
            continue
        parent = p.reply_to or p.echo_of
        if p.by not in own or (parent is not None and parent not in made) \
                or any(name not in own for name in mentions(p.body)):
            continue
        media = []
        if p.image is not None and ctx.media is not None:
            media = [(await posts.upload_media(ctx, own[p.by], landscape(SCENES[p.image])))["id"]]
            ledger.created["images"] += 1
        doc = await posts.create_post(ctx, own[p.by], p.body,
                                      reply_to=made[p.reply_to] if p.reply_to else None,
                                      echo_of=made[p.echo_of] if p.echo_of else None,
                                      media_ids=media)
        made[p.key] = int(doc["id"])
        await ledger.record("post", key, made[p.key], "posts")
        for who in p.upvoted_by:
            if who in own:
                await posts.upvote(ctx, own[who], made[p.key])
    return made


async def _follows(ctx: Ctx, ledger: Ledger, own: dict[str, int]) -> None:
    """Each own account's follows of own accounts, once (then they are the account's own)."""
    for follower in content.USERNAMES:
        key = f"follows:{follower}"
        if follower not in own or key in ledger.made:
            continue
        n = 0
        for a, b in content.FOLLOWS:
            if a == follower and b in own:
                n += await social.follow(ctx, own[a], own[b])
        await ledger.record("account", key, own[follower], "follows", n)


async def build(ctx: Ctx) -> dict[str, Any]:
    """Make what the demo lacks; returns what was made now and the usernames left alone."""
    async with ctx.db.acquire() as lock:
        await lock.execute("SELECT pg_advisory_lock($1)", LOCK)
        try:
            ledger = await Ledger.load(ctx)
            skipped: list[str] = []
            own = await _people(ctx, ledger, skipped)
            await _follows(ctx, ledger, own)
            made = await _posts(ctx, ledger, own)
            for key, reporter, post, reason, note in content.REPORTS:
                if f"report:{key}" in ledger.made or reporter not in own or post not in made:
                    continue
                case = await moderation.report(ctx, own[reporter], reason, post_id=made[post],
                                               note=note)
                await ledger.record("case", f"report:{key}", int(case["id"]), "reports")
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1)", LOCK)
    return {**ledger.created, "skipped": skipped}


def demo_settings(settings: Settings) -> Settings:
    """The app's settings for building the demo: the demo admin becomes an admin on sign-up,
    and the builder's own writes are not rate-limited (0: no limit) nor asked for a sign-up
    proof of work (it signs its accounts up from one process)."""
    admins = ",".join(sorted(settings.admin_usernames | {content.ADMIN}))
    return settings.replace(bootstrap_admins=admins, rl_signup_per_ip=0,
                            signup_pow_max_bits=0, rl_write_per_account=0, rl_write_per_ip=0)


async def build_demo(settings: Settings) -> dict[str, Any]:
    """`build` with its own connections (app.dev, `python -m freehold.app.demo` on a lab app
    server)."""
    ctx = await open_ctx(demo_settings(settings))
    try:
        return await build(ctx)
    finally:
        await close_ctx(ctx)


def build_demo_sync(settings: Settings) -> dict[str, Any]:
    return asyncio.run(build_demo(settings))
