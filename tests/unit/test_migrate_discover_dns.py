"""migrate discover / dns / status against moto's mock_aws (no AWS account reachable)."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import dns.zone
import pytest
import yaml
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from typer.testing import CliRunner

from freehold.deploy.cli import app
from freehold.deploy.migrate.discover import summary_rows
from freehold.deploy.migrate.dns import value_text

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1",
           # moto's ~1,300 public AMIs are scanned once per instance launched (15 ms each):
           # the instances here start from one AMI registered by the seed instead
           "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}


@contextlib.contextmanager
def mocked_aws() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for k, v in AWS_ENV.items():
            mp.setenv(k, v)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            yield


@pytest.fixture()
def aws() -> Iterator[None]:
    with mocked_aws():
        yield


# (role, launches, instances a launch, type): 222 instances in 117 reservations, more than
# moto's describe_instances page of 100 reservations (so discover has to follow NextToken)
FLEET = (("web", 75, 2, "m5.large"), ("worker", 30, 2, "c5.xlarge"), ("redis", 12, 1, "r5.large"))
OBJECTS = 1500  # more than one list_objects_v2 page of 1,000


def _seed_ec2() -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ami = ec2.register_image(Name="freehold-test-base")["ImageId"]
    for role, launches, n, itype in FLEET:
        for _ in range(launches):
            ec2.run_instances(ImageId=ami, MinCount=n, MaxCount=n, InstanceType=itype,
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "Role", "Value": role}]}])


def _seed_s3() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="media")
    # S3 has no batch upload: 1,500 PutObject calls through boto3 took 9 s, so the objects go
    # straight into moto's S3 backend (discover still lists them through the API, paginated)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in range(OBJECTS):
        backend.put_object("media", f"p/{i}", b"x" * 10)


def _seed_rds() -> None:
    rds = boto3.client("rds", region_name="us-east-1")
    rds.create_db_instance(DBInstanceIdentifier="main", Engine="postgres",
                           DBInstanceClass="db.r5.large", AllocatedStorage=500,
                           MasterUsername="u", MasterUserPassword="password123")


def _seed_route53() -> None:
    r53 = boto3.client("route53")
    zid = r53.create_hosted_zone(Name="example.social.", CallerReference="1")["HostedZone"]["Id"]
    changes = [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": f"h{i}.example.social.", "Type": "A", "TTL": 3600,
        "ResourceRecords": [{"Value": f"10.0.{i // 250}.{i % 250 + 1}"}]}} for i in range(320)]
    changes += [
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "example.social.", "Type": "A", "TTL": 300,
            "ResourceRecords": [{"Value": "54.1.2.3"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "example.social.", "Type": "MX", "TTL": 3600,
            "ResourceRecords": [{"Value": "10 mx.mail.example.net."}]}},
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "example.social.", "Type": "TXT", "TTL": 3600,
            "ResourceRecords": [{"Value": '"v=spf1 -all"'}]}},
    ]
    r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": changes})


@dataclass
class Discovery:
    """`migrate discover` run once against the seeded account (in `folder`: m.yaml and its
    runbook state)."""

    folder: Path
    exit_code: int
    output: str
    stdout: str

    def copy_to(self, dest: Path) -> Path:
        """A private copy of the manifest and its state (tests record steps in it)."""
        shutil.copytree(self.folder, dest, dirs_exist_ok=True)
        return dest / "m.yaml"


@pytest.fixture(scope="module")
def discovery(tmp_path_factory: pytest.TempPathFactory) -> Discovery:
    """Seeding the account and discovering it takes seconds in moto (hundreds of instances
    serialised): done once for the tests that only read the result."""
    folder = tmp_path_factory.mktemp("discovered")
    with mocked_aws():
        _seed_ec2()
        _seed_s3()
        _seed_rds()
        _seed_route53()
        r = CliRunner().invoke(app, ["migrate", "discover", "--out", str(folder / "m.yaml"),
                                     "--json"])
    return Discovery(folder, r.exit_code, r.output, r.stdout)


def test_discover_paginates_and_maps_roles(discovery: Discovery, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert discovery.exit_code == 0, discovery.output
    out = discovery.copy_to(tmp_path)
    doc = yaml.safe_load(out.read_text())
    assert json.loads(discovery.stdout)["kind"] == doc["kind"]
    inst = doc["regions"][0]["instances"]
    assert len(inst) == 222  # more than one describe_instances page
    roles = {i["role"] for i in inst}
    assert roles == {"app", "worker", "redis"}
    big = [i for i in inst if i["type"] == "c5.xlarge"]
    assert big[0]["cores"] == 4 and big[0]["ram_gib"] == 8.0
    assert doc["s3_buckets"] == [{"name": "media", "objects": 1500, "bytes": 15000,
                                  "role": "media"}]
    assert doc["regions"][0]["rds"][0]["role"] == "postgres"
    assert doc["route53_zones"][0]["records"] == 325  # + NS and SOA
    deps = {d["name"]: d["now"] for d in doc["external_dependencies"]}
    assert set(deps) == {"registrar", "dns", "cdn", "certificates", "email", "sms", "sso",
                         "payments"}
    assert "example.social." in deps["dns"] and "example.social." in deps["email"]
    # without --json: the same manifest shown as tables (discovery itself is not repeated)
    kinds = [row[0] for row in summary_rows(doc)]
    assert {k: kinds.count(k) for k in set(kinds)} == {"ec2": 222, "s3": 1, "rds": 1,
                                                        "route53": 1}
    monkeypatch.setattr("freehold.deploy.migrate.discover.discover", lambda regions, profile: doc)
    r = CliRunner().invoke(app, ["migrate", "discover", "--out", str(tmp_path / "t.yaml")])
    assert r.exit_code == 0, r.output
    assert {k: r.output.count(f"│ {k} ") for k in ("ec2", "s3", "rds", "route53", "payments")
            } == {"ec2": 222, "s3": 1, "rds": 1, "route53": 1, "payments": 1}
    # the runbook shows discover done, the rest pending
    r = CliRunner().invoke(app, ["migrate", "status", str(out), "--json"])
    steps = json.loads(r.stdout)
    assert steps[0]["state"] == "done" and all(s["state"] == "pending" for s in steps[1:])


def test_dns_export_parses_back_lower_ttl_and_cutover(aws, tmp_path: Path) -> None:  # noqa: ANN001
    _seed_route53()
    bind, pdns = tmp_path / "z.zone", tmp_path / "z.json"
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: freehold-migration-manifest\n")
    run = CliRunner().invoke
    r = run(app, ["migrate", "dns", "--zone", "example.social", "--bind", str(bind),
                  "--powerdns", str(pdns), "--json"])
    assert r.exit_code == 0, r.output
    z = dns.zone.from_text(bind.read_text(), origin="example.social.", relativize=False)
    r53 = boto3.client("route53")
    zid = r53.list_hosted_zones()["HostedZones"][0]["Id"]
    recs = []
    for page in r53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zid):
        recs += page["ResourceRecordSets"]
    for rec in recs:
        rds = z.find_rdataset(rec["Name"], rec["Type"])
        assert sorted(x.to_text() for x in rds) == sorted(
            value_text(rec["Type"], v["Value"]) for v in rec["ResourceRecords"]), rec
        assert rds.ttl == rec["TTL"]
    assert len(json.loads(pdns.read_text())["rrsets"]) == len(recs)

    # dry run: change set shown, nothing changed
    r = run(app, ["migrate", "dns", "--zone", "example.social", "--lower-ttl", "--dry-run",
                  "--json"])
    plan = json.loads(r.stdout)["changes"]
    assert len(plan) == 323 and all(c["ResourceRecordSet"]["TTL"] == 60 for c in plan)
    assert r53.list_resource_record_sets(HostedZoneId=zid, StartRecordName="h1.example.social.",
                                         StartRecordType="A",
                                         MaxItems="1")["ResourceRecordSets"][0]["TTL"] == 3600
    r = run(app, ["migrate", "dns", "--zone", "example.social", "--lower-ttl",
                  "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    ttls = {x["TTL"] for p in r53.get_paginator("list_resource_record_sets").paginate(
        HostedZoneId=zid) for x in p["ResourceRecordSets"] if x["Type"] in ("A", "MX")}
    assert ttls == {60}
    r = run(app, ["migrate", "dns", "--zone", "example.social", "--cutover", "--address",
                  "198.51.100.7", "--address", "198.51.100.8", "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    apex = r53.list_resource_record_sets(HostedZoneId=zid, StartRecordName="example.social.",
                                         StartRecordType="A", MaxItems="1")
    assert sorted(v["Value"] for v in apex["ResourceRecordSets"][0]["ResourceRecords"]) == [
        "198.51.100.7", "198.51.100.8"]
    states = {s["step"]: s["state"] for s in json.loads(
        run(app, ["migrate", "status", str(manifest), "--json"]).stdout)}
    assert states["dns-lower-ttl"] == "done" and states["dns-cutover"] == "done"


def test_bad_input_one_line(aws, tmp_path: Path) -> None:  # noqa: ANN001
    run = CliRunner().invoke
    r = run(app, ["migrate", "dns", "--zone", "nope.example"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    r = run(app, ["migrate", "status", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    m = tmp_path / "m.yaml"
    m.write_text("x: 1\n")
    (tmp_path / "m.state").mkdir()
    (tmp_path / "m.state" / "steps.json").write_text("{broken")
    r = run(app, ["migrate", "status", str(m)])
    assert r.exit_code == 2 and "not valid JSON" in r.stderr
    assert (tmp_path / "m.state" / "steps.json").read_text() == "{broken"


def test_plan_sizes_from_manifest(discovery: Discovery, tmp_path: Path) -> None:
    assert discovery.exit_code == 0, discovery.output
    out = discovery.copy_to(tmp_path)
    spec = tmp_path / "cluster.yaml"
    r = CliRunner().invoke(app, ["migrate", "plan", str(out), "--emit-spec", str(spec),
                                 "--json"])
    assert r.exit_code == 0, r.output
    servers = json.loads(r.stdout)["servers"]
    # 150 m5.large: 150 cores (5 servers) but 1,200 GiB RAM -> 10 servers of 128 GiB;
    # 60 c5.xlarge: 120 cores and 480 GiB -> 4
    assert servers["app"] == 10 and servers["worker"] == 4
    doc = yaml.safe_load(spec.read_text())
    assert len(doc["servers"]) == sum(servers.values())
    assert {s["site"] for s in doc["servers"] if "etcd" in s["roles"]} == {"a", "b", "c"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1")
    r = CliRunner().invoke(app, ["migrate", "plan", str(bad)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
