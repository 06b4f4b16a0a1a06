"""roles/dns without servers: the zone rendered from the lab spec (parsed back by dnspython),
PowerDNS' config, the settings' one-line errors, the placement rule's refusals, the DNSSEC key
and `freehold dns export`'s output."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.name
import dns.rdata
import dns.zone
import pytest
import yaml
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.secrets import KEY_ENV, Secrets, SecretStore, dnssec_private_key
from freehold.deploy.spec import SpecError, load_spec, loads_spec, parse_spec
from freehold.deploy.spec.placement import check_placement
from freehold.roles.common import render, template_path
from freehold.roles.dns import config as c
from freehold.roles.dns import import_key_command
from freehold.roles.lb.config import vips
from freehold.roles.registry import role

ROOT = Path(__file__).resolve().parents[3]
LAB = ROOT / "inventories" / "lab.yaml"


def lab_doc() -> dict[str, Any]:
    return yaml.safe_load(LAB.read_text())


def with_roles(doc: dict[str, Any], **names: list[str]) -> dict[str, Any]:
    for s in doc["servers"]:
        if s["name"] in names:
            s["roles"] = names[s["name"]]
    return doc


def test_the_zone_parses_and_names_every_dns_server_and_site_vip() -> None:
    spec = load_spec(LAB)
    text = c.zone_text(spec)
    # the LUA records are PowerDNS' own type: dnspython reads the rest
    plain = "\n".join(line for line in text.splitlines() if " IN LUA " not in line)
    z = dns.zone.from_text(plain, origin="lab.freehold.test.", relativize=False)
    ns = {str(r.target) for r in z.find_rdataset("lab.freehold.test.", "NS")}
    dns_servers = spec.servers_with_role("dns")
    assert [s.name for s in dns_servers] == ["a2", "b2", "c2"]
    assert {s.provider for s in dns_servers} == {"homelab", "rentco", "cloudco"}
    assert ns == {f"ns-{s.name}.lab.freehold.test." for s in dns_servers}
    for s in dns_servers:
        glue = z.find_rdataset(f"ns-{s.name}.lab.freehold.test.", "A")
        assert [r.address for r in glue] == [s.public_address]
    soa = z.find_rdataset("lab.freehold.test.", "SOA")[0]
    assert str(soa.mname) == "ns-a2.lab.freehold.test."
    assert soa.serial == c.zone_serial(spec)
    lua = [line for line in text.splitlines() if " IN LUA " in line]
    assert [line.split()[0] for line in lua] == ["@", "www"]
    for line in lua:
        assert line.split()[1] == "20"
        assert ("ifurlup('https://lab.freehold.test/readyz', {{'198.18.1.5', '198.18.2.5'}}, "
                "{selector='all', backupSelector='all', timeout=2})") in line
    # the VIPs are roles/lb's: every serving site's, no other
    assert sorted(vips(spec).values()) == ["198.18.1.5", "198.18.2.5"]


def test_port_check_names_and_ttl_from_the_spec() -> None:
    doc = lab_doc()
    doc["roles"]["dns"] = {"zone": "example.social", "names": ["@", "www", "api", "media"],
                           "ttl": 30, "check": "port"}
    spec = parse_spec(doc)
    lua = [r for r in c.records(spec) if r.type == "LUA"]
    assert [r.name for r in lua] == ["@", "www", "api", "media"]
    assert {r.ttl for r in lua} == {30}
    assert {r.content for r in lua} == {
        "A \"ifportup(443, {'198.18.1.5', '198.18.2.5'}, "
        "{selector='all', backupSelector='all', timeout=2})\""}


def test_serial_follows_the_content_only() -> None:
    spec = load_spec(LAB)
    assert c.zone_text(spec) == c.zone_text(load_spec(LAB))  # same spec, same text everywhere
    doc = lab_doc()
    doc["roles"]["dns"]["ttl"] = 25
    assert c.zone_serial(parse_spec(doc)) != c.zone_serial(spec)
    assert 1 <= c.zone_serial(spec) < 2**31


def test_pdns_config() -> None:
    doc = lab_doc()
    doc["roles"]["dns"]["dnssec"] = False
    spec = parse_spec(doc)
    me = spec.server("b2")
    text = render(template_path(c.__file__, "pdns.conf.j2"), **c.pdns_vars(spec, me))
    conf = dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))
    assert conf["launch"] == "bind"
    assert conf["bind-config"] == c.NAMED_CONF
    assert conf["local-address"] == "198.18.2.11" and conf["local-port"] == "53"
    assert conf["enable-lua-records"] == "yes"
    assert conf["lua-health-checks-interval"] == "5"
    assert conf["disable-axfr"] == "yes"
    assert int(conf["cache-ttl"]) <= int(conf["lua-health-checks-interval"])
    assert "bind-dnssec-db" not in conf  # dnssec off
    signed = load_spec(LAB)  # the lab's zone is signed
    assert c.dnssec(signed)
    text = render(template_path(c.__file__, "pdns.conf.j2"), **c.pdns_vars(signed, me))
    assert f"bind-dnssec-db={c.DNSSEC_DB}" in text.splitlines()
    named = render(template_path(c.__file__, "named.conf.j2"), **c.named_vars(spec))
    assert 'zone "lab.freehold.test" {' in named
    assert f'file "{c.ZONE_DIR}/lab.freehold.test.zone";' in named


def test_role_is_registered_with_its_unit_ports_and_packages() -> None:
    r = role("dns")
    assert r.units == ("pdns.service",)
    assert r.ports.public_udp == (53,) and r.ports.public_tcp == (53,)
    assert r.packages(None) == ["pdns-server", "pdns-backend-bind", "bind9-dnsutils"]
    cmd = import_key_command("lab.freehold.test")
    assert f"import-zone-key lab.freehold.test {c.KEY_FILE} ksk active" in cmd
    assert cmd.startswith("set -e;")


@pytest.mark.parametrize(("dns", "wanted"), [
    ({"zone": "Example.Social"}, "roles.dns.zone: 'Example.Social' is not allowed — use a "
                                 "domain name in lower case"),
    ({"zone": "social"}, "roles.dns.zone: 'social' is not allowed"),
    ({"zone": "example.social", "ttl": 1}, "roles.dns.ttl:"),
    ({"zone": "example.social", "check": "ping"}, "roles.dns.check: 'ping' is not allowed"),
    ({"zone": "example.social", "names": ["www", "www"]}, "names one record twice"),
    ({"zone": "example.social", "names": ["a.b"]}, "roles.dns.names[0]: 'a.b' is not allowed"),
    ({"zone": "example.social", "dnsec": True}, "roles.dns.dnsec: unknown field"),
    ({"ttl": 20}, "roles.dns.zone: missing"),
])
def test_settings_errors_are_one_line_each(dns: dict[str, Any], wanted: str) -> None:
    doc = lab_doc()
    doc["roles"]["dns"] = dns
    with pytest.raises(SpecError) as e:
        loads_spec(yaml.safe_dump(doc))
    assert any(wanted in p for p in e.value.problems), e.value.problems
    assert all("\n" not in p for p in e.value.problems)


def test_placement_refuses_dns_in_one_provider() -> None:
    doc = with_roles(lab_doc(), b2=["redis", "lb", "pgbouncer"],
                     a1=["etcd", "postgres", "redis", "media", "dns"],
                     c2=["redis", "monitoring"], a3=["lb", "app", "worker", "dns"])
    errors, _ = check_placement(parse_spec(doc))
    assert ("dns: every dns server is at provider homelab — put dns servers at 2 providers or "
            "more, so that losing one provider does not take the platform's name with it"
            ) in errors


def test_placement_refuses_fewer_than_three_dns_servers() -> None:
    doc = with_roles(lab_doc(), b2=["redis", "lb", "pgbouncer"])
    errors, _ = check_placement(parse_spec(doc))
    assert [e for e in errors if e.startswith("dns: 2 server(s) — give at least 3")]


def test_placement_refuses_dns_servers_without_a_zone() -> None:
    doc = lab_doc()
    del doc["roles"]["dns"]
    errors, _ = check_placement(parse_spec(doc))
    assert [e for e in errors if e.startswith("dns: roles.dns.zone is not set")]


def test_the_lab_and_production_specs_pass_the_dns_rules() -> None:
    for name in ("lab.yaml", "production-example.yaml"):
        errors, _ = check_placement(load_spec(ROOT / "inventories" / name))
        assert not [e for e in errors if e.startswith("dns")], (name, errors)


def test_dnssec_key_public_part_and_ds_agree_with_dnspython() -> None:
    private = dnssec_private_key()
    assert len(base64.b64decode(private)) == 32
    key = dns.rdata.from_text("IN", "DNSKEY", c.dnskey_text(private))
    assert key.flags == 257 and key.algorithm == 13 and len(key.key) == 64
    doc = lab_doc()
    doc["roles"]["dns"]["dnssec"] = True
    spec = parse_spec(doc)
    [ds] = c.ds_records(spec, private)
    want = dns.dnssec.make_ds(dns.name.from_text("lab.freehold.test."), key, "SHA256")
    assert (ds["key_tag"], ds["algorithm"], ds["digest_type"]) == (
        dns.dnssec.key_id(key), 13, 2)
    assert ds["digest"] == want.digest.hex().upper()
    text = c.private_key_file(private)
    assert text.splitlines() == ["Private-key-format: v1.2", "Algorithm: 13 (ECDSAP256SHA256)",
                                 f"PrivateKey: {private}"]
    # another key, another DS: the digest is the key's, not a constant
    assert c.ds_records(spec, dnssec_private_key())[0]["digest"] != ds["digest"]


def test_secrets_make_the_dnssec_key_once() -> None:
    s = Secrets()
    s.fill([])
    first = s.cluster[c.SECRET]
    assert not s.fill([]) and s.cluster[c.SECRET] == first


def test_export_prints_ns_glue_and_ds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    plain = lab_doc()
    plain["roles"]["dns"]["dnssec"] = False
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain))
    r = runner.invoke(app, ["dns", "export", str(tmp_path / "plain.yaml")])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "lab.freehold.test. 3600 IN NS ns-a2.lab.freehold.test.",
        "lab.freehold.test. 3600 IN NS ns-b2.lab.freehold.test.",
        "lab.freehold.test. 3600 IN NS ns-c2.lab.freehold.test.",
        "ns-a2.lab.freehold.test. 3600 IN A 198.18.1.11",
        "ns-b2.lab.freehold.test. 3600 IN A 198.18.2.11",
        "ns-c2.lab.freehold.test. 3600 IN A 198.18.3.11",
    ]
    doc = lab_doc()
    assert doc["roles"]["dns"]["dnssec"] is True
    spec_path = tmp_path / "signed.yaml"
    spec_path.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    r = runner.invoke(app, ["dns", "export", str(spec_path)])
    assert r.exit_code == 2 and "no secrets file" in r.output
    store = SecretStore(tmp_path / "signed.secrets", "lab")
    secrets = store.ensure([])
    r = runner.invoke(app, ["dns", "export", str(spec_path), "--json"])
    assert r.exit_code == 0, r.output
    out = yaml.safe_load(r.output)
    [ds] = out["ds"]
    key = dns.rdata.from_text("IN", "DNSKEY", c.dnskey_text(secrets.cluster[c.SECRET]))
    assert ds["key_tag"] == dns.dnssec.key_id(key)
    assert [n["glue"] for n in out["nameservers"]] == [["198.18.1.11"], ["198.18.2.11"],
                                                        ["198.18.3.11"]]
    r = runner.invoke(app, ["dns", "export", str(spec_path)])
    assert r.output.splitlines()[-1] == (f"lab.freehold.test. 3600 IN DS {ds['key_tag']} 13 2 "
                                         f"{ds['digest']}")


# ---- freehold status: each dns server's serial and health ------------------------------

def dig_output(serial: int, answers: list[str]) -> str:
    soa = f"ns-a2.lab.freehold.test. hostmaster.lab.freehold.test. {serial} 10800 3600 1209600 60"
    return soa + "\n#\n" + "\n".join(answers)


def test_status_probes_each_dns_server_as_the_world_does() -> None:
    from freehold.deploy.ops.probes import probe_script

    spec = load_spec(LAB)
    script = probe_script(spec, spec.server("b2"))
    assert "echo '@@ dns'" in script
    assert "dig +short +time=2 +tries=2 @198.18.2.11 SOA lab.freehold.test" in script
    assert "dig +short +time=2 +tries=2 @198.18.2.11 A lab.freehold.test" in script
    assert "@@ dns" not in probe_script(spec, spec.server("a1"))


def test_status_dns_rows_serials_and_problems() -> None:
    from freehold.deploy.ops.status import DOWN, OK, classify_dns, parse_dns

    spec = load_spec(LAB)
    want = c.zone_serial(spec)
    vip_list = ["198.18.1.5", "198.18.2.5"]
    assert parse_dns(dig_output(want, ["198.18.2.5", "198.18.1.5"])) == (want, vip_list)
    good = {n: dig_output(want, vip_list) for n in ("a2", "b2", "c2")}
    comp = classify_dns(good, ["a2", "b2", "c2"], want)
    assert comp.state == OK and comp.problems == []
    assert comp.rows[0] == {"server": "a2", "serial": want, "answers": vip_list,
                            "healthy": True}
    stale = {**good, "b2": dig_output(want - 1, vip_list), "c2": None}
    comp = classify_dns(stale, ["a2", "b2", "c2"], want)
    assert comp.state != OK
    assert f"b2: serves serial {want - 1}, the spec's zone is {want} — run `freehold deploy " \
           "--roles dns`" in comp.problems
    assert "c2: does not answer for the zone" in comp.problems
    assert f"dns servers serve different zones (serials {want - 1}, {want})" in comp.problems
    assert [r["healthy"] for r in comp.rows] == [True, True, False]
    assert classify_dns({}, ["a2", "b2", "c2"], want).state == DOWN


def test_deploy_refuses_a_zone_that_does_not_render_before_touching_a_server(
        tmp_path: Path) -> None:
    doc = lab_doc()
    doc["roles"]["dns"]["records"] = "missing.records.zone"
    spec_path = tmp_path / "lab.yaml"
    spec_path.write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(app, ["deploy", str(spec_path), "--roles", "dns", "--dry-run"])
    assert r.exit_code == 2
    assert "roles.dns.records:" in r.output and "missing.records.zone: cannot read it" in r.output
