"""`freehold migrate dns --import SPEC` against moto's Route 53: records the platform does not
own are kept in roles.dns.records (and rendered into the dns role's zone), the platform's names
are replaced by the health-checked ones, the diff is shown, the runbook ends at the registrar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import dns.zone
import pytest
import yaml
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.spec import load_spec
from freehold.roles.dns.config import DnsConfigError, extra_records, zone_text
from tests.unit.test_migrate_discover_dns import aws  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]


def seed() -> None:
    r53 = boto3.client("route53")
    zid = r53.create_hosted_zone(Name="example.social.", CallerReference="1")["HostedZone"]["Id"]

    def rrset(name: str, kind: str, ttl: int, *values: str) -> dict[str, Any]:
        return {"Action": "CREATE", "ResourceRecordSet": {
            "Name": name, "Type": kind, "TTL": ttl,
            "ResourceRecords": [{"Value": v} for v in values]}}

    r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [
        rrset("example.social.", "A", 300, "54.1.2.3"),
        rrset("www.example.social.", "CNAME", 300, "example.social"),
        rrset("example.social.", "MX", 3600, "10 mx1.mail.example.net.",
              "20 mx2.mail.example.net."),
        rrset("example.social.", "TXT", 3600, '"v=spf1 include:mail.example.net -all"'),
        rrset("_dmarc.example.social.", "TXT", 3600, '"v=DMARC1; p=reject"'),
        rrset("blog.example.social.", "CNAME", 600, "blogs.example.org"),
        rrset("status.example.social.", "A", 60, "203.0.113.50"),
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "cdn.example.social.", "Type": "A",
            "AliasTarget": {"HostedZoneId": "Z2FDTNDATAQYW2", "DNSName": "d1.cloudfront.net.",
                            "EvaluateTargetHealth": False}}},
    ]})


def spec_file(tmp_path: Path, records: str | None = "example.records.zone") -> Path:
    doc = yaml.safe_load((ROOT / "inventories" / "lab.yaml").read_text())
    doc["roles"]["dns"] = {"zone": "example.social", **({"records": records} if records else {})}
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_import_keeps_other_records_and_replaces_the_platforms(aws, tmp_path: Path) -> None:  # noqa: ANN001, F811
    seed()
    spec = spec_file(tmp_path)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: freehold-migration-manifest\n")
    run = CliRunner().invoke
    # a dry run shows the plan and the diff, writes nothing
    r = run(app, ["migrate", "dns", "--zone", "example.social", "--import", str(spec),
                  "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert not (tmp_path / "example.records.zone").exists()
    actions = {(p["name"], p["type"]): p["action"] for p in doc["plan"]}
    assert actions == {("@", "A"): "replace", ("www", "CNAME"): "replace",
                       ("@", "MX"): "keep", ("@", "TXT"): "keep", ("_dmarc", "TXT"): "keep",
                       ("blog", "CNAME"): "keep", ("status", "A"): "keep",
                       ("cdn", "A"): "skip", ("@", "NS"): "drop", ("@", "SOA"): "drop"}
    assert doc["diff"][0].startswith("--- /dev/null")
    assert any("mx1.mail.example.net" in line for line in doc["diff"] if line.startswith("+"))

    r = run(app, ["migrate", "dns", "--zone", "example.social", "--import", str(spec),
                  "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    assert "replace" in r.stdout and "freehold dns export" in r.stdout
    cluster = load_spec(spec)
    text = zone_text(cluster)
    plain = "\n".join(line for line in text.splitlines() if " IN LUA " not in line)
    z = dns.zone.from_text(plain, origin="example.social.", relativize=False)
    mx = sorted(r.to_text() for r in z.find_rdataset("example.social.", "MX"))
    assert mx == ["10 mx1.mail.example.net.", "20 mx2.mail.example.net."]
    assert z.find_rdataset("example.social.", "TXT")[0].to_text() == \
        '"v=spf1 include:mail.example.net -all"'
    assert z.find_rdataset("_dmarc.example.social.", "TXT").ttl == 3600
    assert z.find_rdataset("status.example.social.", "A")[0].address == "203.0.113.50"
    # the platform's names: only the health-checked LUA records, not Route 53's values
    assert "54.1.2.3" not in text
    assert z.get_rdataset("www.example.social.", "CNAME") is None
    lua = [line.split()[0] for line in text.splitlines() if " IN LUA " in line]
    assert lua == ["@", "www"]
    # the runbook: import done, ends with the registrar switch
    steps = json.loads(run(app, ["migrate", "status", str(manifest), "--json"]).stdout)
    assert steps[-1]["step"] == "dns-registrar" and "freehold dns export" in steps[-1]["how"]
    assert {s["step"]: s["state"] for s in steps}["dns-import"] == "done"
    # importing again changes nothing
    r = run(app, ["migrate", "dns", "--zone", "example.social", "--import", str(spec),
                  "--json"])
    assert json.loads(r.stdout)["diff"] == []


def test_import_refusals_are_one_line(aws, tmp_path: Path) -> None:  # noqa: ANN001, F811
    seed()
    run = CliRunner().invoke
    r = run(app, ["migrate", "dns", "--zone", "example.social", "--import",
                  str(spec_file(tmp_path, records=None))])
    assert r.exit_code == 2 and "roles.dns.records is not set" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    other = tmp_path / "other"
    other.mkdir()
    path = spec_file(other)
    path.write_text(path.read_text().replace("zone: example.social", "zone: other.social"))
    r = run(app, ["migrate", "dns", "--zone", "example.social", "--import", str(path)])
    assert r.exit_code == 2 and "not the Route 53 zone example.social" in r.stderr


@pytest.mark.parametrize(("line", "wanted"), [
    ('www 300 IN A 192.0.2.1', "www A: www is answered by the dns role"),
    ('@ 300 IN NS ns.example.net.', "the zone's own NS records come from its dns servers"),
    ('x 300 IN LUA A "return 1"', "not a zone file"),
    ('@ 300 IN SOA a. b. 1 2 3 4 5', "type SOA is not allowed"),
])
def test_the_records_file_cannot_take_what_the_role_owns(tmp_path: Path, line: str,
                                                         wanted: str) -> None:
    spec = spec_file(tmp_path)
    (tmp_path / "example.records.zone").write_text(line + "\n")
    with pytest.raises(DnsConfigError) as e:
        extra_records(load_spec(spec))
    assert wanted in str(e.value) and "\n" not in str(e.value)
