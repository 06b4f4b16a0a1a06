"""Serve the app with uvicorn: `python -m freehold.app.serve [--workers N] [--host H] [--port P]`.

Several worker processes share the port; Prometheus metrics are aggregated across them through
PROMETHEUS_MULTIPROC_DIR (a fresh folder is made when unset). Migrations run first unless
--no-migrate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import uvicorn

from freehold.app.db import migrate
from freehold.app.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m freehold.app.serve")
    ap.add_argument("--host", default=os.environ.get("FREEHOLD_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("FREEHOLD_PORT", "8000")))
    ap.add_argument("--workers", type=int,
                    default=int(os.environ.get("FREEHOLD_WEB_WORKERS", os.cpu_count() or 1)))
    ap.add_argument("--no-migrate", action="store_true")
    args = ap.parse_args(argv)
    try:
        settings = Settings.from_env()
        settings.check_startup()
    except SettingsError as exc:
        print(f"freehold.app.serve: {exc}", file=sys.stderr)
        return 2
    if not args.no_migrate:
        migrate(settings.database_url)
    own_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="freehold-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    try:
        uvicorn.run("freehold.app.main:create_app", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level="warning", access_log=False,
                    proxy_headers=True, forwarded_allow_ips=os.environ.get(
                        "FREEHOLD_TRUSTED_PROXIES", "127.0.0.1"),
                    # open streaming connections (app.mastodon.streaming) would hold a graceful
                    # shutdown forever: they are cut after this many seconds
                    timeout_graceful_shutdown=10)
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
