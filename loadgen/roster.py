"""The roster: who the simulated users are and what is popular, written by `freehold loadtest seed`.

A JSON file the Locust users load (no database access from the load generators), written 0600 on
the operator's machine (never in the repository) since it holds credentials:
- `members`: load-test accounts the users act as — id, username and a session token made by the
  seed (so a run does not start with thousands of argon2 log-ins; log-ins are in the mix instead);
- `popular`: load-test accounts ranked by followers, most followed first (profile views and
  follows pick from it with Zipf skew); `posts`: their posts ranked by engagement; `tags`:
  hashtags by use; `accounts_total`, `posts_total`: the load-test accounts and their posts;
- `password`: the password of every member, random for each seed run (the `login` action uses
  it); `newcomer_domain`: the e-mail domain of the accounts a sign-up flood makes through the real
  sign-up (random, kept across re-seeds), by which `freehold loadtest clean` finds them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1


class RosterError(ValueError):
    """The roster file is missing or malformed; the message says how to make one."""


@dataclass
class Roster:
    target: str
    password: str
    members: list[tuple[str, str, str]]  # (id, username, token)
    popular: list[tuple[str, str]]  # (id, username), most followed first
    posts: list[str]  # post ids, most engaging first
    tags: list[str] = field(default_factory=list)
    accounts_total: int = 0
    posts_total: int = 0
    created_at: str = ""
    seed: dict[str, Any] = field(default_factory=dict)  # what the seed reported (rates, shape)
    newcomer_domain: str = "example.org"

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, **asdict(self)}

    def save(self, path: Path) -> Path:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json()))
        os.chmod(tmp, 0o600)  # holds session tokens of test accounts
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> Roster:
        p = Path(path)
        if not p.exists():
            raise RosterError(f"{p}: no roster — run `freehold loadtest seed TARGET --accounts N`"
                              " first (it writes the roster)")
        try:
            doc = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise RosterError(f"{p}: not JSON (line {exc.lineno}) — seed again") from exc
        version = doc.get("version") if isinstance(doc, dict) else None
        if version != VERSION:
            raise RosterError(f"{p}: roster version {version} is not {VERSION} — seed again")
        doc.pop("version")
        try:
            r = cls(**doc)
        except TypeError as exc:
            raise RosterError(f"{p}: malformed roster ({exc}) — seed again") from exc
        r.members = [tuple(m) for m in r.members]  # type: ignore[misc]
        r.popular = [tuple(m) for m in r.popular]  # type: ignore[misc]
        if not r.members or not r.popular:
            raise RosterError(f"{p}: roster has no members — seed with --accounts >= 10")
        return r
