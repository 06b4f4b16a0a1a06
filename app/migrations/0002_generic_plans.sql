-- depends: 0001_schema
-- Prepared statements (asyncpg prepares every query) run with generic plans, made once per
-- connection, instead of a custom plan made again at every execution. PostgreSQL's `auto` mode
-- keeps choosing custom plans for the partitioned `posts` table (a custom plan prunes partitions
-- when planned, so it looks cheaper), and planning then costs more than running: a post's
-- document 1.45 -> 0.25 ms of PostgreSQL CPU, a thread's ids 0.55 -> 0.15 ms (dev stack).
-- Generic plans prune partitions at execution. A query whose plan depends on its parameter's
-- value (LIKE 'prefix%' through an index: app/services/search.py) asks for a custom plan itself.
-- New sessions take the setting; `ALTER DATABASE ... SET` reaches every session, direct or
-- through PgBouncer, on the primary and on the replicas.
DO $$
BEGIN
  EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_generic_plan', current_database());
END
$$;
