"""One apt transaction per server: the base role installs every package of the server's roles."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

import freehold.roles.base as base_role
import freehold.roles.common as common
import freehold.roles.mesh as mesh_role
import freehold.roles.postgres as postgres_role
from freehold.deploy.spec import ClusterSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def spec() -> ClusterSpec:
    return load_spec(ROOT / "inventories" / "lab.yaml")


@pytest.fixture()
def hooks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No pyinfra host here: the mesh's kernel fact says "no module", the postgres hook
    (which adds file operations) only records that it ran."""
    ran: list[str] = []
    monkeypatch.setattr(mesh_role, "kernel_wireguard", lambda: False)
    monkeypatch.setattr(postgres_role, "ROLE", dataclasses.replace(
        postgres_role.ROLE, before_packages=lambda ctx: ran.append("postgres")))
    return ran


def packages_of(spec: ClusterSpec, name: str, monkeypatch: pytest.MonkeyPatch,
                run_roles: tuple[str, ...] = ()) -> list[str]:
    monkeypatch.setattr(common, "host", SimpleNamespace(name=name))
    ctx = SimpleNamespace(spec=spec, roles=run_roles)
    return common.role_packages(ctx, spec.server(name).roles)


def test_a_data_server_gets_every_role_package_once_in_role_order(
        spec: ClusterSpec, hooks: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pkgs = packages_of(spec, "a1", monkeypatch)
    assert len(pkgs) == len(set(pkgs))
    for p in ("nftables", "wireguard-go", "etcd-server", "postgresql-15", "patroni",
              "redis-server", "python3-venv"):
        assert p in pkgs, p
    assert "pgbouncer" not in pkgs  # a1 carries no pgbouncer
    assert pkgs.index("nftables") < pkgs.index("etcd-server") < pkgs.index("postgresql-15")
    assert hooks == ["postgres"]  # createcluster.d is written before postgresql-15 installs


def test_other_servers_and_a_restricted_run(spec: ClusterSpec, hooks: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    a2 = packages_of(spec, "a2", monkeypatch)
    assert {"pgbouncer", "haproxy", "redis-server"} <= set(a2)
    assert "postgresql-15" not in a2 and "etcd-server" not in a2
    assert hooks == []
    only_base = packages_of(spec, "a1", monkeypatch, run_roles=("base",))
    assert only_base == list(dict.fromkeys(base_role.PACKAGES))
    assert hooks == []


def test_the_exporters_and_prometheus_come_in_the_same_transaction(
        spec: ClusterSpec, hooks: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # one apt run per server, the monitoring role's packages included (a second run cost a
    # 300-server first deploy minutes of dpkg)
    a1 = packages_of(spec, "a1", monkeypatch)   # postgres, etcd, redis
    assert {"prometheus-node-exporter", "prometheus-postgres-exporter",
            "prometheus-redis-exporter"} <= set(a1)
    assert "prometheus" not in a1
    monitor = next(s.name for s in spec.servers if "monitoring" in s.roles)
    assert {"prometheus", "prometheus-alertmanager", "prometheus-node-exporter"} <= set(
        packages_of(spec, monitor, monkeypatch))
    # a run of base alone installs only base's own
    assert "prometheus-node-exporter" not in packages_of(spec, "a1", monkeypatch, ("base",))
