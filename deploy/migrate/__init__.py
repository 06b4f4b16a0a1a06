"""Move a running deployment off a cloud provider: discover, plan, copy, cut over (issue 8)."""

from __future__ import annotations


class MigrateError(RuntimeError):
    """A problem the operator can fix; the message is one line naming what and how."""
