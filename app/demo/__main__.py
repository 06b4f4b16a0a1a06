"""`python -m freehold.app.demo`: build the demo network with the app's settings from the
environment; prints one JSON line (what was made now, usernames left alone). Used by
`freehold up`."""

from __future__ import annotations

import json

from freehold.app.demo.builder import build_demo_sync
from freehold.app.settings import Settings


def main() -> None:
    print(json.dumps(build_demo_sync(Settings.from_env())), flush=True)


if __name__ == "__main__":
    main()
