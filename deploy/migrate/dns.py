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


# ---- import into roles/dns' zone ---------------------------------------------------------

def relative_name(name: str, zone_name: str) -> str:
    """A Route 53 name relative to the zone ('@' for the zone itself)."""
    origin = zone_name if zone_name.endswith(".") else zone_name + "."
    if name == origin:
        return "@"
    return name[:-len(origin) - 1] if name.endswith("." + origin) else name


def import_plan(spec: Any, zone_name: str, recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What importing the Route 53 zone into the dns role's zone does to each record set:
    `keep` (records the platform does not own, such as MX and TXT, written as they were to
    `roles.dns.records`), `replace` (the platform's own names and the name servers: the role
    answers them, health-checked), `drop` (SOA and the zone's NS: the role's dns servers), or
    `skip` (no zone-file form, e.g. an alias elsewhere: `note` says what to do)."""
    from freehold.roles.dns.config import EXTRA_TYPES, names, owned_names, site_vips

    owned = owned_names(spec)
    vips = ", ".join(site_vips(spec))
    out = []
    for r in recs:
        rel, kind = relative_name(r["Name"], zone_name), r["Type"]
        values = [value_text(kind, v["Value"]) for v in r.get("ResourceRecords", [])]
        if "AliasTarget" in r:
            values = [f"ALIAS {r['AliasTarget']['DNSName']}"]
        row = {"name": rel, "type": kind, "ttl": r.get("TTL"), "values": values, "note": ""}
        if kind == "SOA" or (kind == "NS" and rel == "@"):
            row.update(action="drop", note="the dns role's own (its dns servers)")
        elif kind in ("A", "AAAA", "CNAME") and rel in owned:
            row.update(action="replace", note=f"health-checked: {vips}"
                       if rel in names(spec) else "a name server of the dns role")
        elif "AliasTarget" in r:
            row.update(action="skip", note="a Route 53 alias has no zone-file form: add the "
                                           "address records it points at to the records file")
        elif kind not in EXTRA_TYPES:
            row.update(action="skip", note=f"type {kind} is not kept: add it by hand if needed")
        else:
            row.update(action="keep")
        out.append(row)
    return out


def records_text(zone_name: str, plan: list[dict[str, Any]], source: str) -> str:
    """The `roles.dns.records` file: the kept record sets as zone-file lines."""
    lines = [f"; Records of {zone_name} the platform does not own, kept by freehold (roles/dns)",
             f"; imported from {source} by `freehold migrate dns --import`; edit freely."]
    for row in plan:
        if row["action"] == "keep":
            lines += [f"{row['name']}\t{row['ttl'] or 300}\tIN\t{row['type']}\t{v}"
                      for v in row["values"]]
    return "\n".join(lines) + "\n"
