"""Inventory what runs on AWS (paginated everywhere) and map each resource to a Freehold role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from freehold.deploy.migrate import MigrateError

CFG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
             read_timeout=30)

# role by tag/name hints; first match wins
ROLE_HINTS = (("pgbouncer", "pgbouncer"), ("postgres", "postgres"), ("db", "postgres"),
              ("redis", "redis"), ("cache", "redis"), ("worker", "worker"),
              ("queue", "worker"), ("media", "media"), ("lb", "lb"), ("proxy", "lb"),
              ("monitor", "monitoring"), ("prometheus", "monitoring"), ("etcd", "etcd"),
              ("backup", "backup"), ("dns", "dns"), ("web", "app"), ("api", "app"),
              ("app", "app"))

# dependencies outside the servers that can drop the platform the same day
EXTERNAL = ("registrar", "dns", "cdn", "certificates", "email", "sms", "sso", "payments")


def _pages(c: Any, op: str, key: str, **kw: Any) -> Iterator[Any]:
    for page in c.get_paginator(op).paginate(**kw):
        yield from page.get(key, [])


def role_for(text: str) -> str:
    t = text.lower()
    for hint, role in ROLE_HINTS:
        if hint in t:
            return role
    return "app"


def _tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def discover_region(session: Any, region: str) -> dict[str, Any]:
    ec2 = session.client("ec2", region_name=region, config=CFG)
    types: dict[str, dict[str, Any]] = {}
    instances = []
    for res in _pages(ec2, "describe_instances", "Reservations"):
        for i in res["Instances"]:
            tags = _tags(i.get("Tags"))
            instances.append({"id": i["InstanceId"], "type": i["InstanceType"],
                              "state": i["State"]["Name"], "tags": tags,
                              "private_ip": i.get("PrivateIpAddress"),
                              "public_ip": i.get("PublicIpAddress"),
                              "az": i.get("Placement", {}).get("AvailabilityZone")})
    wanted = sorted({i["type"] for i in instances})
    for chunk in range(0, len(wanted), 100):
        for t in _pages(ec2, "describe_instance_types", "InstanceTypes",
                        InstanceTypes=wanted[chunk:chunk + 100]):
            types[t["InstanceType"]] = {"cores": t["VCpuInfo"]["DefaultVCpus"],
                                        "ram_gib": round(t["MemoryInfo"]["SizeInMiB"] / 1024, 1)}
    for i in instances:
        i.update(types.get(i["type"], {"cores": None, "ram_gib": None}))
        i["role"] = role_for(i["tags"].get("Role") or i["tags"].get("Name", ""))
    asg = session.client("autoscaling", region_name=region, config=CFG)
    groups = [{"name": g["AutoScalingGroupName"], "desired": g["DesiredCapacity"],
               "max": g["MaxSize"], "instances": [x["InstanceId"] for x in g["Instances"]],
               "role": role_for(g["AutoScalingGroupName"])}
              for g in _pages(asg, "describe_auto_scaling_groups", "AutoScalingGroups")]
    elb = session.client("elbv2", region_name=region, config=CFG)
    lbs = [{"name": b["LoadBalancerName"], "dns": b.get("DNSName"), "type": b.get("Type"),
            "role": "lb"} for b in _pages(elb, "describe_load_balancers", "LoadBalancers")]
    tgs = [{"name": t["TargetGroupName"], "port": t.get("Port"), "role": "app"}
           for t in _pages(elb, "describe_target_groups", "TargetGroups")]
    rds = session.client("rds", region_name=region, config=CFG)
    dbs = [{"id": d["DBInstanceIdentifier"], "engine": d["Engine"],
            "class": d["DBInstanceClass"], "storage_gib": d.get("AllocatedStorage"),
            "endpoint": (d.get("Endpoint") or {}).get("Address"), "role": "postgres"}
           for d in _pages(rds, "describe_db_instances", "DBInstances")]
    ec = session.client("elasticache", region_name=region, config=CFG)
    caches = [{"id": c["CacheClusterId"], "engine": c["Engine"], "node_type": c["CacheNodeType"],
               "nodes": c.get("NumCacheNodes"), "role": "redis"}
              for c in _pages(ec, "describe_cache_clusters", "CacheClusters")]
    return {"region": region, "instances": instances, "autoscaling_groups": groups,
            "load_balancers": lbs, "target_groups": tgs, "rds": dbs, "elasticache": caches}


def discover_global(session: Any) -> dict[str, Any]:
    s3 = session.client("s3", config=CFG)
    buckets = []
    for b in s3.list_buckets().get("Buckets", []):
        count = size = 0
        for o in _pages(s3, "list_objects_v2", "Contents", Bucket=b["Name"]):
            count += 1
            size += o["Size"]
        buckets.append({"name": b["Name"], "objects": count, "bytes": size, "role": "media"})
    r53 = session.client("route53", config=CFG)
    zones = []
    for z in _pages(r53, "list_hosted_zones", "HostedZones"):
        recs = list(_pages(r53, "list_resource_record_sets", "ResourceRecordSets",
                           HostedZoneId=z["Id"]))
        zones.append({"id": z["Id"].split("/")[-1], "name": z["Name"], "records": len(recs),
                      "mx": [r["Name"] for r in recs if r["Type"] == "MX"], "role": "dns"})
    cf = session.client("cloudfront", config=CFG)
    dists = []
    for d in (cf.list_distributions().get("DistributionList", {}).get("Items") or []):
        full = cf.get_distribution(Id=d["Id"])["Distribution"]["DistributionConfig"]
        dists.append({"id": d["Id"], "domain": d.get("DomainName"),
                      "aliases": (full.get("Aliases") or {}).get("Items", []),
                      "origins": [o["DomainName"] for o in full["Origins"]["Items"]],
                      "role": "media"})
    return {"s3_buckets": buckets, "route53_zones": zones, "cloudfront": dists}


def external_dependencies(glob: dict[str, Any]) -> list[dict[str, str]]:
    """Where each same-day-risk dependency is now, as far as AWS shows it."""
    zones = ", ".join(z["name"] for z in glob["route53_zones"]) or "not in Route 53"
    where = {
        "registrar": "unknown: check the registrar of " + zones + " (Route 53 Domains?)",
        "dns": f"Route 53: {zones}" if glob["route53_zones"] else "outside AWS: check",
        "cdn": (f"CloudFront: {len(glob['cloudfront'])} distributions" if glob["cloudfront"]
                else "no CloudFront: check"),
        "certificates": "ACM / load balancer: reissue with Let's Encrypt on the lb role",
        "email": ("MX records in Route 53: "
                  + ", ".join(m for z in glob["route53_zones"] for m in z["mx"])
                  if any(z["mx"] for z in glob["route53_zones"]) else "SES or unknown: check"),
        "sms": "SNS or third party: check",
        "sso": "Cognito / IdP: check",
        "payments": "third party: check their terms of service",
    }
    return [{"name": k, "now": where[k], "action": "confirm it survives the cut-off"}
            for k in EXTERNAL]


def discover(regions: list[str], profile: str | None = None) -> dict[str, Any]:
    """The migration manifest: every resource, its role, and the outside dependencies."""
    try:
        session = boto3.session.Session(profile_name=profile)
        per_region = [discover_region(session, r) for r in regions]
        glob = discover_global(session)
    except (ClientError, BotoCoreError) as e:
        raise MigrateError(f"AWS discovery failed: {e} — check --profile, --region and "
                           "the credentials") from None
    return {"kind": "freehold-migration-manifest", "version": 1, "regions": per_region,
            **glob, "external_dependencies": external_dependencies(glob)}


def summary_rows(manifest: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(kind, id, details, role) for every resource."""
    rows = []
    for reg in manifest["regions"]:
        for i in reg["instances"]:
            rows.append(("ec2", i["id"], f"{i['type']} {i['cores']}c {i['ram_gib']}G",
                         i["role"]))
        for g in reg["autoscaling_groups"]:
            rows.append(("asg", g["name"], f"desired {g['desired']}", g["role"]))
        for b in reg["load_balancers"]:
            rows.append(("elb", b["name"], b["type"] or "", "lb"))
        for t in reg["target_groups"]:
            rows.append(("target-group", t["name"], f"port {t['port']}", "app"))
        for d in reg["rds"]:
            rows.append(("rds", d["id"], f"{d['engine']} {d['class']}", "postgres"))
        for c in reg["elasticache"]:
            rows.append(("elasticache", c["id"], f"{c['engine']} {c['node_type']}", "redis"))
    for b in manifest["s3_buckets"]:
        rows.append(("s3", b["name"], f"{b['objects']} objects {b['bytes']} B", "media"))
    for z in manifest["route53_zones"]:
        rows.append(("route53", z["name"], f"{z['records']} records", "dns"))
    for d in manifest["cloudfront"]:
        rows.append(("cloudfront", d["id"], ",".join(d["aliases"]), "media"))
    return rows
