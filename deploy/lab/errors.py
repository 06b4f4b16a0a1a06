"""The one error the lab raises: a single line naming what is wrong and the fix."""

from __future__ import annotations


class LabError(RuntimeError):
    """Something the operator must fix (root, a package, the spec, the machine's routes)."""
