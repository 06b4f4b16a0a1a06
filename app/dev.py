"""Run the whole app locally for development: `python -m app.dev [--port 8000]`.

Starts PostgreSQL, Redis and SeaweedFS (S3) in a temporary folder with app.devstack,
migrates, seeds demo data (accounts `alice`, `bob`, `carol`… password `freehold-demo`;
`demo_admin` is an admin and juror), runs the four workers and the web server, and stops
everything (by pid) on Ctrl-C. `--seed-only` seeds and exits (used by the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from app.context import close_ctx, open_ctx
from app.db import migrate
from app.devstack import free_port, local_stack, wait_port
from app.settings import Settings

DEMO_PASSWORD = "freehold-demo"
DEMO_USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
DEMO_POSTS = [
    "Good morning from our own servers! #freehold #selfhosting",
    "Nobody can switch this network off with a day's notice. #freehold",
    "Reading about WireGuard meshes today. #networking",
    "Coffee, then a failover drill. #ops",
    "Who else is watching the load test numbers? #capacity",
    "Posting photos of the lab rack later. #homelab",
]


async def seed(settings: Settings, n_posts: int = 30) -> dict[str, int]:
    """Demo accounts following each other, posts, replies, an echo, upvotes; idempotent."""
    from app.services import accounts, posts, social

    ctx = await open_ctx(settings.replace(bootstrap_admins="demo_admin", rl_signup_per_ip=0,
                                          signup_pow_max_bits=0,
                                          rl_write_per_account=0, rl_write_per_ip=0))
    try:
        if await ctx.db.fetchval("SELECT count(*) FROM accounts WHERE username = 'demo_admin'"):
            return {}
        rng = random.Random(7)
        ids: dict[str, int] = {}
        for name in ["demo_admin", *DEMO_USERS]:
            row = await accounts.signup(ctx, name, f"{name}@example.org", DEMO_PASSWORD,
                                        display_name=name.title())
            ids[name] = row["id"]
        await ctx.db.execute("UPDATE accounts SET is_juror = true, is_verified = true"
                             " WHERE username = 'demo_admin'")
        for a in DEMO_USERS:
            for b in rng.sample(DEMO_USERS, 4):
                if a != b:
                    await social.follow(ctx, ids[a], ids[b])
        made: list[int] = []
        for i in range(n_posts):
            who = rng.choice(DEMO_USERS)
            if made and i % 5 == 4:
                doc = await posts.create_post(ctx, ids[who], f"@{DEMO_USERS[0]} agreed!",
                                              reply_to=rng.choice(made))
            else:
                doc = await posts.create_post(ctx, ids[who], rng.choice(DEMO_POSTS))
            made.append(int(doc["id"]))
        await posts.create_post(ctx, ids["bob"], "", echo_of=made[0])
        for pid in rng.sample(made, min(10, len(made))):
            await posts.upvote(ctx, ids["carol"], pid)
        return ids
    finally:
        await close_ctx(ctx)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.dev")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--seed-only", action="store_true", help="seed demo data, then stop")
    args = ap.parse_args(argv)
    with local_stack(s3=True) as stack:
        pg, rd, s3 = stack["postgres"], stack["redis"], stack["s3"]
        settings = Settings(database_url=pg.dsn, redis_url=rd.url,  # type: ignore[attr-defined]
                            s3_endpoint=s3.endpoint, s3_access_key=s3.access_key,  # type: ignore
                            s3_secret_key=s3.secret_key,  # type: ignore[attr-defined]
                            bootstrap_admins="demo_admin", development=True)
        migrate(settings.database_url)
        from app.services.media import MediaStore

        MediaStore.from_settings(settings).ensure_bucket_sync()
        ids = asyncio.run(seed(settings))
        print(f"demo data: {len(ids)} accounts, password {DEMO_PASSWORD!r}", flush=True)
        if args.seed_only:
            return 0
        env = {**os.environ, **settings.to_env()}
        root = Path(str(stack["root"]))
        procs = [subprocess.Popen([sys.executable, "-m", "app.worker", kind], env=env,
                                  stdout=(root / f"{kind}.log").open("ab"),
                                  stderr=subprocess.STDOUT)
                 for kind in ("fanout", "notify", "moderation", "trends")]
        port = args.port or free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "app.serve", "--workers", "1", "--port", str(port),
             "--no-migrate"], env=env))
        try:
            wait_port(port, timeout=30)
            print(f"Freehold runs at http://127.0.0.1:{port}/ (API docs: /api/v1/docs);"
                  f" logs in {root}; Ctrl-C stops it", flush=True)
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
