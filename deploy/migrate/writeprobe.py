"""A steady writer that measures a database cut-over's write outage as the app's users see it.

It creates posts the way the app does (app.services.posts.create_post's statements: the post
with an app id, the author's post count, the post's tag) at a steady rate against "the current
primary", a switch flipped from the source to the target at the cut-over (as the app's DSN
change would). Every write whose COMMIT was acknowledged is remembered: the outage is the last
acknowledged write on the source to the first on the target, and `missing` looks each
acknowledged post up on the target afterwards (none may be lost).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from freehold.app.ids import new_id


@dataclass
class Ack:
    at: float  # time.monotonic() of the acknowledged commit
    post_id: int
    side: str  # "source" or "target"


@dataclass
class WriteProbe:
    source: str
    target: str
    author_id: int
    rate: float = 20.0  # posts per second
    max_seconds: float = 7200.0
    acks: list[Ack] = field(default_factory=list)
    errors: int = 0
    last_error: str = ""
    side: str = "source"
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def switch_to_target(self, *_: Any) -> None:
        """The app's DSN now names the target."""
        self.side = "target"

    def start(self) -> WriteProbe:
        self._thread = threading.Thread(target=self._run, name="write-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _write(self, conn: psycopg.Connection[Any]) -> int:
        pid = new_id()
        with conn.transaction():
            conn.execute("INSERT INTO posts (id, author_id, body) VALUES (%s, %s, %s)",
                         (pid, self.author_id, f"cut-over probe {pid} #cutover"))
            conn.execute("UPDATE accounts SET posts_count = posts_count + 1 WHERE id = %s",
                         (self.author_id,))
            conn.execute("INSERT INTO post_tags (tag, post_id) VALUES ('cutover', %s)", (pid,))
        return pid

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        conn_side = ""
        end = time.monotonic() + self.max_seconds
        nxt = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < end:  # bounded: max_seconds
            side = self.side
            try:
                if conn is None or conn_side != side:
                    if conn is not None:
                        conn.close()
                    conn, conn_side = None, side
                    conn = psycopg.connect(self.source if side == "source" else self.target,
                                           autocommit=True, connect_timeout=2)
                pid = self._write(conn)
                self.acks.append(Ack(time.monotonic(), pid, side))
            except psycopg.Error as e:
                self.errors += 1
                self.last_error = str(e).strip().splitlines()[0] if str(e).strip() else "error"
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.02)
                continue
            nxt += 1.0 / self.rate
            time.sleep(max(0.0, nxt - time.monotonic()))
        if conn is not None:
            conn.close()

    def outage(self) -> float | None:
        """Seconds from the last acknowledged write on the source to the first on the target."""
        src = [a.at for a in self.acks if a.side == "source"]
        dst = [a.at for a in self.acks if a.side == "target"]
        return (min(dst) - max(src)) if src and dst else None

    def missing(self) -> list[int]:
        """Acknowledged posts the target does not have."""
        ids = [a.post_id for a in self.acks]
        with psycopg.connect(self.target, connect_timeout=10) as c:
            found = {r[0] for r in c.execute("SELECT id FROM posts WHERE id = ANY(%s)",
                                             (ids,)).fetchall()}
        return [i for i in ids if i not in found]

    def summary(self) -> dict[str, Any]:
        out = self.outage()
        return {"rate_per_s": self.rate, "acknowledged": len(self.acks),
                "acknowledged_on_source": sum(a.side == "source" for a in self.acks),
                "acknowledged_on_target": sum(a.side == "target" for a in self.acks),
                "failed_attempts": self.errors, "outage_s": round(out, 3) if out else out,
                "lost": len(self.missing())}
