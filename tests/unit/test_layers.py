"""Dependencies point one way (issue 19): every import of the project's own code, read from the
source (imports inside functions included), goes down the layers, and no modules import each
other in a circle.

Installed, the four folders are one `freehold` namespace (freehold.app, freehold.deploy, ...: no
generic top-level names in a user's site-packages); the layers below name them without it.

    operator   deploy.*  (the CLI, provisioning, the lab, capacity, migration, load-test runs)
    roles      roles.*   (one pyinfra deploy per role, its registry, the ports)
    spec       deploy.spec.*, deploy.secrets, deploy.artifacts.*, deploy.atomic  (model, secrets,
               releases, whole-file writes)
    app        app.*     (the social app: imports none of the operator side)
    loadgen  loadgen.*  (Locust code, shipped alone to load generators)

A layer imports itself and the layers below it; `app` and `loadgen` import only themselves
(the spec and the roles read the app's settings model to check and render its environment).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "deploy", "roles", "loadgen")
SPEC_LAYER = ("deploy", "deploy.spec", "deploy.secrets", "deploy.artifacts", "deploy.atomic")
MAY_IMPORT = {
    "app": {"app"},
    "loadgen": {"loadgen"},
    "spec": {"spec", "app"},
    "roles": {"roles", "spec", "app"},
    "operator": {"operator", "roles", "spec", "app", "loadgen"},
}


def layer(module: str) -> str:
    module = module.removeprefix("freehold.")
    top = module.split(".")[0]
    if top == "deploy":
        in_spec = any(module == m or module.startswith(m + ".") for m in SPEC_LAYER[1:])
        return "spec" if in_spec or module == "deploy" else "operator"
    return "operator" if top not in ("app", "roles", "loadgen") else top


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            if "templates" in path.parts:
                continue  # files uploaded to servers, run there on their own
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(["freehold", *parts])] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules `name` imports (the deepest known module of each import); imports
    under `if TYPE_CHECKING:` are for the type checker only and are left out."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test)
                   for stmt in node.body for n in ast.walk(stmt)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_pkg else name.split(".")[:-1]
                here = here[:len(here) - node.level + 1]
                base = ".".join([*here, base] if base else here)
            # `from pkg import submodule` imports the submodule; `from pkg import name`, pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def upward(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} ({layer(a)}) imports {b} ({layer(b)})" for a, deps in g.items()
                  for b in deps if layer(b) not in MAY_IMPORT[layer(a)])


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # recursion depth: bounded by the number of modules (~250)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_what_it_must() -> None:
    """The walk finds real imports, relative and inside functions; the rules catch a bad one."""
    g = {k.removeprefix("freehold."): {m.removeprefix("freehold.") for m in v}
         for k, v in graph().items()}
    assert "roles.registry" in g["roles.common"]          # imported inside a function
    assert "deploy.spec" in g["roles.app.config"]
    assert upward({"roles.x": {"deploy.cli"}, "app.y": {"deploy.spec"}}) == [
        "app.y (app) imports deploy.spec (spec)", "roles.x (roles) imports deploy.cli (operator)"]
    assert "app.context" not in g["app.readwrite"]       # under TYPE_CHECKING only
    assert g["deploy.lab.lab"] >= {"deploy.lab.container", "deploy.lab.keys"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_upward_import() -> None:
    assert upward(graph()) == []


def test_no_circular_import() -> None:
    assert cycles(graph()) == []


def bare_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Imports of `app`, `deploy`, `roles` or `loadgen` without `freehold.`: from the repository's
    root they would load a second copy of a module (another settings object, another registry)."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                 else [])
        out += [f"{path.relative_to(root)}:{node.lineno} {n}" for n in names
                if n.split(".")[0] in PACKAGES]
    return out


def test_every_import_names_the_freehold_namespace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import app.db\nimport freehold.app.db\nfrom deploy import spec\n"
                   "from .x import y\nfrom freehold.roles import lb\nimport appdirs\n")
    assert bare_imports(bad, tmp_path) == ["bad.py:1 app.db", "bad.py:3 deploy"]
    files = [p for d in (*PACKAGES, "tests", "benchmarks", "scripts")
             for p in (ROOT / d).rglob("*.py") if "templates" not in p.parts]
    assert len(files) > 300
    assert [b for p in files for b in bare_imports(p)] == []
