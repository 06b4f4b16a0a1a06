"""Placement rules, each violated once, and the survival analysis on hand-built clusters."""

from typing import Any

import pytest

from freehold.deploy.spec import parse_spec
from freehold.deploy.spec.placement import (
    check_placement,
    lost_reasons,
    media_failure_domain,
    media_masters,
    postgres_standby_site,
    redis_layout,
    survival,
)
from freehold.deploy.spec.synthetic import large_doc, three_site_doc


def roles(doc: dict[str, Any], name: str, new: list[str]) -> None:
    next(s for s in doc["servers"] if s["name"] == name)["roles"] = new


def errors_of(doc: dict[str, Any]) -> list[str]:
    return check_placement(parse_spec(doc))[0]


def test_the_three_site_cluster_passes_and_survives_everything() -> None:
    spec = parse_spec(three_site_doc())
    assert check_placement(spec) == ([], [])
    surv = survival(spec)
    assert surv["any_site"] and surv["any_provider"]
    assert surv["line"] == "survives: any one site: yes; any one provider: yes"
    assert set(surv["sites"]) == {"a", "b", "c"}
    assert surv["sites"]["a"] == {"ok": True, "servers_lost": 3, "reasons": []}


def test_redis_layout_puts_every_replica_in_another_site() -> None:
    spec = parse_spec(three_site_doc())
    layout = [(sh.master.name, [r.name for r in sh.replicas]) for sh in redis_layout(spec)]
    assert layout == [("a1", ["b2"]), ("b1", ["c2"]), ("c1", ["a2"])]
    big = parse_spec(large_doc())
    shards = redis_layout(big)
    assert len(shards) == 12
    for sh in shards:
        assert len(sh.replicas) == 1
        assert sh.replicas[0].provider != sh.master.provider
    from collections import Counter
    assert Counter(sh.master.provider for sh in shards) == {"owned-dc": 4, "rent-co": 4,
                                                            "cloud-co": 4}


def test_etcd_even_count() -> None:
    doc = three_site_doc()
    roles(doc, "a2", ["redis", "lb", "pgbouncer", "monitoring", "etcd"])
    assert "etcd: 4 members — run an odd number, at least 3 (3 or 5)" in errors_of(doc)


def test_etcd_too_few() -> None:
    doc = three_site_doc()
    roles(doc, "b1", ["postgres", "redis", "media"])
    roles(doc, "c1", ["postgres", "redis", "media"])
    errors = errors_of(doc)
    assert "etcd: 1 members — run an odd number, at least 3 (3 or 5)" in errors
    assert any(e.startswith("etcd: members in 1 site(s) (a)") for e in errors)


def test_etcd_in_two_sites() -> None:
    doc = three_site_doc()
    roles(doc, "c1", ["postgres", "redis", "media"])
    roles(doc, "a2", ["redis", "lb", "pgbouncer", "monitoring", "etcd"])
    (error,) = errors_of(doc)
    assert error.startswith("etcd: members in 2 site(s) (a, b) — spread them over at least 3")


def test_etcd_majority_in_one_site() -> None:
    doc = three_site_doc()
    roles(doc, "a2", ["redis", "lb", "pgbouncer", "monitoring", "etcd"])
    roles(doc, "a3", ["lb", "app", "worker", "etcd"])
    (error,) = errors_of(doc)  # 5 members: a has 3
    assert error.startswith("etcd: site a holds 3 of 5 members — losing it loses quorum")


def test_patroni_needs_etcd() -> None:
    doc = three_site_doc()
    for name in ("a1", "b1", "c1"):
        roles(doc, name, ["postgres", "redis", "media"])
    assert any(e.startswith("etcd: no member, but Patroni") for e in errors_of(doc))


def test_patroni_members_in_one_site_and_missing_standby_site() -> None:
    doc = three_site_doc()
    roles(doc, "b1", ["etcd", "redis", "media"])
    roles(doc, "c1", ["etcd", "redis", "media"])
    roles(doc, "a2", ["redis", "lb", "pgbouncer", "monitoring", "postgres"])
    del doc["roles"]["postgres"]["standby_site"]
    spec = parse_spec(doc)
    assert postgres_standby_site(spec) is None
    errors = check_placement(spec)[0]
    assert errors == [
        "postgres: members only in site a — put Patroni members in at least 2 sites",
        "postgres: no member outside the primary site a for the synchronous standby — add one "
        "in another site",
    ]


def test_standby_site_is_the_primarys() -> None:
    doc = three_site_doc()
    doc["roles"]["postgres"]["standby_site"] = "a"
    (error,) = errors_of(doc)
    assert error.startswith("postgres: standby_site a is the primary's site")


def test_standby_and_primary_sites_need_members() -> None:
    doc = three_site_doc()
    roles(doc, "c1", ["etcd", "redis", "media"])
    doc["roles"]["postgres"] = {"primary_site": "c", "standby_site": "b"}
    assert errors_of(doc) == ["postgres: primary_site c has no postgres member — add one there "
                              "or change roles.postgres.primary_site"]
    doc["roles"]["postgres"] = {"primary_site": "a", "standby_site": "c"}
    assert errors_of(doc) == ["postgres: standby_site c has no postgres member — add one there "
                              "or change roles.postgres.standby_site"]


def test_standby_site_defaults_to_the_first_member_elsewhere() -> None:
    doc = three_site_doc()
    doc["roles"]["postgres"] = {}
    spec = parse_spec(doc)
    assert postgres_standby_site(spec) == "b"
    assert check_placement(spec) == ([], [])


def test_redis_replica_in_its_masters_site() -> None:
    doc = three_site_doc()
    for name in ("c1", "c2"):
        roles(doc, name, [r for r in next(s for s in doc["servers"] if s["name"] == name)["roles"]
                          if r != "redis"])
    roles(doc, "a3", ["lb", "app", "worker", "redis"])
    doc["servers"].append({"name": "a4", "site": "a", "address": "10.0.1.13",
                           "roles": ["redis"]})
    # redis: a1 a2 a3 a4 b1 b2 -> masters a1 b1 a2; only b2 is outside site a (it goes to a2,
    # a4 to b1; a3, on a server of its own, to a1 but in a1's site)
    errors = errors_of(doc)
    assert len(errors) == 1
    assert errors[0].startswith("redis: shard 0 replica a3 is in its master a1's site a")


def test_redis_too_few_masters_and_replicas() -> None:
    doc = three_site_doc()
    for name in ("b2", "c2", "a2"):
        roles(doc, name, ["monitoring"] if name != "b2" else ["lb", "pgbouncer"])
    roles(doc, "a2", ["lb", "pgbouncer", "monitoring"])
    doc["roles"]["redis"] = {"replicas": 1, "masters": 2}
    # three nodes a1 b1 c1: masters a1 b1, one replica for two shards
    assert errors_of(doc) == [
        "redis: 2 master(s) — Redis Cluster needs at least 3 (give 3 × (1 + replicas) servers "
        "the redis role)",
        "redis: shard 1 (master b1) has 0 of 1 replica(s) — add redis servers",
    ]


def test_two_load_balancers_per_serving_site() -> None:
    doc = three_site_doc()
    roles(doc, "b2", ["redis", "pgbouncer"])
    assert errors_of(doc) == ["lb: serving site b has 1 load balancer(s) — give 2 servers there "
                              "the lb role (keepalived pair)"]
    doc = three_site_doc()
    roles(doc, "c3", ["backup", "worker", "loadgen", "app"])  # c now serves, without lbs
    assert errors_of(doc) == ["lb: serving site c has 0 load balancer(s) — give 2 servers there "
                              "the lb role (keepalived pair)"]


def test_media_masters_odd_and_available() -> None:
    doc = three_site_doc()
    doc["roles"]["media"]["masters"] = 2
    assert errors_of(doc) == ["media: 2 SeaweedFS masters — run an odd number (1, 3, 5)"]
    doc["roles"]["media"]["masters"] = 5
    assert "media: roles.media.masters is 5 but only 3 media servers — lower it or add media " \
           "servers" in errors_of(doc)
    assert [s.name for s in media_masters(parse_spec(three_site_doc()))] == ["a1", "b1", "c1"]


def test_single_site_spreading_rules_are_warnings() -> None:
    doc = three_site_doc()
    doc["sites"] = [{"name": "a", "provider": "p1"}]
    for s in doc["servers"]:
        s["site"] = "a"
    doc["roles"] = {"redis": {"replicas": 0}, "media": {"masters": 3}}
    spec = parse_spec(doc)
    errors, warnings = check_placement(spec)
    assert errors == []
    assert any(w.startswith("etcd: members in 1 site(s) (a)") for w in warnings)
    surv = survival(spec)
    assert not surv["any_site"] and not surv["any_provider"]
    assert surv["sites"]["a"]["reasons"] == ["every server is lost (9/9)"]


def two_sites_one_provider() -> dict[str, Any]:
    doc = three_site_doc()
    doc["sites"][1]["provider"] = "p1"  # p1 holds sites a and b
    return doc


def test_provider_with_two_sites_loses_etcd_quorum() -> None:
    spec = parse_spec(two_sites_one_provider())
    surv = survival(spec)
    assert surv["any_site"] is True
    assert surv["any_provider"] is False
    assert surv["providers"]["p3"]["ok"] and surv["providers"]["p2"]["ok"]  # p2 has no servers
    assert surv["providers"]["p1"]["servers_lost"] == 6
    assert surv["providers"]["p1"]["reasons"] == [
        "etcd loses quorum (1/3 left)",
        "postgres cannot elect a primary (Patroni needs etcd quorum)",
        "redis loses its master majority (1/3 masters left, no failover vote)",
        "redis shard 0 loses every copy (a1, b2)",
        "media (SeaweedFS) masters lose quorum (1/3 left)",
        "lb: no server left (0/4)",
        "app: no server left (0/2)",
        "pgbouncer: no server left (0/2)",
    ]
    assert surv["line"].startswith("survives: any one site: yes; any one provider: no — "
                                   "provider p1: etcd loses quorum (1/3 left), ")


def test_lost_reasons_one_at_a_time() -> None:
    spec = parse_spec(three_site_doc())
    assert lost_reasons(spec, set()) == []
    assert lost_reasons(spec, {"a1", "b2"}) == ["redis shard 0 loses every copy (a1, b2)"]
    assert lost_reasons(spec, {"b3", "c3"}) == ["backup: no server left (0/2)"]
    assert lost_reasons(spec, {"a3", "b3"}) == ["app: no server left (0/2)"]
    # primary site a and synchronous standby site b lost together; etcd keeps c1 + ... no:
    reasons = lost_reasons(spec, {s.name for s in spec.servers if s.site in ("a", "b")})
    assert "etcd loses quorum (1/3 left)" in reasons


def test_postgres_primary_and_standby_sites_lost_together() -> None:
    doc = three_site_doc()
    # five etcd members so that losing sites a and b keeps quorum: 2 in a/b, 3 in c
    doc["servers"] += [{"name": f"c{i}", "site": "c", "address": f"10.0.3.{10 + i}",
                        "roles": ["etcd"]} for i in (4, 5)]
    roles(doc, "a2", ["redis", "lb", "pgbouncer", "monitoring"])
    spec = parse_spec(doc)
    lost = {s.name for s in spec.servers if s.site in ("a", "b")}
    reasons = lost_reasons(spec, lost)
    assert "postgres loses primary site a and synchronous standby site b together (no " \
           "promotable standby)" in reasons
    assert not any(r.startswith("etcd") for r in reasons)


def test_media_copies_follow_providers_when_there_are_enough() -> None:
    spec = parse_spec(large_doc())
    assert media_failure_domain(spec) == "provider"
    surv = survival(spec)
    assert surv["any_site"] and surv["any_provider"], surv["line"]
    # media only at rent-co (sites b and c): copies can only be spread over sites
    doc = large_doc()
    for entry in doc["servers"]:
        if entry["roles"] == ["media"] and entry["site"] in ("a", "d"):
            entry["roles"] = ["worker"]
    spec = parse_spec(doc)
    assert media_failure_domain(spec) == "site"
    surv = survival(spec)
    assert "media loses every volume server (0/6 left)" in surv["providers"]["rent-co"]["reasons"]
    # two media sites: one of them holds 2 of the 3 SeaweedFS masters
    assert surv["sites"]["b"]["reasons"] == ["media (SeaweedFS) masters lose quorum (1/3 left)"]
    assert check_placement(spec)[0] == [
        "media: site b holds 2 of 3 SeaweedFS masters — losing it loses quorum; put media "
        "servers in a third site"]


def test_media_copies_lost_when_failure_domains_run_out() -> None:
    spec = parse_spec(three_site_doc())
    assert media_failure_domain(spec) == "provider"
    assert lost_reasons(spec, {"a1", "b1"})[-1] == (
        "media loses volume servers in 2 providers (p1, p2): a volume's 2 copies may all be there")


@pytest.mark.parametrize("site", ["a", "b", "c", "d"])
def test_large_spec_survives_each_site(site: str) -> None:
    spec = parse_spec(large_doc())
    assert lost_reasons(spec, {s.name for s in spec.servers if s.site == site}) == []
