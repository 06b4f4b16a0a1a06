"""The capacity model: a hand calculation, monotonicity, sources, measurement files, emitted
specs that pass the placement rules, and the 300-server production example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from freehold.deploy.capacity import (
    CapacityProfileError,
    app_cores_for,
    load_profile,
    parse_accounts,
    plan_for,
)
from freehold.deploy.capacity.emit import spec_doc
from freehold.deploy.capacity.inputs import CAPACITY_FIELDS, Input
from freehold.deploy.capacity.layout import n_plus_one
from freehold.deploy.capacity.model import CapacityPlan, plan_capacity
from freehold.deploy.spec import load_spec, parse_spec
from freehold.deploy.spec.models import ClusterSpec, Server
from freehold.deploy.spec.placement import check_placement, redis_layout, survival

ROOT = Path(__file__).resolve().parents[2]

HAND = """\
dau_ratio: {value: 0.5, source: "t-dau"}
peak_to_average: {value: 2, source: "t-peak"}
actions_per_dau_per_day:
  source: "t-mix"
  home_feed: 80
  post: 2
  image_upload: 1
think_time_s: {min: 1, max: 3, source: "t-think"}
zipf_s: {value: 1.0, source: "t-zipf"}
app_rps_per_core: {value: 100, source: "t-app"}
app_headroom: {value: 0.5, source: "t-util"}
capacity:
  surge_peak_factor: {value: 1.25, source: s}
  fanout_per_post: {value: 100, source: s}
  fanout_inserts_per_core: {value: 1000, source: s}
  worker_utilisation: {value: 0.5, source: s}
  timeline_cached_ratio: {value: 0.5, source: s}
  timeline_bytes: {value: 8000, source: s}
  redis_bytes_per_dau: {value: 1000, source: s}
  redis_cpu_ms_per_request: {value: 0.2, source: s}
  redis_cpu_us_per_fanout_insert: {value: 100, source: s}
  redis_utilisation: {value: 0.5, source: s}
  redis_memory_fraction: {value: 0.25, source: s}
  redis_replicas: {value: 1, source: s}
  redis_cores_per_node: {value: 2, source: s}
  redis_net_bytes_per_request: {value: 1000, source: s}
  pg_cpu_ms_per_request: {value: 1, source: s}
  pg_utilisation: {value: 0.5, source: s}
  pg_bytes_per_post: {value: 1000, source: s}
  pg_bytes_per_account: {value: 5000, source: s}
  history_posts_per_account: {value: 10, source: s}
  storage_horizon_months: {value: 10, source: s}
  account_growth_per_month: {value: 0, source: s}
  pg_disk_fraction: {value: 0.5, source: s}
  media_bytes_per_image: {value: 100000, source: s}
  media_copies: {value: 2, source: s}
  media_disk_fraction: {value: 0.5, source: s}
  backup_copies: {value: 2, source: s}
  lb_rps_per_core: {value: 1000, source: s}
  lb_utilisation: {value: 0.5, source: s}
  pgbouncer_per_site: {value: 1, source: s}
  etcd_members: {value: 3, source: s}
  monitoring_servers: {value: 2, source: s}
  dns_servers: {value: 1, source: s}
  generator_cores_per_1000_rps: {value: 0.1, source: s}
  server_classes:
    general: {cores: 8, ram_gib: 16, disk_gib: 1000,
              price_per_month: {value: 100, currency: EUR, source: "t-price"}}
    storage: {cores: 4, ram_gib: 16, disk_gib: 20000,
              price_per_month: {value: 300, currency: EUR, source: "t-price"}}
  role_class: {media: storage, backup: storage}
layout:
  providers: [{name: p1, kind: owned}, {name: p2, kind: rented}, {name: p3, kind: cloud}]
  sites:
    - {name: a, provider: p1, network: 10.1.0.0/16}
    - {name: b, provider: p2, network: 10.2.0.0/16}
    - {name: c, provider: p3, network: 10.3.0.0/16}
  postgres: {primary_site: a, standby_site: b}
"""
A = 1_728_000  # 864,000 daily actives: round figures per second


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    p = tmp_path / "hand.yaml"
    p.write_text(HAND)
    return p


def test_model_against_a_hand_calculation(hand: Path) -> None:
    plan = plan_for(A, hand)
    assert plan.daily_actives == 864_000
    # 84 requests per daily active a day (80 feed + 2 posts + 1 image upload = 2 requests)
    assert plan.average_rps == pytest.approx(864_000 * 84 / 86_400)  # 840
    assert plan.peak_rps == pytest.approx(1680)
    assert plan.planned_rps == pytest.approx(2100)  # x1.25 surge
    ep = dict(plan.endpoints)
    assert ep["GET /timelines/home"] == pytest.approx(864_000 * 80 / 86_400 * 2 * 1.25)
    assert ep["POST /media"] == pytest.approx(864_000 / 86_400 * 2 * 1.25)
    assert plan.rates["posts_per_s"] == pytest.approx(50)
    assert plan.rates["fanout_inserts_per_s"] == pytest.approx(5000)
    # 2,100 req/s x 0.2 ms + 5,000 inserts/s x 100 µs
    assert plan.rates["redis_cpu_cores"] == pytest.approx(0.42 + 0.5)
    assert plan.rates["pg_cpu_cores"] == pytest.approx(2.1)  # 2,100 req/s x 1 ms
    n = plan.servers_per_role()
    # app: 2100 / (100 x 0.5) = 42 cores -> 6 x 8-core; N+1 over 3 sites -> 9 (3 a site)
    assert n["app"] == 9 and plan.roles["app"].per_site == {"a": 3, "b": 3, "c": 3}
    # worker: 5000 / (1000 x 0.5) = 10 cores -> 2 -> N+1 -> 3; on the app servers it would
    # make them 42 + 10 = 52 cores -> 7 -> N+1 -> 11 (> 9): it keeps servers of its own
    assert n["worker"] == 3 and plan.roles["worker"].on == {} and plan.roles["worker"].own == 3
    # lb: 4.2 cores -> 1 -> N+1 -> 2, but a keepalived pair in each of 3 sites -> 6
    assert n["lb"] == 6 and n["pgbouncer"] == 3
    # pgbouncer (1 a site) on the load balancers (2 a site), said with its reason
    assert plan.roles["pgbouncer"].on == {"lb": {"a": 1, "b": 1, "c": 1}}
    assert plan.roles["pgbouncer"].own == 0 and "HAProxy" in plan.roles["pgbouncer"].why
    # redis: 7.776e9 bytes / 4 GiB usable -> 2; 0.92 cores / 50% -> 2; at least 3 masters
    assert plan.storage["redis_gib"] == pytest.approx((864_000 * 8000 + 864_000 * 1000) / 2**30)
    # 3 masters x 2 nodes = 6 nodes; a node gets 2 of the 8 cores (4 a server). 2 servers x 3
    # nodes or 3 x 2 hold 7.24 GiB / 3 = 2.4 GiB a node: 1 fits the 4 GiB usable -> no;
    # 4 servers x 2 nodes (4 masters, 1.8 GiB each): site a holds 2 of the 4 masters -> its loss
    # leaves no majority; 5 servers x 2 nodes: 5 masters (a 2, b 2, c 1), 1.45 GiB each -> 5
    assert n["redis"] == 5 and plan.roles["redis"].nodes_per_server == 2
    assert plan.roles["redis"].masters == 5
    assert plan.roles["redis"].per_site == {"a": 2, "b": 2, "c": 1}
    # postgres: 2,100 req/s x 1 ms / 50% = 4.2 cores -> 1 reader -> N+1 -> 2 readers + primary
    assert n["postgres"] == 3
    assert plan.roles["postgres"].per_site == {"a": 1, "b": 1, "c": 1}
    posts_then = A * 10 + 864_000 * 2 * 30.44 * 10
    assert plan.storage["pg_gb_at_horizon"] == pytest.approx((posts_then * 1000 + A * 5000) / 1e9)
    assert plan.storage["pg_gb_now"] == pytest.approx((A * 10 * 1000 + A * 5000) / 1e9)
    media_then = A * 10 * 0.5 * 1e5 + 864_000 * 30.44 * 1e5 * 10
    assert plan.storage["media_tb_at_horizon"] == pytest.approx(media_then / 1e12)
    # media: x2 copies / (20,000 GiB x 0.5) -> 5.06 -> 6
    assert n["media"] == 6 and n["backup"] == 2
    # one DNS server asked for, three planned: the placement rule's minimum (3 in 2 providers)
    assert (n["etcd"], n["monitoring"], n["dns"], n["loadgen"]) == (3, 2, 3, 2)
    # etcd's 3 members on the 3 dns servers (one a site, one a provider); loadgen not counted
    assert plan.roles["etcd"].on == {"dns": {"a": 1, "b": 1, "c": 1}}
    assert not plan.roles["loadgen"].production and plan.roles["loadgen"].own == 0
    # own: app 9, worker 3, lb 6, redis 5, postgres 3, monitoring 2, dns 3 (general: 31);
    # media 6, backup 2 (storage: 8)
    assert plan.total_servers == 39
    assert plan.cost is not None and plan.cost["per_month"] == 31 * 100 + 8 * 300
    assert plan.cost["currency"] == "EUR"


def test_n_plus_one_leaves_n_after_losing_the_biggest_site() -> None:
    for sites in (2, 3, 4, 5):
        for n in range(1, 40):
            t = n_plus_one(n, sites)
            assert t - -(-t // sites) >= n
            assert t == n or (t - 1) - -(-(t - 1) // sites) < n  # the fewest
    assert n_plus_one(5, 1) == 5 and n_plus_one(0, 4) == 0


def test_monotonic_in_accounts() -> None:
    prof = load_profile()
    plans = [plan_capacity(a, prof) for a in (10_000, 300_000, 1_000_000, 4_000_000,
                                              10_000_000, 30_000_000, 100_000_000)]
    for small, big in zip(plans, plans[1:], strict=False):
        assert big.planned_rps > small.planned_rps
        assert big.storage["pg_gb_at_horizon"] > small.storage["pg_gb_at_horizon"]
        assert big.storage["redis_gib"] > small.storage["redis_gib"]
        assert big.storage["media_tb_at_horizon"] > small.storage["media_tb_at_horizon"]
        for role, need in small.roles.items():
            assert big.roles[role].servers >= need.servers, role
        assert big.total_servers >= small.total_servers
    assert plans[-1].total_servers > plans[0].total_servers
    assert plans[-1].roles["app"].servers > plans[3].roles["app"].servers
    # more headroom never means fewer servers
    assert plan_capacity(10_000_000, prof, 3).total_servers > plans[4].total_servers


def test_every_input_has_a_source() -> None:
    plan = plan_for(10_000_000)
    names = {i.name for i in plan.inputs}
    assert set(CAPACITY_FIELDS) <= names
    assert {"dau_ratio", "peak_to_average", "actions_per_dau.home_feed", "app_rps_per_core",
            "app_headroom"} <= names
    for i in plan.inputs:
        assert i.source.strip() and i.kind in ("measured", "cited"), i
        if i.kind == "cited":
            assert "measured by" not in i.source
    doc = plan.to_json()
    assert all(x["source"] for x in doc["inputs"])
    # production servers: each role's own (co-located roles and load generators add none)
    assert doc["servers"] == sum(r["own_servers"] for r in doc["roles"].values())
    assert doc["servers"] < sum(doc["servers_per_role"].values())


@pytest.mark.parametrize(("old", "new", "needle"), [
    ("fanout_per_post: {value: 100, source: s}", "fanout_per_post: 100",
     "capacity.fanout_per_post: 100 has no source"),
    ("  fanout_per_post: {value: 100, source: s}\n", "",
     "capacity.fanout_per_post: missing"),
    ("fanout_per_post: {value: 100, source: s}", "fanout_per_post: {value: 100}",
     "capacity.fanout_per_post.source: missing"),
    ("redis_utilisation: {value: 0.5", "redis_utilisation: {value: 5",
     "capacity.redis_utilisation.value: 5 is not in (0, 1]"),
    ("  lb_utilisation:", "  lb_utilization: {value: 1, source: s}\n  lb_utilisation:",
     "capacity.lb_utilization: unknown input"),
    ("cores: 8,", "cores: eight,", "capacity.server_classes.general.cores"),
    ("provider: p3, network", "provider: p9, network", "layout.sites[2].provider"),
    ("app_rps_per_core: {value: 100, source: \"t-app\"}\n", "", "app_rps_per_core: missing"),
    ("peak_to_average:", "peak_2_average:", "peak_to_average: missing"),
    ("dau_ratio: {", "dau_ratio: [{", "not valid YAML"),
    ("pg_cpu_ms_per_request: {value: 1, source: s}",
     "pg_queries_per_request: {value: 1, source: s}",
     "capacity.pg_queries_per_request: no longer an input — PostgreSQL is sized by "
     "pg_cpu_ms_per_request"),
    ("pg_cpu_ms_per_request: {value: 1, source: s}",
     "pg_cpu_ms_per_request: {value: 1, source: s}\n  pg_queries_per_core: {value: 9, source: s}",
     "remove pg_queries_per_request and pg_queries_per_core and add pg_cpu_ms_per_request"),
    ("  pg_cpu_ms_per_request: {value: 1, source: s}\n", "",
     "capacity.pg_cpu_ms_per_request: missing"),
    ("pg_cpu_ms_per_request: {value: 1,", "pg_cpu_ms_per_request: {value: 0,",
     "capacity.pg_cpu_ms_per_request.value: 0 must be > 0"),
    ("redis_cpu_ms_per_request: {value: 0.2, source: s}",
     "redis_ops_per_request: {value: 2, source: s}",
     "capacity.redis_ops_per_request: no longer an input — Redis is sized by "
     "redis_cpu_ms_per_request (Redis CPU per app request, in ms) and "
     "redis_cpu_us_per_fanout_insert (Redis CPU per fan-out insert, in µs)"),
    ("redis_cpu_us_per_fanout_insert: {value: 100, source: s}",
     "redis_cpu_us_per_fanout_insert: {value: 100, source: s}\n"
     "  redis_ops_per_core: {value: 100000, source: s}",
     "remove redis_ops_per_request, redis_ops_per_fanout_insert and redis_ops_per_core and add "
     "redis_cpu_ms_per_request and redis_cpu_us_per_fanout_insert: {value: N, source: '...'} "
     "each"),
    ("redis_cpu_us_per_fanout_insert: {value: 100, source: s}",
     "redis_ops_per_fanout_insert: {value: 1, source: s}",
     "capacity.redis_ops_per_fanout_insert: no longer an input — Redis is sized by"),
    ("  redis_cpu_us_per_fanout_insert: {value: 100, source: s}\n", "",
     "capacity.redis_cpu_us_per_fanout_insert: missing"),
    ("redis_cpu_ms_per_request: {value: 0.2,", "redis_cpu_ms_per_request: {value: 0,",
     "capacity.redis_cpu_ms_per_request.value: 0 must be > 0"),
])
def test_profile_problems_name_the_field(tmp_path: Path, old: str, new: str,
                                         needle: str) -> None:
    assert old in HAND
    p = tmp_path / "bad.yaml"
    p.write_text(HAND.replace(old, new))
    with pytest.raises(CapacityProfileError) as e:
        plan_for(1_000_000, p)
    assert needle in str(e.value) and "\n" not in str(e.value)


def measured_profile(tmp_path: Path, cal: Path) -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(HAND.replace(
        'app_rps_per_core: {value: 100, source: "t-app"}',
        f'app_rps_per_core: {{value: 100, source: "t-app", measured: {{file: "{cal}", '
        'field: rps_per_core, by: freehold loadtest calibrate}}'))
    return p


def test_calibration_file_is_used_when_present(tmp_path: Path) -> None:
    cal = tmp_path / "calibration.json"
    prof = measured_profile(tmp_path, cal)
    before = plan_for(A, prof)
    i = next(x for x in before.inputs if x.name == "app_rps_per_core")
    assert i.kind == "cited" and i.value == 100 and "no measurement yet" in i.source
    cal.write_text(json.dumps({"rps_per_server": 1000.0, "rps_per_core": 250.0,
                               "measured_at": "2026-11-20T10:00:00+00:00"}))
    after = plan_for(A, prof)
    i = next(x for x in after.inputs if x.name == "app_rps_per_core")
    assert i.kind == "measured" and i.value == 250
    assert i.source.startswith("measured by freehold loadtest calibrate on 2026-11-20")
    assert str(cal) in i.source and i.measured_at == "2026-11-20T10:00:00+00:00"
    # 2100 / (250 x 0.5) = 16.8 cores -> 3 x 8-core -> N+1 over 3 sites -> 5
    assert after.roles["app"].servers == 5 < before.roles["app"].servers
    # the load tests' scale factor reads the same measurement
    cores, source = app_cores_for(A, prof)
    assert cores == pytest.approx(1680 / (250 * 0.5)) and "measured by" in source
    cal.write_text("{not json")
    broken = next(x for x in plan_for(A, prof).inputs if x.name == "app_rps_per_core")
    assert broken.kind == "cited" and "not readable JSON" in broken.source


def test_postgres_follows_its_cpu_per_request(tmp_path: Path) -> None:
    def plan(ms: float) -> CapacityPlan:
        p = tmp_path / f"pg-{ms:g}.yaml"
        p.write_text(HAND.replace("pg_cpu_ms_per_request: {value: 1,",
                                  f"pg_cpu_ms_per_request: {{value: {ms},"))
        return plan_for(A, p)

    one, two, four = plan(1), plan(2), plan(4)
    # PostgreSQL CPU busy at the planned 2,100 req/s, then read cores at 50% utilisation
    assert [x.rates["pg_cpu_cores"] for x in (one, two, four)] == pytest.approx([2.1, 4.2, 8.4])
    assert "2,100 req/s x 1 ms CPU / 50% = 4.2 cores -> 1 x 8-core" in one.roles["postgres"].basis
    assert "x 2 ms CPU / 50% = 8.4 cores -> 2 x 8-core" in two.roles["postgres"].basis
    assert "x 4 ms CPU / 50% = 16.8 cores -> 3 x 8-core" in four.roles["postgres"].basis
    # readers plus the primary, N+1 over 3 sites (1 + 1 -> 3, 2 + 1 -> 5, 3 + 1 -> 6): after
    # losing the biggest site the primary and the readers needed are left (4 members spread
    # 2/1/1 would leave 1 reader of the 2 needed)
    assert [x.roles["postgres"].servers for x in (one, two, four)] == [3, 5, 6]
    for x in (one, two, four):
        assert x.losses[0]["roles"]["postgres"]["ok"], x.losses[0]["roles"]["postgres"]
    # nothing else depends on it
    for role in ("app", "worker", "lb", "redis", "media", "backup"):
        assert one.roles[role].servers == two.roles[role].servers == four.roles[role].servers


def measured_input(name: str, value: float, *entries: str) -> str:
    """A profile input with a cited fallback and `measured:` entries (YAML flow maps)."""
    return "\n".join([f"{name}:", f"    value: {value:g}",
                      '    source: "estimate until measured"', "    measured:",
                      *(f"      - {{{e}}}" for e in entries)])


def mix_then_home_feed(name: str, value: float, cal: Path, bench: Path, server: str) -> str:
    """An input measured by the calibration's whole mix, else by the home-feed benchmark."""
    return measured_input(
        name, value,
        f'file: "{cal}", field: calibration.{server}_cpu_ms_per_request, by: calibrate',
        f'file: "{bench}", field: home_feed.cpu_ms_per_request.{server}, by: hotpaths, '
        "note: the home feed alone")


def test_measured_pg_cpu_per_request_wins_over_the_cited_value(tmp_path: Path) -> None:
    cal, bench = tmp_path / "locust_bench.json", tmp_path / "app_hotpaths.json"
    p = tmp_path / "m.yaml"
    p.write_text(HAND.replace(
        "pg_cpu_ms_per_request: {value: 1, source: s}",
        mix_then_home_feed("pg_cpu_ms_per_request", 1, cal, bench, "postgres")))

    def pg() -> tuple[Input, int]:
        plan = plan_for(A, p)
        return (next(i for i in plan.inputs if i.name == "pg_cpu_ms_per_request"),
                plan.roles["postgres"].servers)

    i, servers = pg()
    assert i.kind == "cited" and i.value == 1 and i.unit == "ms" and servers == 3
    assert "locust_bench.json absent" in i.source and "app_hotpaths.json absent" in i.source
    bench.write_text(json.dumps({"home_feed": {"cpu_ms_per_request": {"app": 1.2,
                                                                      "postgres": 2.0}},
                                 "measured_at": "2026-11-30T22:00:00+00:00"}))
    i, servers = pg()
    assert i.kind == "measured" and i.value == 2.0 and servers == 5
    assert "(home_feed.cpu_ms_per_request.postgres) — the home feed alone" in i.source
    # a calibration without the field yet (an older run): still the benchmark's figure
    cal.write_text(json.dumps({"calibration": {"rps_per_core": 331.0}}))
    i, _ = pg()
    assert i.value == 2.0 and str(bench) in i.source
    cal.write_text(json.dumps({"calibration": {"postgres_cpu_ms_per_request": 4.0},
                               "measured_at": "2026-12-01T10:00:00Z"}))
    i, servers = pg()
    assert i.kind == "measured" and i.value == 4.0 and servers == 6
    assert i.source.startswith("measured by calibrate on 2026-12-01")
    assert "calibration.postgres_cpu_ms_per_request" in i.source


def shards(plan: CapacityPlan) -> tuple[int, int, int, int]:
    """(masters needed, masters packed, redis servers, nodes per server); the masters needed
    read from the plan's own account of them ("masters = max(...) = N")."""
    r = plan.roles["redis"]
    needed = r.basis.split("masters = max(")[1].split(") = ")[1].split(",")[0].split(" ")[0]
    return int(needed), r.masters, r.servers, r.nodes_per_server


def test_redis_masters_follow_its_measured_cpu(tmp_path: Path) -> None:
    def plan(ms: float, us: float = 100) -> CapacityPlan:
        p = tmp_path / f"redis-{ms:g}-{us:g}.yaml"
        p.write_text(HAND.replace("redis_cpu_ms_per_request: {value: 0.2,",
                                  f"redis_cpu_ms_per_request: {{value: {ms},")
                     .replace("redis_cpu_us_per_fanout_insert: {value: 100,",
                              f"redis_cpu_us_per_fanout_insert: {{value: {us},"))
        return plan_for(A, p)

    low, one, two = plan(0.2), plan(1), plan(2)
    # Redis CPU busy: 2,100 req/s x ms + 5,000 fan-out inserts/s x 100 µs (0.5 core)
    assert [x.rates["redis_cpu_cores"] for x in (low, one, two)] == pytest.approx(
        [0.92, 2.6, 4.7])
    # 0.92 / 50% -> 2 masters by load and 2 by memory: the floor of 3 decides
    assert "memory 2, load 2) = 3, x (1 + 1 replica)" in low.roles["redis"].basis
    # then load, not memory: 2.6 / 50% = 5.2 -> 6 masters; 4.7 / 50% = 9.4 -> 10
    assert "x 1 ms + 5,000 fan-out inserts/s x 100 µs) CPU / 50% = 5.2 cores -> 6 masters" \
        in one.roles["redis"].basis
    assert "masters = max(3, memory 2, load 6) = 6" in one.roles["redis"].basis
    assert "= 9.4 cores -> 10 masters" in two.roles["redis"].basis
    # the shards needed (3, 6, 10) packed (see packing.py): the fewest servers whose nodes fit
    # and survive; masters then fill the nodes (3 -> 5 on 5 x 2, 6 on 4 x 3, 10 on 5 x 4)
    assert [shards(x) for x in (low, one, two)] == [(3, 5, 5, 2), (6, 6, 4, 3), (10, 10, 5, 4)]
    assert low.storage["redis_gib"] == one.storage["redis_gib"] == two.storage["redis_gib"]
    # the fan-out term counts too: 0.42 + 5,000 x 1,000 µs = 5.42 cores / 50% -> 11 masters
    fan = plan(0.2, 1000)
    assert fan.rates["redis_cpu_cores"] == pytest.approx(5.42)
    assert shards(fan) == (11, 12, 6, 4)
    # nothing else depends on it
    for role in ("app", "worker", "lb", "postgres", "media", "backup"):
        assert low.roles[role].servers == two.roles[role].servers == fan.roles[role].servers


def test_redis_masters_stay_spread_over_providers(tmp_path: Path) -> None:
    # 2,100 x 0.5 ms + 0.5 = 1.55 cores / 50% -> 4 masters; over 3 providers one would hold 2
    # (half): 5
    p = tmp_path / "spread.yaml"
    p.write_text(HAND.replace("redis_cpu_ms_per_request: {value: 0.2,",
                              "redis_cpu_ms_per_request: {value: 0.5,"))
    plan = plan_for(A, p)
    assert "masters = max(3, memory 2, load 4) = 4 -> 5 so that no provider holds half of " \
        "them, x (1 + 1 replica)" in plan.roles["redis"].basis
    assert shards(plan) == (4, 6, 4, 3)  # 4, spread to 5, packed 6 on 4 x 3


def test_measured_redis_cpu_wins_over_the_cited_values(tmp_path: Path) -> None:
    cal, bench = tmp_path / "locust_bench.json", tmp_path / "app_hotpaths.json"
    p = tmp_path / "m.yaml"
    p.write_text(HAND.replace(
        "redis_cpu_ms_per_request: {value: 0.2, source: s}",
        mix_then_home_feed("redis_cpu_ms_per_request", 0.2, cal, bench, "redis")).replace(
        "redis_cpu_us_per_fanout_insert: {value: 100, source: s}", measured_input(
            "redis_cpu_us_per_fanout_insert", 100,
            f'file: "{bench}", field: fanout_cluster.redis_cpu_us_per_insert, by: cluster',
            f'file: "{bench}", field: redis_cpu_us_per_insert, by: single')))

    def redis() -> tuple[Input, Input, CapacityPlan]:
        plan = plan_for(A, p)
        got = {i.name: i for i in plan.inputs}
        return got["redis_cpu_ms_per_request"], got["redis_cpu_us_per_fanout_insert"], plan

    ms, us, plan = redis()
    assert ms.kind == us.kind == "cited" and (ms.value, us.value) == (0.2, 100)
    assert ms.unit == "ms" and us.unit == "µs"
    assert "locust_bench.json absent" in ms.source and "app_hotpaths.json absent" in ms.source
    assert shards(plan)[0] == 3
    # the benchmark's home feed and its single-Redis fan-out
    bench.write_text(json.dumps({"home_feed": {"cpu_ms_per_request": {"redis": 1.0}},
                                 "redis_cpu_us_per_insert": 200.0,
                                 "measured_at": "2026-11-30T22:00:00+00:00"}))
    ms, us, plan = redis()
    assert ms.kind == us.kind == "measured" and (ms.value, us.value) == (1.0, 200.0)
    assert "(home_feed.cpu_ms_per_request.redis) — the home feed alone" in ms.source
    assert "measured by single" in us.source
    # 2.1 + 1.0 cores / 50% = 6.2 -> 7 masters
    assert plan.rates["redis_cpu_cores"] == pytest.approx(3.1)
    assert shards(plan)[0] == 7
    # the cluster's fan-out figure first when the file holds it
    bench.write_text(json.dumps({"home_feed": {"cpu_ms_per_request": {"redis": 1.0}},
                                 "redis_cpu_us_per_insert": 200.0,
                                 "fanout_cluster": {"redis_cpu_us_per_insert": 400.0}}))
    _, us, plan = redis()
    assert us.value == 400.0 and "fanout_cluster.redis_cpu_us_per_insert" in us.source
    # then the calibration's whole mix over the home feed: 2,100 x 2 ms + 5,000 x 400 µs
    cal.write_text(json.dumps({"calibration": {"redis_cpu_ms_per_request": 2.0},
                               "measured_at": "2026-12-01T10:00:00Z"}))
    ms, _, plan = redis()
    assert ms.kind == "measured" and ms.value == 2.0
    assert ms.source.startswith("measured by calibrate on 2026-12-01")
    assert plan.rates["redis_cpu_cores"] == pytest.approx(6.2)
    assert shards(plan)[0] == 13  # 12.4 cores -> 13 masters


def check(doc: dict) -> tuple[list[str], dict]:
    spec = parse_spec(doc)
    errors, _ = check_placement(spec)
    return errors, survival(spec)


@pytest.mark.parametrize("accounts", [100_000, 4_000_000, 10_000_000, 40_000_000])
def test_emitted_spec_passes_the_placement_rules(accounts: int) -> None:
    plan = plan_for(accounts)
    doc = spec_doc(plan, "sized")
    spec = parse_spec(doc)
    assert len(spec.servers) == plan.total_servers
    for role, need in plan.roles.items():
        want = need.servers if need.production else 0  # load generators: not production
        assert len(spec.servers_with_role(role)) == want, role
    errors, surv = check(doc)
    assert errors == []
    assert surv["any_site"] and surv["any_provider"], surv["line"]
    assert len(spec.providers) >= 3 and len(spec.sites) >= 4
    check_packing(plan, spec)


def check_packing(plan: CapacityPlan, spec: ClusterSpec) -> None:
    """The packing rules on a plan and the spec emitted from it."""
    redis = plan.roles["redis"]
    k = redis.nodes_per_server
    assert spec.role_settings("redis").get("nodes_per_server", 1) == k
    shards = redis_layout(spec)
    assert len(shards) == redis.masters == spec.role_settings("redis")["masters"]
    assert sum(len(sh.nodes) for sh in shards) == redis.servers * k  # every node in a shard
    for sh in shards:  # no master with its replica on one server, nor in one site
        for r in sh.replicas:
            assert r.name != sh.master.name and r.site != sh.master.site, sh
    node_gib = plan.storage["redis_gib"] / redis.masters
    fraction = next(i.value for i in plan.inputs if i.name == "redis_memory_fraction")
    per_node = next(i.value for i in plan.inputs if i.name == "redis_cores_per_node")
    for s in spec.servers_with_role("redis"):
        assert k * per_node <= s.cores and k <= s.cores / 2  # a core pair per node
        assert k * node_gib <= s.ram_gib * fraction  # memory fits
    # each co-location stated, with its reason, and matching the spec
    def planned(server: Server) -> list[str]:  # its roles but the implicit base and mesh
        return [r for r in server.roles if r in plan.roles]

    for s in spec.servers:
        for guest in planned(s)[1:]:
            need = plan.roles[guest]
            assert planned(s)[0] in need.on and need.why, (s.name, guest)
            assert need.own == 0
    for need in plan.roles.values():
        for host, per_site in need.on.items():
            for site, n in per_site.items():
                carry = [x for x in spec.servers_with_role(need.role)
                         if x.site == site and planned(x)[0] == host]
                assert len(carry) == n, (need.role, host, site)
    # what is left after losing the biggest site and each provider, with a verdict
    lost = [d["lost"] for d in plan.losses]
    assert lost[0].startswith("site ") and "biggest" in lost[0]
    assert [x.split(" ")[1] for x in lost[1:]] == [p.name for p in spec.providers]
    assert plan.losses[0]["ok"], plan.losses[0]["verdict"]  # N+1 by site: carries the peak
    for d in plan.losses:
        line = next(n for n in plan.notes if n.startswith(f"losing {d['lost']} leaves "))
        assert line.endswith(d["verdict"]) and ("does NOT" in line) != d["ok"]
        assert set(d["roles"]) == {r for r, n in plan.roles.items() if n.production}


def test_hand_layout_spec_on_three_sites(hand: Path) -> None:
    plan = plan_for(A, hand)
    doc = spec_doc(plan, "hand")
    errors, surv = check(doc)
    assert errors == [] and surv["any_site"] and surv["any_provider"], surv["line"]
    check_packing(plan, parse_spec(doc))


def test_production_example_is_the_packed_plan() -> None:
    """inventories/production-example.yaml: the 10 M plan (<= 50 servers, N+1 by site),
    packed; inventories/production-300.yaml: the same sized for headroom (>= 300 servers)."""
    path = ROOT / "inventories" / "production-example.yaml"
    spec = load_spec(path)
    assert len(spec.servers) <= 50
    assert len(spec.providers) >= 3 and len(spec.sites) >= 4
    assert check_placement(spec)[0] == []
    surv = survival(spec)
    assert surv["any_site"] and surv["any_provider"], surv["line"]
    head = path.read_text().split("\nname:")[0]
    assert "GENERATED by: freehold capacity --accounts 10M --name production-example" in head
    for said in ("worker CO-LOCATED on app", "pgbouncer CO-LOCATED on lb",
                 "etcd CO-LOCATED on dns + monitoring", "nodes per server",
                 "Note: losing site", "Note: losing provider"):
        assert said in " ".join(head.replace("#", " ").split()), said
    assert spec.role_settings("redis")["nodes_per_server"] > 1
    assert not spec.servers_with_role("loadgen")  # not production
    big = ROOT / "inventories" / "production-300.yaml"
    spec = load_spec(big)
    assert len(spec.servers) >= 300
    assert check_placement(spec)[0] == [] and survival(spec)["any_provider"]
    assert "--min-servers 300" in big.read_text().split("\n")[0]
    raw = yaml.safe_load(big.read_text())
    assert len(raw["servers"]) < 80  # written with ranges


def test_parse_accounts() -> None:
    assert parse_accounts("10M") == 10_000_000 and parse_accounts("2.5m") == 2_500_000
    assert parse_accounts("250k") == 250_000 and parse_accounts("1500") == 1500
    assert parse_accounts("1B") == 1_000_000_000
    for bad in ("10Q", "", "ten", "-5", "0"):
        with pytest.raises(ValueError):
            parse_accounts(bad)


def test_measurement_list_first_present_wins_and_per_divides(tmp_path: Path) -> None:
    from freehold.deploy.capacity.inputs import measurement

    cal, bench = tmp_path / "calibration.json", tmp_path / "bench.json"
    chain = [{"file": str(cal), "field": "rps_per_core", "by": "calibrate"},
             {"file": str(bench), "field": "home_feed.rps", "per": "app_cores", "by": "bench",
              "note": "home feed only"}]
    got, why = measurement(chain, "x", tmp_path / "p.yaml")
    assert got is None and "calibration.json absent" in why and "bench.json absent" in why
    bench.write_text(json.dumps({"home_feed": {"rps": 300}, "app_cores": 2,
                                 "measured_at": "2026-11-01T00:00:00Z"}))
    got, _ = measurement(chain, "x", tmp_path / "p.yaml")
    assert got is not None and got.value == 150
    assert "(home_feed.rps / app_cores) — home feed only" in got.source
    cal.write_text(json.dumps({"rps_per_core": 900}))  # no measured_at: the file's date
    got, _ = measurement(chain, "x", tmp_path / "p.yaml")
    assert got is not None and got.value == 900 and got.source.startswith("measured by "
                                                                          "calibrate on 20")


def test_two_providers_plan_ends_and_says_redis_cannot_survive_either(tmp_path: Path) -> None:
    """With two providers no spread keeps every provider under half the Redis masters (the
    spreading loop never ended there: `freehold capacity` hung); the plan says so instead."""
    import threading

    p = tmp_path / "two.yaml"
    two = HAND.replace("provider: p3, network", "provider: p2, network")
    p.write_text(two.replace(", {name: p3, kind: cloud}]", "]"))
    got: list[CapacityPlan] = []
    t = threading.Thread(target=lambda: got.append(plan_for(A, p)), daemon=True)
    t.start()
    t.join(60)
    assert got, "the plan did not end within 60 s"
    assert any("two providers" in n and "redis" in n for n in got[0].notes)
