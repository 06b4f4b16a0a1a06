"""roles/monitoring at 300 servers (issue 20): the Prometheus config rendered from
inventories/lab-300.yaml scrapes every server's exporters, once each, over the mesh."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.roles.base.config import firewall_vars
from freehold.roles.monitoring import _managed_yaml
from freehold.roles.monitoring.config import NODE_PORT, exporters_on, prometheus_config
from freehold.roles.ports import POSTGRES_EXPORTER_PORT, REDIS_EXPORTER_PORT
from freehold.roles.registry import role_hosts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(ROOT / "inventories" / "lab-300.yaml")


@pytest.fixture(scope="module")
def rendered(spec: ClusterSpec) -> dict:
    """The file the monitoring servers get, read back as Prometheus would."""
    return yaml.safe_load(_managed_yaml(prometheus_config(spec), "scrape jobs from the spec"))


def targets(conf: dict) -> list[tuple[str, str, str]]:
    """(job, target, instance label) for every static target of every job."""
    return [(job["job_name"], t, sc["labels"]["instance"])
            for job in conf["scrape_configs"] for sc in job["static_configs"]
            for t in sc["targets"]]


def test_every_server_is_scraped_once_by_the_node_job(spec: ClusterSpec, rendered: dict) -> None:
    node = [(t, i) for job, t, i in targets(rendered) if job == "node"]
    assert len(node) == 300
    assert len({t for t, _ in node}) == 300 and len({i for _, i in node}) == 300
    assert {t for t, _ in node} == {f"{s.mesh_address}:{NODE_PORT}" for s in spec.servers}


def test_no_target_is_duplicated_in_any_job(spec: ClusterSpec, rendered: dict) -> None:
    all_targets = targets(rendered)
    assert len(all_targets) > 300
    dup = [k for k, n in Counter((job, t) for job, t, _ in all_targets).items() if n > 1]
    assert dup == []
    names = [job["job_name"] for job in rendered["scrape_configs"]]
    assert len(names) == len(set(names))
    per_job = Counter(job for job, _, _ in all_targets)
    assert per_job["postgres"] == per_job["patroni"] == 3 and per_job["redis"] == 6
    # the exporters behind each target exist on its server
    by_addr = {s.mesh_address: s for s in spec.servers}
    for job, port in (("postgres", POSTGRES_EXPORTER_PORT), ("redis", REDIS_EXPORTER_PORT),
                      ("node", NODE_PORT)):
        for j, t, _ in all_targets:
            if j == job:
                addr, p = t.rsplit(":", 1)
                assert int(p) == port and any(
                    port == q for _, q in exporters_on(by_addr[addr]))


def test_exporters_reach_every_server_and_its_firewall(spec: ClusterSpec) -> None:
    assert set(role_hosts(spec, "monitoring")) == {s.name for s in spec.servers}
    node = spec.server("pdx-n072")
    assert exporters_on(node) == [("prometheus-node-exporter", NODE_PORT)]
    assert NODE_PORT in firewall_vars(spec, node)["ports"].mesh_tcp
