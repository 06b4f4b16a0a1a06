"""deploy/provision/pyinfra_fork.py re-implements or reaches into pyinfra's API: this fails when
the installed pyinfra changes what it relies on — the source of the functions it mirrors, and
the internal names it calls — so a pyinfra upgrade is reviewed, not discovered mid-deploy."""

from __future__ import annotations

import hashlib
import importlib
import inspect

from pyinfra.api import Config, Inventory, State
from pyinfra.api.operation import OperationMeta

from freehold.deploy.provision.pyinfra_fork import MIRRORED


def source_hash(dotted: str) -> str:
    module, _, name = dotted.rpartition(".")
    return hashlib.sha256(inspect.getsource(getattr(importlib.import_module(module), name))
                          .encode()).hexdigest()[:16]


def test_the_mirrored_pyinfra_functions_are_as_reviewed() -> None:
    changed = {f: source_hash(f) for f, want in MIRRORED.items() if source_hash(f) != want}
    assert not changed, (f"pyinfra changed {sorted(changed)}: review deploy/provision/"
                         f"pyinfra_fork.py against it, then record {changed} in MIRRORED")


def test_the_internals_it_calls_are_there() -> None:
    from pyinfra.api.connect import connect_all  # noqa: F401
    from pyinfra.api.deploy import add_deploy
    from pyinfra.api.operations import _run_host_op_with_context
    from pyinfra.context import ctx_state

    assert list(inspect.signature(_run_host_op_with_context).parameters)[:3] == [
        "state", "host", "op_hash"]
    # add_deploy(state, func, *args, host=h): the host goes through its keyword arguments
    params = inspect.signature(add_deploy).parameters
    assert list(params)[:2] == ["state", "deploy_func"]
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert callable(ctx_state.use)
    state = State(Inventory((["a"], {})), Config())
    for name in ("get_op_order", "get_op_meta", "trigger_callbacks", "fail_hosts",
                 "activate_host", "add_callback_handler"):
        assert callable(getattr(state, name)), name
    for name in ("pool", "inventory", "active_hosts", "failed_hosts", "ops", "is_executing"):
        assert hasattr(state, name), name
    assert callable(state.inventory.get_active_hosts)
    for name in ("did_change", "did_error", "is_complete"):
        assert callable(getattr(OperationMeta, name)), name
    assert isinstance(inspect.getattr_static(OperationMeta, "will_change"), property)
