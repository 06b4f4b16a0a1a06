"""The loadgen servers get a list of modules (deploy/loadtest/remote.MODULES): every
freehold.loadgen module the Locust files import, directly or through each other, is on it."""

from __future__ import annotations

import ast
from pathlib import Path

from freehold.deploy.loadtest.remote import MODULES

LOADGEN = Path(__file__).resolve().parents[2] / "loadgen"


def test_every_module_the_locust_files_import_is_shipped() -> None:
    seen: set[str] = set()
    todo = ["locustfile", "users"]
    while todo and len(seen) < 100:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((LOADGEN / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "freehold.loadgen."):
                todo.append(node.module.rsplit(".", 1)[1])
    assert "payloads" in seen
    assert not seen - set(MODULES), sorted(seen - set(MODULES))
