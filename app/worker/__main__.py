"""Run one worker process: `python -m freehold.app.worker fanout|notify|trends|moderation`.

Settings come from FREEHOLD_* variables. SIGTERM/SIGINT stop it after the current batch (entries
not yet acknowledged are claimed by another worker). FREEHOLD_WORKER_METRICS_PORT exposes
Prometheus metrics (fan-out lag) when set.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from freehold.app.context import close_ctx, open_ctx
from freehold.app.settings import Settings, SettingsError
from freehold.app.worker import KINDS, STREAM_WORKERS, trends
from freehold.app.worker.consumer import StreamWorker


async def main_async(kind: str) -> None:
    settings = Settings.from_env()
    ctx = await open_ctx(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if kind == "trends":
            await trends.run(ctx, stop)
        else:
            stream, group, handler = STREAM_WORKERS[kind]
            worker = StreamWorker(ctx, stream, group, handler)
            logging.getLogger("freehold.worker").info("%s worker %s started", kind,
                                                      worker.consumer)
            await worker.run(stop)
    finally:
        await close_ctx(ctx)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m freehold.app.worker")
    ap.add_argument("kind", choices=KINDS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    port = os.environ.get("FREEHOLD_WORKER_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        start_http_server(int(port), addr="127.0.0.1")
    try:
        asyncio.run(main_async(args.kind))
    except SettingsError as exc:
        print(f"freehold.app.worker: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
