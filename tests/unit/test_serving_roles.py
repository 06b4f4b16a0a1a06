"""Serving roles (lb, app, worker) as pure config: what lands on the servers, release ids,
roll-out order, and the server-side release helper's switch/previous/prune."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import ClusterSpec, load_spec
from freehold.roles.common import render, template_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec(ROOT / "inventories" / "lab.yaml")


@pytest.fixture(scope="module")
def secrets(spec: ClusterSpec) -> Secrets:
    s = Secrets()
    s.fill([x.name for x in spec.servers])
    return s


def test_haproxy_config_checks_healthz_and_drains_over_the_mesh(spec: ClusterSpec) -> None:
    import freehold.roles.lb as lb
    from freehold.roles.lb.config import haproxy_vars

    a2 = spec.server("a2")
    text = render(template_path(lb.__file__, "haproxy.cfg.j2"), **haproxy_vars(spec, a2))
    assert "alpn h2,http/1.1" in text and "ssl crt /etc/haproxy/certs/freehold.pem" in text
    assert "option httpchk GET /healthz" in text and "option redispatch" in text
    assert "retry-on conn-failure" in text and "sc0_conn_cur gt 200" in text
    # the per-address limit spares the cluster's own load generator (c3: one address for
    # hundreds of simulated users; the CI surge run's 301 users were cut off at 200), and only it
    c3 = spec.server("c3")
    lines = text.splitlines()
    acl = next(x.split() for x in lines if "acl load_generator src" in x)
    assert acl[3:] == [c3.public_address, c3.mesh_address]
    accept = lines.index("    tcp-request connection accept if load_generator")
    assert accept < lines.index("    tcp-request connection reject if { sc0_conn_cur gt 200 }")
    assert f"stats socket ipv4@{a2.mesh_address}:9999 level admin" in text
    assert f"bind {a2.mesh_address}:8404" in text
    # every app server, the local site's at full weight, the others' as overflow
    a3, b3 = spec.server("a3"), spec.server("b3")
    assert f"server a3 {a3.mesh_address}:8000 check weight 100" in text
    assert f"server b3 {b3.mesh_address}:8000 check weight 1" in text
    # stats and runtime API only from the mesh; 80/443 public; VRRP from cluster peers
    assert set(lb.PORTS.public_tcp) == {80, 443} and set(lb.PORTS.mesh_tcp) == {8404, 9999}


def test_conn_limit_exempt_networks_from_the_spec(tmp_path: Path) -> None:
    from freehold.deploy.spec import SpecError
    from freehold.roles.lb.config import conn_limit_exempt

    text = (ROOT / "inventories" / "lab.yaml").read_text()
    assert "\n  lb: {}\n" in text
    doc = load_spec(ROOT / "inventories" / "lab.yaml")
    base = conn_limit_exempt(doc)
    assert base == [doc.server("c3").public_address, doc.server("c3").mesh_address]
    custom = tmp_path / "lab.yaml"
    custom.write_text(text.replace("\n  lb: {}\n", "\n  lb: {conn_limit_exempt: "
                                   "[203.0.113.0/24]}\n"))
    assert conn_limit_exempt(load_spec(custom))[-1] == "203.0.113.0/24"
    custom.write_text(text.replace("\n  lb: {}\n", "\n  lb: {conn_limit_exempt: "
                                   "['203.0.113.7/24']}\n"))
    with pytest.raises(SpecError, match="conn_limit_exempt"):
        load_spec(custom)


def test_keepalived_one_vip_per_site_unicast_between_the_site_lbs(spec: ClusterSpec) -> None:
    import freehold.roles.lb as lb
    from freehold.roles.lb.config import keepalived_vars, vips

    assert vips(spec) == {"a": "198.18.1.5", "b": "198.18.2.5"}   # site c has no lb
    a2, a3 = keepalived_vars(spec, spec.server("a2"), "eth0"), keepalived_vars(
        spec, spec.server("a3"), "eth0")
    b2 = keepalived_vars(spec, spec.server("b2"), "eth0")
    assert a2["vip"] == a3["vip"] == "198.18.1.5" and a2["vrid"] == a3["vrid"] != b2["vrid"]
    assert a2["peers"] == [spec.server("a3").public_address] and a2["priority"] > a3["priority"]
    text = render(template_path(lb.__file__, "keepalived.conf.j2"), **a2)
    assert "198.18.1.5/24 dev eth0" in text and "unicast_src_ip 198.18.1.11" in text
    assert "nopreempt" in text and "track_script" in text


def test_self_signed_certificate_names_every_vip_and_is_kept(
        spec: ClusterSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography import x509

    from freehold.roles.lb.tls import certificate_pem, self_signed_path

    monkeypatch.setenv("HOME", str(tmp_path))
    pem = certificate_pem(spec)
    assert "PRIVATE KEY" in pem and oct(self_signed_path(spec).stat().st_mode)[-3:] == "600"
    cert = x509.load_pem_x509_certificate(pem.encode())
    ips = {str(a) for a in cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)}
    assert {"198.18.1.5", "198.18.2.5"} <= ips
    assert certificate_pem(spec) == pem      # reused: a second deploy changes nothing


def test_app_environment_from_spec_and_secrets(spec: ClusterSpec, secrets: Secrets) -> None:
    from freehold.roles.app.config import app_env, env_file

    env = app_env(spec, secrets, spec.server("b3"))
    b2, a2 = spec.server("b2"), spec.server("a2")
    # the routers of the app server's own site first, then the others
    assert f"@{b2.mesh_address}:5000,{a2.mesh_address}:5000/freehold" in \
        env["FREEHOLD_DATABASE_URL"]
    assert ":5001," in env["FREEHOLD_DATABASE_READ_URL"]
    assert env["FREEHOLD_REDIS_CLUSTER"] == "1" and secrets["redis"] in env["FREEHOLD_REDIS_URL"]
    assert env["FREEHOLD_SECRET_KEY"] == secrets["app_secret_key"]
    # every media server's gateway, the app's own site's first
    s3 = env["FREEHOLD_S3_ENDPOINT"].split(",")
    assert s3[0] == f"http://{spec.server('b1').mesh_address}:8333"
    assert sorted(s3) == sorted(f"http://{m.mesh_address}:8333"
                                for m in spec.servers_with_role("media"))
    assert env["FREEHOLD_WEB_WORKERS"] == "1"          # one per core (lab servers: 1 core)
    text = env_file(env)
    assert all("\n" + k + "=" in "\n" + text for k in env)


def test_app_unit_has_cpu_accounting_for_the_calibration(spec: ClusterSpec) -> None:
    """`freehold loadtest calibrate` reads the unit's CPUUsageNSec (issue 24 part 3)."""
    from freehold.roles import app
    from freehold.roles.app.config import unit_vars

    text = render(template_path(app.__file__, "freehold-app.service.j2"),
                  **unit_vars(spec, spec.server("a3")))
    service = text.split("[Service]", 1)[1].split("[Install]", 1)[0]
    assert "\nCPUAccounting=yes\n" in service


def test_workers_per_server_from_the_spec(spec: ClusterSpec) -> None:
    from freehold.roles.worker.config import counts, instances

    c3 = spec.server("c3")
    assert counts(spec, c3) == {"fanout": 1, "notify": 1, "trends": 1, "moderation": 1}
    doc = spec.model_copy(update={"roles": {**spec.roles, "worker": {
        "per_server": {"fanout": 2}, "servers": {"c3": {"fanout": 3, "trends": 0}}}}})
    assert instances(doc, c3)["fanout"] == [f"freehold-worker-fanout@{i}" for i in (1, 2, 3)]
    assert instances(doc, c3)["trends"] == []
    assert counts(doc, spec.server("a3"))["fanout"] == 2


def test_rollout_alternates_sites(spec: ClusterSpec) -> None:
    from freehold.deploy.provision.rolling import batches

    assert [s.name for s in batches(spec, "app")] == ["a3", "b3"]
    assert [s.name for s in batches(spec, "worker")] == ["a3", "b3", "c3"]


def test_worker_only_servers_follow_the_app_servers_release() -> None:
    from freehold.deploy.provision.rolling import RollReport, Step, app_target

    report = RollReport(spec="lab")
    assert app_target(report) is None            # no app server: workers use their previous
    report.steps += [Step("a3", "app", after="r1", status="ok"),
                     Step("b3", "app", after="r1", status="ok"),
                     Step("a4", "app", after="r2", status="ok"),
                     Step("b4", "app", after="r9", status="failed")]
    assert app_target(report) == "r1"


def test_release_id_stable_and_new_with_a_label(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    from freehold.deploy.artifacts.release import LABEL_ENV, release_id, runtime_pins

    pins = runtime_pins()
    assert {"uvicorn", "asyncpg", "redis", "yoyo-migrations", "fastapi"} <= set(pins)
    assert "locust" not in pins and "pyinfra" not in pins      # operator-only packages
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("x = 1\n")
    (tmp_path / "app" / "__pycache__").mkdir()
    (tmp_path / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"1")
    monkeypatch.delenv(LABEL_ENV, raising=False)
    first = release_id(tmp_path, pins)
    (tmp_path / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"2")
    assert release_id(tmp_path, pins) == first                # same source, same release
    monkeypatch.setenv(LABEL_ENV, "drill-2")
    assert release_id(tmp_path, pins) != first
    monkeypatch.delenv(LABEL_ENV)
    (tmp_path / "app" / "main.py").write_text("x = 2\n")
    assert release_id(tmp_path, pins) != first


def test_running_release_from_the_process_command_line() -> None:
    from freehold.roles.app.config import running_release

    cmd = "/opt/freehold/releases/0.1.0-abc123/venv/bin/python -m freehold.app.serve --port 8000"
    assert running_release(cmd) == "0.1.0-abc123"
    assert running_release("") is None


def _helper(root: Path) -> ModuleType:
    import freehold.roles.app as app_role

    path = template_path(app_role.__file__, "freehold-release.py")
    spec = importlib.util.spec_from_file_location("freehold_release", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.ROOT, mod.RELEASES = str(root), str(root / "releases")
    mod.CURRENT, mod.HISTORY = str(root / "current"), str(root / "history")
    return mod


def test_release_helper_switch_previous_prune(tmp_path: Path) -> None:
    helper = _helper(tmp_path)
    for rid in ("r1", "r2", "r3", "r4", "r5"):
        (tmp_path / "releases" / rid).mkdir(parents=True)
        (tmp_path / "releases" / rid / ".installed").touch()
    assert helper.current() is None and helper.previous() is None
    for rid in ("r1", "r2", "r3", "r4"):
        assert helper.switch(rid, keep=3)
    assert not helper.switch("r4", keep=3)                       # already there
    assert helper.current() == "r4" and helper.previous() == "r3"
    assert os.readlink(tmp_path / "current") == "releases/r4"
    # kept: the 3 most recent of the history and r5 (installed, never activated yet)
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == ["r2", "r3", "r4", "r5"]
    assert helper.switch("r3", keep=3) and helper.previous() == "r4"
    with pytest.raises(SystemExit):
        helper.switch("missing", keep=3)
