"""Route 53 zone export (BIND and PowerDNS), TTL lowering and cutover change sets."""

from __future__ import annotations

import ast
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from freehold.deploy.migrate import MigrateError

LOW_TTL = 60


def r53(profile: str | None = None) -> Any:
    return boto3.session.Session(profile_name=profile).client("route53")


def find_zone(c: Any, zone: str) -> tuple[str, str]:
    """(zone id, zone name with trailing dot) for a zone given by name or id."""
    name = zone if zone.endswith(".") else zone + "."
    try:
        for page in c.get_paginator("list_hosted_zones").paginate():
            for z in page["HostedZones"]:
                if z["Name"] == name or z["Id"].split("/")[-1] == zone:
                    return z["Id"].split("/")[-1], z["Name"]
    except (ClientError, BotoCoreError) as e:
        raise MigrateError(f"Route 53: {e} — check the credentials and --profile") from None
    raise MigrateError(f"zone {zone!r} not found in Route 53 — check its name "
                       "(freehold migrate discover lists the zones)")


def records(c: Any, zone_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in c.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id):
        out.extend(page["ResourceRecordSets"])
    return out


FQDN_TYPES = ("NS", "CNAME", "PTR")


def value_text(rtype: str, value: str) -> str:
    """A record value as zone-file text: Route 53 names are absolute, so end them in a dot."""
    if value.startswith("{'Value'"):  # moto wraps the SOA value in a dict repr
        value = ast.literal_eval(value)["Value"]
    if rtype in FQDN_TYPES and not value.endswith("."):
        value += "."
    return value


def to_bind(zone_name: str, recs: list[dict[str, Any]]) -> str:
    """A BIND zone file; alias records (no BIND equivalent) become comments to resolve."""
    lines = [f"$ORIGIN {zone_name}", f"$TTL {LOW_TTL * 5}"]
    for r in recs:
        if "AliasTarget" in r:
            lines.append(f"; ALIAS {r['Name']} {r['Type']} -> "
                         f"{r['AliasTarget']['DNSName']} (replace with A records)")
            continue
        for v in r.get("ResourceRecords", []):
            lines.append(f"{r['Name']}\t{r.get('TTL', 300)}\tIN\t{r['Type']}\t"
                         f"{value_text(r['Type'], v['Value'])}")
    return "\n".join(lines) + "\n"


def to_powerdns(zone_name: str, recs: list[dict[str, Any]]) -> dict[str, Any]:
    """The zone as a PowerDNS HTTP API document (POST /api/v1/servers/localhost/zones)."""
    rrsets = [{"name": r["Name"], "type": r["Type"], "ttl": r.get("TTL", 300),
               "records": [{"content": value_text(r["Type"], v["Value"]), "disabled": False}
                           for v in r.get("ResourceRecords", [])]}
              for r in recs if "AliasTarget" not in r]
    return {"name": zone_name, "kind": "Native", "rrsets": rrsets}


def lower_ttl_changes(recs: list[dict[str, Any]], ttl: int = LOW_TTL) -> list[dict[str, Any]]:
    return [{"Action": "UPSERT", "ResourceRecordSet": {**r, "TTL": ttl}}
            for r in recs
            if "AliasTarget" not in r and r["Type"] not in ("NS", "SOA")
            and r.get("TTL", 0) > ttl]


def cutover_changes(recs: list[dict[str, Any]], names: list[str], addresses: list[str],
                    ttl: int = LOW_TTL) -> list[dict[str, Any]]:
    """Point the A records (or aliases) of `names` at the new cluster's addresses."""
    want = {n if n.endswith(".") else n + "." for n in names}
    changes = []
    for r in recs:
        if r["Name"] in want and r["Type"] == "A":
            if "AliasTarget" in r:  # an alias cannot be UPSERTed into a plain A record
                changes.append({"Action": "DELETE", "ResourceRecordSet": r})
            changes.append({"Action": "UPSERT", "ResourceRecordSet": {
                "Name": r["Name"], "Type": "A", "TTL": ttl,
                "ResourceRecords": [{"Value": a} for a in addresses]}})
    return changes


def apply(c: Any, zone_id: str, changes: list[dict[str, Any]], comment: str) -> None:
    for i in range(0, len(changes), 500):  # Route 53 takes at most 1,000 changes a batch
        c.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Comment": comment, "Changes": changes[i:i + 500]})
