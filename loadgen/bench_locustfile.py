"""Locust against one trivial endpoint, no think time: how many requests/s one Locust process
generates per core (benchmarks/locust_bench.py runs it beside wrk on the same endpoint).

FREEHOLD_BENCH_USER=fast (FastHttpUser, default) or http (HttpUser); FREEHOLD_BENCH_PATH is the
path (default /healthz).
"""

from __future__ import annotations

import os

from locust import HttpUser, constant, task
from locust.contrib.fasthttp import FastHttpUser

PATH = os.environ.get("FREEHOLD_BENCH_PATH", "/healthz")
KIND = os.environ.get("FREEHOLD_BENCH_USER", "fast")


if KIND == "http":
    class TrivialHttp(HttpUser):
        wait_time = constant(0)

        @task
        def hit(self) -> None:
            self.client.get(PATH)
else:
    class TrivialFast(FastHttpUser):
        wait_time = constant(0)

        @task
        def hit(self) -> None:
            self.client.get(PATH)
