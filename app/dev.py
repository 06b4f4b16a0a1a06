"""Run the whole app locally for development: `python -m freehold.app.dev [--port 8000]`.

Starts PostgreSQL, Redis and SeaweedFS (S3) in a temporary folder with app.devstack,
migrates, builds the demo network (app.demo: accounts `alice`, `bob`, `carol`… password
`freehold-demo`; `demo_admin` is an admin and juror and follows them), runs the four workers and
the web server, and stops everything (by pid) on Ctrl-C. `--seed-only` builds the demo and exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from freehold.app.db import migrate
from freehold.app.demo.builder import build_demo_sync
from freehold.app.demo.content import ADMIN, PASSWORD
from freehold.app.devstack import free_port, local_stack, wait_port
from freehold.app.settings import Settings


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from freehold.app.devstack import LocalServiceError
    from freehold.app.services.errors import Unavailable

    try:
        return _run(argv)
    except (LocalServiceError, Unavailable) as exc:  # one line, not a traceback
        print(f"freehold.app.dev: {exc}", file=sys.stderr, flush=True)
        return 1


def _run(argv: list[str] | None) -> int:
    # Ctrl-C (and a plain kill) stop everything, even when started as a background job of a
    # non-interactive shell: such a job inherits SIGINT ignored, and Python then installs no
    # KeyboardInterrupt of its own (CI's runs of the dev command's test hung on exactly that)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    ap = argparse.ArgumentParser(prog="python -m freehold.app.dev")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--seed-only", action="store_true", help="build the demo data, then stop")
    args = ap.parse_args(argv)
    with local_stack(s3=True) as stack:
        pg, rd, s3 = stack["postgres"], stack["redis"], stack["s3"]
        settings = Settings(database_url=pg.dsn, redis_url=rd.url,  # type: ignore[attr-defined]
                            s3_endpoint=s3.endpoint, s3_access_key=s3.access_key,  # type: ignore
                            s3_secret_key=s3.secret_key,  # type: ignore[attr-defined]
                            bootstrap_admins=ADMIN, development=True)
        migrate(settings.database_url)
        from freehold.app.services.media import MediaStore

        MediaStore.from_settings(settings).ensure_bucket_sync()
        made = build_demo_sync(settings)
        print(f"demo data: {made['accounts']} accounts, {made['posts']} posts; log in as {ADMIN},"
              f" password {PASSWORD!r}", flush=True)
        if args.seed_only:
            return 0
        env = {**os.environ, **settings.to_env()}
        root = Path(str(stack["root"]))
        procs = [subprocess.Popen([sys.executable, "-m", "freehold.app.worker", kind], env=env,
                                  stdout=(root / f"{kind}.log").open("ab"),
                                  stderr=subprocess.STDOUT)
                 for kind in ("fanout", "notify", "moderation", "trends")]
        port = args.port or free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "freehold.app.serve", "--workers", "1", "--port", str(port),
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
            deadline = time.monotonic() + 10  # one bound for them all, not 10 s each
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
