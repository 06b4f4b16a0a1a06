"""What each action of the traffic mix costs: app, PostgreSQL and Redis CPU per request, latency.

    nice -n 10 .venv/bin/python benchmarks/mix_costs.py [--accounts 100000] [--seconds 5]
        [--rounds 2] [--concurrency 6] [--compare LABEL=PYTHONPATH ...] [--actions a,b]

For every action of the profile's mix (loadgen/profiles/default.yaml, through loadgen/traffic.py)
the requests the Locust users make for it (loadgen/users.py: the same paths, bodies, expected
statuses and Zipf-skewed picks of accounts, posts and tags from the roster) are sent by a bounded
number of concurrent httpx connections to the app served by uvicorn (one process, one worker) for
`--seconds`, then the whole mix is sent the same way (actions drawn with the profile's weights).
Over each window the CPU of the app process, of PostgreSQL (postmaster and every backend, exited
ones included) and of Redis is read with psutil (benchmarks/cpumeter.py) and divided by the
requests answered: requests per app CPU-second (what one fully available app core serves) and
CPU ms per request of PostgreSQL and Redis, with the client-side p50/p99. The machine is shared
(the generator runs on it too, and others' work), so wall-clock rates are recorded but the
per-CPU-second figures are the result.

Dataset: app.seed (COPY: accounts, a power-law follow graph, posts, upvotes, counters) with
`--accounts`, then the load test's roster (deploy.loadtest.seed.build_roster: members with a
password and sessions, popular accounts, posts and tags ranked), notifications for the members
(follows and upvotes of their posts, the rows the notify worker would have written: the seeder
makes none) and the trends the trends worker computes. The app's workers (fan-out, notify,
moderation, trends) do not run: their CPU is planned from their own measurements
(benchmarks/app_hotpaths.py's fan-out), so the writes' table rows are the web requests alone.
`--members` members act; their home feeds are built in Redis by a warm-up before measuring,
and again (unmeasured) before each window that reads them (home_feed, mix): the follow window
invalidates most members' feeds, whose rebuilds the next window would otherwise pay for. The
seeded tables are vacuumed first (their first vacuum is not left to autovacuum inside a window)
and a CHECKPOINT ends the setup (its dirty pages are not written during the first windows),
and each tree stores the members' password hashed by its own code (log-ins as they cost once
every account has logged in since that code was deployed).
The app runs with its default settings (rate limits on: every simulated user has its own
client address, as in the load tests), one connection pool of 4-16.

Side by side: `--compare LABEL=DIR` (repeatable) adds another code tree (DIR is a PYTHONPATH entry
holding the `freehold` package, e.g. a worktree's namespace folder). The dataset is seeded once
with the migrations every tree has; each tree then gets its own copy of the database
(CREATE DATABASE ... TEMPLATE) migrated by its own code, its own Redis database and its own app
process, and the trees take turns within every round, so they see the same machine load.

PostgreSQL and Redis run with production durability (fsync, synchronous_commit and
full_page_writes on; Redis AOF appendfsync everysec, as roles/postgres and roles/redis deploy
them), recorded in the results file's header (benchmarks/resultsfile.py). Prints a table and
writes benchmarks/results/mix_costs.json (with --compare: mix_costs_compare.json).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]

from cpumeter import CpuMeter  # noqa: E402
from resultsfile import write_results  # noqa: E402

import freehold  # noqa: E402
from freehold.app.devstack import (  # noqa: E402
    DURABILITY,
    durability_of,
    free_port,
    local_stack,
    wait_port,
)
from freehold.app.ids import new_id  # noqa: E402
from freehold.app.settings import Settings  # noqa: E402
from freehold.deploy.provenance import commit_state  # noqa: E402
from freehold.loadgen.payloads import REPORT_REASONS, TAGS, WORDS, tiny_png  # noqa: E402
from freehold.loadgen.picks import Zipf, weighted_choice  # noqa: E402
from freehold.loadgen.roster import Roster  # noqa: E402
from freehold.loadgen.traffic import ACTION_REQUESTS, load_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "mix_costs.json"
API = "/api/v1"
NOTIFICATIONS_PER_MEMBER = 40
FEED_READERS = ("home_feed", "mix")  # the windows that read home feeds
MAX_PHASE_ACTIONS = 200_000  # a bound on one window's actions, whatever the clock says


# ---- code trees ---------------------------------------------------------------------------
@dataclass
class Tree:
    label: str
    pypath: Path  # the PYTHONPATH entry holding `freehold`
    index: int
    db: str = ""
    settings: Settings | None = None
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    state: dict[str, object] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return (self.pypath / "freehold" / "app").resolve().parent

    def migrations(self) -> dict[str, Path]:
        d = self.pypath / "freehold" / "app" / "migrations"
        return {p.name: p for p in sorted(d.glob("*.sql"))}

    def env(self) -> dict[str, str]:
        assert self.settings is not None
        return {**os.environ, **self.settings.to_env(), "PYTHONPATH": str(self.pypath)}

    def python(self, code: str, *args: str, env: dict[str, str] | None = None) -> None:
        subprocess.run([sys.executable, "-c", code, *args], env={**self.env(), **(env or {})},
                       cwd=self.root, check=True, timeout=1800)


PACKAGES = ("app", "deploy", "roles", "loadgen")  # the repository's folders `freehold.*` maps


def own_pypath() -> Path:
    """A PYTHONPATH entry holding `freehold` as this process imports it. From a PYTHONPATH
    folder that is that folder; from the editable install (`make setup`), whose import hook
    maps freehold.app, .deploy... onto this checkout's folders with no `freehold` folder
    anywhere, it is a temporary folder of links to them (removed at exit)."""
    first = Path(next(iter(freehold.__path__)))
    if (first / "app" / "main.py").exists():
        return first.parent
    folder = Path(tempfile.mkdtemp(prefix="mix-pypath-"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "freehold").mkdir()
    for name in PACKAGES:
        (folder / "freehold" / name).symlink_to(ROOT / name)
    return folder


def parse_trees(compare: list[str]) -> list[Tree]:
    trees = [Tree("current", own_pypath(), 0)]
    for i, spec in enumerate(compare, start=1):
        label, sep, path = spec.partition("=")
        p = Path(path)
        if not sep or not label or not (p / "freehold" / "app" / "main.py").exists():
            raise SystemExit(f"--compare {spec!r}: give LABEL=DIR where DIR/freehold/app/main.py "
                             "exists (a PYTHONPATH entry with the code to compare)")
        trees.append(Tree(label, p, i))
    return trees


MEMBERS_PASSWORD = """
import os, sys, psycopg
from freehold.app.services.passwords import hasher
with psycopg.connect(sys.argv[1]) as conn:
    ids = [int(i) for i in sys.argv[2].split(",")]
    conn.execute("UPDATE accounts SET password_hash = %s WHERE id = ANY(%s)",
                 (hasher.hash(os.environ["MIX_PASSWORD"]), ids))
"""


# ---- dataset ------------------------------------------------------------------------------
def migrate_common(dsn: str, trees: list[Tree]) -> list[str]:
    """The migrations every tree has, applied to the template database (yoyo, by file id)."""
    from yoyo import get_backend, read_migrations

    from freehold.app.db import yoyo_dsn

    common = set.intersection(*(set(t.migrations()) for t in trees))
    with tempfile.TemporaryDirectory(prefix="mix-migrations-") as d:
        for name in sorted(common):
            shutil.copy(trees[0].migrations()[name], Path(d) / name)
        backend = get_backend(yoyo_dsn(dsn))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(read_migrations(d)))
    return sorted(common)


async def seed_notifications(dsn: str, member_ids: list[int], per: int) -> int:
    """Notifications the notify worker would have written for the members: their newest
    followers and the upvotes of their posts (the seeder writes none)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT m.id AS account_id, e.kind, e.actor, e.post FROM unnest($1::bigint[]) m(id)"
            " CROSS JOIN LATERAL ("
            "  (SELECT 'follow' AS kind, f.follower_id AS actor, NULL::bigint AS post"
            "   FROM follows f WHERE f.followee_id = m.id LIMIT $2)"
            "  UNION ALL"
            "  (SELECT 'upvote', u.account_id, u.post_id FROM posts p"
            "   JOIN upvotes u ON u.post_id = p.id WHERE p.author_id = m.id LIMIT $2)"
            ") e LIMIT $3", member_ids, per, per * len(member_ids) * 2)
        now_ms = int(time.time() * 1000)
        rng = random.Random(7)
        recs = [(new_id(now_ms - rng.randrange(7 * 86_400_000)), r["account_id"], r["kind"],
                 r["actor"], r["post"], rng.random() < 0.7)
                for r in rows if r["actor"] != r["account_id"]]
        await conn.copy_records_to_table(
            "notifications", records=recs,
            columns=["id", "account_id", "kind", "actor_id", "post_id", "read"])
        await conn.execute("ANALYZE notifications")
        return len(recs)
    finally:
        await conn.close()


def seed_template(dsn: str, args: argparse.Namespace, roster_path: Path) -> dict[str, Any]:
    from freehold.app.seed import seed as app_seed
    from freehold.deploy.loadtest.seed import build_roster

    t0 = time.perf_counter()
    rep = app_seed(dsn, args.accounts, posts_per_account=args.posts_per_account, seed=1)
    roster = build_roster(dsn, "mix_costs", roster_path, members=args.members, rng_seed=1)
    notes = asyncio.run(seed_notifications(dsn, [int(m[0]) for m in roster.members],
                                           NOTIFICATIONS_PER_MEMBER))
    return {"app_seed": {k: v for k, v in rep.items() if not isinstance(v, dict | list)},
            "members": len(roster.members), "notifications": notes,
            "seed_seconds": round(time.perf_counter() - t0, 1)}


async def compute_trends(settings: Settings) -> None:
    from freehold.app.context import close_ctx, open_ctx
    from freehold.app.services import trends

    ctx = await open_ctx(settings)
    try:
        await trends.compute(ctx)
    finally:
        await close_ctx(ctx)


# ---- the actions (the requests of loadgen/users.py) ----------------------------------------
@dataclass
class Req:
    name: str
    status: int
    ms: float
    ok: bool


class Actor:
    """Picks like loadgen/users.Member: accounts by followers, posts seen or hot, tags by use."""

    def __init__(self, roster: Roster, zipf_s: float, rng: random.Random) -> None:
        self.roster = roster
        self.rng = rng
        self.popular = Zipf(roster.popular, zipf_s)
        self.hot = Zipf(roster.posts, zipf_s) if roster.posts else None
        self.tags = Zipf(roster.tags or TAGS, zipf_s)
        self.seen: list[str] = []  # post ids read in feeds (shared by this tree's actors)

    def post(self) -> str | None:
        if self.seen and self.rng.random() < 0.7:
            return self.rng.choice(self.seen[-5000:])
        return self.hot.pick(self.rng) if self.hot else None

    def account(self, me: str) -> tuple[str, str]:
        for _ in range(3):
            aid, name = self.popular.pick(self.rng)
            if aid != me:
                return aid, name
        return self.popular.items[-1]

    def text(self, words: int = 12) -> str:
        body = " ".join(self.rng.choice(WORDS) for _ in range(words))
        if self.rng.random() < 0.4:
            body += f" #{self.tags.pick(self.rng)}"
        return body


async def call(client: httpx.AsyncClient, out: list[Req], member: tuple[str, str, str], ip: str,
               method: str, path: str, name: str, ok: tuple[int, ...] = (200,),
               **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {member[2]}", "X-Forwarded-For": ip,
               **kw.pop("headers", {})}
    t0 = time.perf_counter()
    try:
        r = await client.request(method, API + path, headers=headers, **kw)
    except httpx.HTTPError:
        out.append(Req(name, 0, (time.perf_counter() - t0) * 1000, False))
        return None
    out.append(Req(name, r.status_code, (time.perf_counter() - t0) * 1000,
                   r.status_code in ok))
    if r.status_code in ok and r.content:
        try:
            return r.json()
        except ValueError:
            return None
    return None


def remember(actor: Actor, doc: Any) -> None:
    if isinstance(doc, dict):
        for p in doc.get("items", []):
            if isinstance(p, dict) and "id" in p:
                actor.seen.append(str(p["id"]))
        if len(actor.seen) > 20_000:
            del actor.seen[:10_000]


async def act(kind: str, client: httpx.AsyncClient, actor: Actor, member: tuple[str, str, str],
              ip: str, out: list[Req]) -> None:
    """One action of `kind` as member `member` (the requests loadgen/users.py makes)."""
    rng, me = actor.rng, member[0]

    async def c(*a: Any, **kw: Any) -> Any:
        return await call(client, out, member, ip, *a, **kw)

    if kind == "home_feed":
        remember(actor, await c("GET", "/timelines/home?limit=20", "/timelines/home"))
    elif kind == "thread":
        pid = actor.post()
        await c("GET", f"/posts/{pid}/thread", "/posts/{id}/thread", ok=(200, 404))
    elif kind == "profile":
        aid, _ = actor.account(me)
        await c("GET", f"/accounts/{aid}", "/accounts/{id}", ok=(200, 404))
        remember(actor, await c("GET", f"/accounts/{aid}/posts?limit=20", "/accounts/{id}/posts",
                                ok=(200, 403, 404)))
    elif kind == "discover":
        which = rng.choice(("posts", "tags", "latest"))
        q = "?limit=20" if which == "latest" else ""
        remember(actor, await c("GET", f"/discover/{which}{q}", f"/discover/{which}"))
    elif kind == "search":
        if rng.random() < 0.6:
            _, name = actor.account(me)
            await c("GET", f"/search/accounts?q={name[:3]}", "/search/accounts")
        else:
            await c("GET", f"/search/tags?q={actor.tags.pick(rng)[:3]}", "/search/tags")
    elif kind == "notifications":
        await c("GET", "/notifications?limit=20", "/notifications")
    elif kind == "post":
        await c("POST", "/posts", "/posts", ok=(201,), json={"body": actor.text()})
    elif kind == "reply":
        await c("POST", "/posts", "/posts (reply)", ok=(201, 403, 404),
                json={"body": actor.text(8), "reply_to_id": actor.post()})
    elif kind == "echo":
        await c("POST", f"/posts/{actor.post()}/echo", "/posts/{id}/echo",
                ok=(201, 403, 404, 409), json={"body": ""})
    elif kind == "upvote":
        await c("POST", f"/posts/{actor.post()}/upvote", "/posts/{id}/upvote",
                ok=(200, 403, 404))
    elif kind == "follow":
        aid, _ = actor.account(me)
        await c("POST", f"/accounts/{aid}/follow", "/accounts/{id}/follow", ok=(200, 403, 404))
    elif kind == "report":
        await c("POST", "/reports", "/reports", ok=(201, 404, 409),
                json={"reason": weighted_choice(REPORT_REASONS, rng), "post_id": actor.post(),
                      "note": "load test"})
    elif kind == "login":
        await c("POST", "/auth/login", "/auth/login", headers={"Authorization": ""},
                json={"login": member[1], "password": actor.roster.password})
    elif kind == "image_upload":
        doc = await c("POST", "/media", "/media", ok=(201,),
                      files={"file": ("photo.png", tiny_png(rng), "image/png")})
        if doc and doc.get("id"):
            await c("POST", "/posts", "/posts (image)", ok=(201,),
                    json={"body": actor.text(6), "media_ids": [doc["id"]]})
    else:
        raise ValueError(f"unknown action {kind}")


def random_ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(64, 128)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


async def drive(url: str, actor: Actor, kinds: dict[str, float], seconds: float,
                concurrency: int, meter: CpuMeter | None) -> tuple[list[Req], int, dict]:
    """`concurrency` connections acting for `seconds` (and at most MAX_PHASE_ACTIONS actions);
    returns the requests, the actions and the CPU the meter saw."""
    out: list[Req] = []
    members = actor.roster.members
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        deadline = time.perf_counter() + seconds

        async def loop(i: int) -> None:
            nonlocal done
            rng = random.Random(secrets.randbits(32))
            while time.perf_counter() < deadline and done < MAX_PHASE_ACTIONS:
                kind = weighted_choice(kinds, rng) if len(kinds) > 1 else next(iter(kinds))
                m = rng.choice(members)
                done += 1
                await act(kind, client, actor, m, random_ip(rng), out)

        if meter:
            meter.start()
        await asyncio.gather(*(loop(i) for i in range(concurrency)))
        used = meter.stop() if meter else {}
    return out, done, used


def summarise(reqs: list[Req], actions: int, used: dict[str, float]) -> dict[str, Any]:
    n = len(reqs)
    ms = sorted(r.ms for r in reqs)
    res: dict[str, Any] = {
        "requests": n, "actions": actions, "wall_s": round(used.get("wall_s", 0.0), 2),
        "rps_wall": round(n / used["wall_s"]) if used.get("wall_s") else None,
        "errors": sum(not r.ok for r in reqs),
        "statuses": dict(sorted({str(s): sum(r.status == s for r in reqs)
                                 for s in {r.status for r in reqs}}.items())),
        "p50_ms": round(ms[n // 2], 2) if n else None,
        "p99_ms": round(ms[min(n - 1, int(n * 0.99))], 2) if n else None,
        "cpu_s": {k: round(used.get(k, 0.0), 3) for k in ("app", "postgres", "redis")}}
    if n and used.get("app"):
        res["rps_per_app_core"] = round(n / used["app"])
        res["cpu_ms_per_request"] = {k: round(used.get(k, 0.0) / n * 1000, 3)
                                     for k in ("app", "postgres", "redis")}
    return res


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the rounds (CPU and requests summed), the median round's latencies."""
    n = sum(r["requests"] for r in rounds)
    cpu = {k: sum(r["cpu_s"][k] for r in rounds) for k in ("app", "postgres", "redis")}
    out: dict[str, Any] = {
        "requests": n, "actions": sum(r["actions"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in rounds
                                          if r["p50_ms"] is not None), 2),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in rounds
                                          if r["p99_ms"] is not None), 2),
        "rps_per_app_core": round(n / cpu["app"]) if cpu["app"] else None,
        "cpu_ms_per_request": {k: round(v / n * 1000, 3) if n else None for k, v in cpu.items()},
        "rounds": rounds}
    statuses: dict[str, int] = {}
    for r in rounds:
        for s, c in r["statuses"].items():
            statuses[s] = statuses.get(s, 0) + c
    out["statuses"] = statuses
    return out


def from_table(table: dict[str, dict[str, Any]], weights: dict[str, float]) -> dict[str, Any]:
    """The mix as the per-action rows add up: requests weighted by the actions' shares; and
    each action's share of the mix's app and PostgreSQL CPU (what to make faster first)."""
    reqs = {k: weights[k] * table[k]["requests"] / max(1, table[k]["actions"]) for k in table}
    total = sum(reqs.values())
    cost = {part: {k: reqs[k] * table[k]["cpu_ms_per_request"][part] for k in table}
            for part in ("app", "postgres", "redis")}
    per = {part: sum(c.values()) / total for part, c in cost.items()}
    return {"rps_per_app_core": round(1000 / per["app"]) if per["app"] else None,
            "cpu_ms_per_request": {k: round(v, 3) for k, v in per.items()},
            "share_of_app_cpu": {k: round(v / sum(cost["app"].values()), 3)
                                 for k, v in cost["app"].items()},
            "share_of_postgres_cpu": {k: round(v / sum(cost["postgres"].values()), 3)
                                      for k, v in cost["postgres"].items()},
            "share_of_requests": {k: round(v / total, 4) for k, v in reqs.items()}}


# ---- serving ------------------------------------------------------------------------------
def start_app(tree: Tree, logdir: Path) -> None:
    tree.port = free_port()
    log = (logdir / f"app-{tree.label}.log").open("ab")
    tree.proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "freehold.app.main:create_app", "--factory",
         "--port", str(tree.port), "--workers", "1", "--log-level", "warning",
         "--no-access-log"], env=tree.env(), cwd=tree.root, stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_port(tree.port, timeout=600)


def stop_app(tree: Tree) -> None:
    if tree.proc is not None:
        tree.proc.terminate()
        try:
            tree.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tree.proc.kill()
            tree.proc.wait(timeout=10)
        tree.proc = None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--posts-per-account", type=float, default=10.0)
    ap.add_argument("--members", type=int, default=2000,
                    help="accounts that act (their feeds are warmed in Redis first)")
    ap.add_argument("--seconds", type=float, default=5.0, help="one window (per action, tree)")
    ap.add_argument("--mix-seconds", type=float, default=10.0, help="one window of the mix")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=6)
    ap.add_argument("--actions", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=DIR")
    ap.add_argument("--durability", choices=DURABILITY, default="production")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--profile-dir", type=Path, default=None,
                    help="record the first tree's app with py-spy during each window of the "
                         "first round (collapsed stacks, one file per action)")
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy",
                    help="the py-spy executable (for --profile-dir)")
    ap.add_argument("--report", type=Path, default=None, metavar="RESULTS",
                    help="only print the tables of a results file written before")
    args = ap.parse_args()
    from rich.console import Console

    console = Console()
    if args.report:
        import json

        doc = json.loads(args.report.read_text())
        print_table(console, doc, list(doc["weights"]))
        print(comparison_markdown(doc, list(doc["weights"])))
        return 0
    trees = parse_trees(args.compare)
    model = load_model()
    weights = model.weights()
    kinds = [k for k in weights if not args.actions or k in args.actions.split(",")]
    if not kinds:
        raise SystemExit(f"--actions: none of {args.actions!r} is in the mix — use some of "
                         f"{', '.join(weights)}")
    out_path = args.out or (RESULTS.with_name("mix_costs_compare.json") if args.compare
                            else RESULTS)
    with local_stack(durability=args.durability, s3=True) as stack:
        pg, rd, s3 = stack["postgres"], stack["redis"], stack["s3"]
        base = Path(str(stack["root"]))
        durability = durability_of(pg, rd)  # type: ignore[arg-type]
        common = migrate_common(pg.dsn, trees)  # type: ignore[attr-defined]
        with console.status(f"seeding {args.accounts} accounts…"):
            seeded = seed_template(pg.dsn, args, base / "roster.json")  # type: ignore[attr-defined]
        console.print(f"seeded: {seeded}")
        # the seeded tables' first (anti-wraparound, insert-triggered) vacuum now, not by
        # autovacuum inside a measured window, where its CPU would count as PostgreSQL's
        with console.status("vacuuming the seeded tables…"):
            pg.psql("VACUUM (FREEZE, ANALYZE)")  # type: ignore[attr-defined]
        roster = Roster.load(base / "roster.json")
        for t in trees:
            t.db = f"mix_{t.index}"
            pg.psql(f"CREATE DATABASE {t.db} TEMPLATE {pg.database}", "postgres")  # type: ignore
            t.settings = Settings(
                database_url=pg.dsn_for(t.db),  # type: ignore[attr-defined]
                redis_url=rd.url.rsplit("/", 1)[0] + f"/{t.index + 1}",  # type: ignore
                s3_endpoint=s3.endpoint, s3_access_key=s3.access_key,  # type: ignore
                s3_secret_key=s3.secret_key, s3_bucket=f"mix-{t.index}",  # type: ignore
                db_pool_min=4, db_pool_max=16,
                secret_key=secrets.token_urlsafe(32))
            t.python("import sys; from freehold.app.db import migrate; print(migrate(sys.argv[1]))",
                     t.settings.database_url)
            # the members' password hashed as this tree's code hashes it: its log-ins cost
            # what they cost once every account has logged in with it (no rehash in the window)
            t.python(MEMBERS_PASSWORD, t.settings.database_url,
                     ",".join(str(m[0]) for m in roster.members),
                     env={"MIX_PASSWORD": roster.password})
            pg.psql("ANALYZE", t.db)  # type: ignore[attr-defined]
            asyncio.run(compute_trends(t.settings))
            t.state = {"commit": commit_state(t.root), "pypath": str(t.pypath),
                       "migrations": sorted(t.migrations())}
        # the setup's dirty pages (seed, vacuum, database copies: WAL-logged in PostgreSQL 15)
        # written now, not by a checkpoint running through the first windows
        pg.psql("CHECKPOINT")  # type: ignore[attr-defined]
        actors = {t.label: Actor(roster, model.zipf_s.value, random.Random(t.index))
                  for t in trees}
        results: dict[str, Any] = {t.label: {"tree": t.state, "actions": {}, "mix": []}
                                   for t in trees}
        try:
            for t in trees:
                start_app(t, base)
            with console.status("warming up (members' feeds into Redis, plans, caches)…"):
                for t in trees:
                    url = f"http://127.0.0.1:{t.port}"
                    asyncio.run(_warm_feeds(url, roster, actors[t.label], args.concurrency))
                    asyncio.run(drive(url, actors[t.label], {k: 1.0 for k in kinds}, 3.0,
                                      args.concurrency, None))
            per_round: dict[str, dict[str, list[dict[str, Any]]]] = {
                t.label: {k: [] for k in [*kinds, "mix"]} for t in trees}
            for rnd in range(args.rounds):
                order = trees if rnd % 2 == 0 else trees[::-1]
                for kind in [*kinds, "mix"]:
                    for t in order:
                        if kind in FEED_READERS:
                            # feeds a window before invalidated (the follow window follows
                            # hundreds of times) rebuilt unmeasured: a window pays for the
                            # rebuilds its own follows cause, not for another window's
                            with console.status(f"round {rnd + 1}: warming feeds on {t.label}…"):
                                asyncio.run(_warm_feeds(f"http://127.0.0.1:{t.port}", roster,
                                                        actors[t.label], args.concurrency))
                        meter = CpuMeter(exited=True, app=t.proc.pid,  # type: ignore[union-attr]
                                         postgres=pg.proc.pid,  # type: ignore[attr-defined]
                                         redis=rd.proc.pid)  # type: ignore[attr-defined]
                        mix = {k: weights[k] for k in kinds} if kind == "mix" else {kind: 1.0}
                        secs = args.mix_seconds if kind == "mix" else args.seconds
                        spy = None
                        if args.profile_dir and rnd == 0 and t.index == 0:
                            args.profile_dir.mkdir(parents=True, exist_ok=True)
                            spy = subprocess.Popen([
                                args.py_spy, "record", "--pid", str(t.proc.pid),  # type: ignore
                                "--duration", str(int(secs)), "--nonblocking", "-r", "200",
                                "-f", "raw", "-o", str(args.profile_dir / f"{kind}.txt")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        with console.status(f"round {rnd + 1}: {kind} on {t.label}…"):
                            reqs, n, used = asyncio.run(drive(
                                f"http://127.0.0.1:{t.port}", actors[t.label], mix, secs,
                                args.concurrency, meter))
                        if spy is not None:
                            spy.wait(timeout=secs + 60)
                        s = summarise(reqs, n, used)
                        s["load_average"] = [round(x, 2) for x in os.getloadavg()]
                        if kind == "mix":
                            s["by_name"] = _by_name(reqs)
                        per_round[t.label][kind].append(s)
        finally:
            for t in trees:
                stop_app(t)
        for t in trees:
            r = results[t.label]
            r["actions"] = {k: combine(per_round[t.label][k]) for k in kinds}
            r["mix"] = combine(per_round[t.label]["mix"])
            r["mix_from_table"] = from_table(r["actions"], {k: weights[k] for k in kinds})
    doc: dict[str, Any] = {
        "accounts": args.accounts, "dataset": seeded, "common_migrations": common,
        "weights": {k: round(weights[k], 5) for k in kinds},
        "requests_per_action": {k: len(ACTION_REQUESTS[k]) for k in kinds},
        "trees": results, "cpus": os.cpu_count(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": (
            "per action: the requests loadgen/users.py makes for it, from --concurrency httpx "
            "connections in this process (on the same 2 cores as the app, PostgreSQL, Redis and "
            "whatever else ran: see load_average), against one uvicorn process; rps_per_app_core "
            "= requests / CPU-seconds of the app process; cpu_ms_per_request: CPU of the app, "
            "of PostgreSQL (postmaster and all backends, exited ones included, background work "
            "such as checkpoints and autovacuum in the window too) and of Redis per request; "
            "p50/p99 client-side (include the generator's own scheduling on the shared cores); "
            "mix: actions drawn with the profile's weights; mix_from_table: the per-action rows "
            "weighted by the mix; the app's workers do not run (fan-out, notifications and "
            "moderation work are planned from their own measurements)")}
    print_table(console, doc, kinds)
    if len(trees) > 1:
        print(comparison_markdown(doc, kinds))
    write_results(out_path, doc, script=__file__, settings=vars(args), durability=durability)
    console.print(f"written {out_path}")
    return 0


def _by_name(reqs: list[Req]) -> dict[str, dict[str, Any]]:
    names: dict[str, list[float]] = {}
    for r in reqs:
        names.setdefault(r.name, []).append(r.ms)
    return {n: {"requests": len(v), "p50_ms": round(statistics.median(v), 2)}
            for n, v in sorted(names.items())}


async def _warm_feeds(url: str, roster: Roster, actor: Actor, concurrency: int) -> None:
    """Every member reads its home feed once (the feed is built into this tree's Redis)."""
    sem = asyncio.Semaphore(concurrency)
    out: list[Req] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def one(m: tuple[str, str, str]) -> None:
            async with sem:
                remember(actor, await call(client, out, m, "10.64.0.1", "GET",
                                           "/timelines/home?limit=20", "/timelines/home"))

        await asyncio.gather(*(one(m) for m in roster.members))


def print_table(console: Any, doc: dict[str, Any], kinds: list[str]) -> None:
    from rich.table import Table

    trees = list(doc["trees"])
    table = Table(title=f"Cost per request by action ({doc['accounts']} accounts, production "
                        "durability; app req/s per app CPU-second, CPU ms per request)")
    table.add_column("action")
    table.add_column("share of reqs")
    for t in trees:
        for col in ("req/s/core", "pg ms", "redis ms", "p50", "p99", "app%"):
            table.add_column(f"{col} {t}" if len(trees) > 1 else col)
    first = doc["trees"][trees[0]]["mix_from_table"]
    for k in [*kinds, "mix", "mix (table)"]:
        share = first["share_of_requests"].get(k)
        row = [k, f"{share * 100:.1f}%" if share is not None else ""]
        for t in trees:
            tr = doc["trees"][t]
            r = tr["mix_from_table"] if k == "mix (table)" else tr["mix"] if k == "mix" \
                else tr["actions"][k]
            cpu = r["cpu_ms_per_request"]
            app_share = tr["mix_from_table"]["share_of_app_cpu"].get(k)
            row += [str(r["rps_per_app_core"]), f"{cpu['postgres']:.3f}", f"{cpu['redis']:.3f}",
                    f"{r['p50_ms']:.1f}" if "p50_ms" in r else "",
                    f"{r['p99_ms']:.1f}" if "p99_ms" in r else "",
                    f"{app_share * 100:.1f}" if app_share is not None else ""]
        table.add_row(*row)
    console.print(table)


def comparison_markdown(doc: dict[str, Any], kinds: list[str]) -> str:
    """Before/after per action as a Markdown table: the first compared tree (before) against
    the run's own tree (after)."""
    labels = list(doc["trees"])
    if len(labels) < 2:
        return ""
    new, old = doc["trees"][labels[0]], doc["trees"][labels[1]]
    lines = [f"| action | share of requests | req/s per app core {labels[1]} → {labels[0]} | "
             f"PostgreSQL CPU ms/req | Redis CPU ms/req | p50 ms | p99 ms |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    share = new["mix_from_table"]["share_of_requests"]
    for k in [*kinds, "mix", "mix (table)"]:
        a, b = (t["mix_from_table"] if k == "mix (table)" else t["mix"] if k == "mix"
                else t["actions"][k] for t in (old, new))
        ca, cb = a["cpu_ms_per_request"], b["cpu_ms_per_request"]
        lat = [f"{a[x]:.1f} → {b[x]:.1f}" if x in a else "" for x in ("p50_ms", "p99_ms")]
        sh = f"{share[k] * 100:.2f}%" if k in share else ""
        lines.append(f"| {k} | {sh} | {a['rps_per_app_core']} → {b['rps_per_app_core']} | "
                     f"{ca['postgres']:.3f} → {cb['postgres']:.3f} | "
                     f"{ca['redis']:.3f} → {cb['redis']:.3f} | {lat[0]} | {lat[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
