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


def test_the_internals_of_kept_plans_and_connections_are_there() -> None:
    from pyinfra.api.state import BaseStateCallback, StateHostResults
    from pyinfra.connectors.ssh import SSHConnector
    from pyinfra.connectors.util import CommandOutput

    # run_ops_tolerant reads the prepare stage's verdict and completes an operation itself
    assert OperationMeta("x", False)._maybe_is_change is False
    assert OperationMeta("x", None)._maybe_is_change is None
    meta = OperationMeta("x", False)
    meta.set_complete(True, [], CommandOutput([]))
    assert meta.did_succeed() and not meta.did_change()
    results = StateHostResults()
    assert hasattr(results, "ops") and hasattr(results, "success_ops")
    # Connections: the paramiko client on the connector, the memoized file-transfer clients,
    # the connect callbacks
    assert "client" in vars(SSHConnector) and callable(SSHConnector.run_shell_command)
    assert isinstance(SSHConnector.get_file_transfer_connection.cache, dict)
    for name in ("host_connect", "host_connect_error"):
        assert callable(getattr(BaseStateCallback, name)), name
    # bound_commands wraps these on each host's connector
    for name in ("run_shell_command", "put_file", "get_file"):
        assert callable(getattr(SSHConnector, name)), name
