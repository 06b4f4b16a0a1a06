"""The load tests' traffic model, skew, shapes, SLO gates and CLI refusals (no processes)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from freehold.deploy.loadtest.analysis import analyse
from freehold.deploy.loadtest.target import (
    Target,
    TargetError,
    parse_accounts,
    parse_duration,
    resolve_target,
    scale_for,
)
from freehold.loadgen import shapes
from freehold.loadgen.picks import Zipf, first_pause
from freehold.loadgen.slo import EndpointStats, Slo, judge, percentile
from freehold.loadgen.traffic import ProfileError, load_model

ROOT = Path(__file__).resolve().parents[2]

PROFILE = """\
dau_ratio: {value: 0.4, source: "A"}
peak_to_average: {value: 2.5, source: "B"}
actions_per_dau_per_day:
  source: "C"
  home_feed: 40
  profile: 5
  post: {value: 1, source: "D"}
think_time_s: {min: 4, max: 16, source: "E"}
zipf_s: {value: 1.0, source: "F"}
surge_days: {value: 7, source: "G"}
app_rps_per_core: {value: 500, source: "H"}
"""


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    p = tmp_path / "profile.yaml"
    p.write_text(PROFILE)
    return p


def test_model_against_a_hand_calculation(profile: Path) -> None:
    m = load_model(profile)
    assert m.actions_per_day() == 46
    assert m.weights() == pytest.approx({"home_feed": 40 / 46, "profile": 5 / 46,
                                         "post": 1 / 46})
    # a profile view is two requests (the account and its posts)
    assert m.requests_per_action() == pytest.approx((40 + 5 * 2 + 1) / 46)
    # 1 M accounts: 400,000 daily actives x 51 requests a day / 86,400 s x 2.5
    assert m.peak_rps(1_000_000) == pytest.approx(400_000 * 51 / 86_400 * 2.5)
    assert m.think_mean_s == 10
    assert m.actions_per_dau["post"].source == "D"
    assert m.actions_per_dau["home_feed"].source == "C"
    # users for 100 req/s at full think time: each makes 51/46 requests per 10.02 s
    assert m.users_for_rps(100) == 904
    assert {r[0] for r in m.inputs()} >= {"dau_ratio", "actions_per_dau.home_feed", "zipf_s"}


@pytest.mark.parametrize(("text", "needle"), [
    ("dau_ratio: 0.4\n", "dau_ratio: 0.4 has no source"),
    ("dau_ratio: {value: 0.4, source: A}\npeak_to_average: {value: 2, source: B}\n",
     "think_time_s: missing"),
    (PROFILE.replace("  post:", "  dance: 3\n  post:"), "dance: unknown action kind"),
    (PROFILE.replace("dau_ratio:", "dau_ratio: [\n"), "not valid YAML"),
    (PROFILE.replace("value: 0.4", "value: 1.4"), "not in (0, 1]"),
])
def test_profile_problems_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ProfileError) as e:
        load_model(p)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_zipf_a_few_items_draw_most_picks() -> None:
    z = Zipf(list(range(1000)), 1.0, random.Random(3))
    h = sum(1 / r for r in range(1, 1001))
    assert z.share_of_top(10) == pytest.approx(sum(1 / r for r in range(1, 11)) / h)
    draws = [z.pick() for _ in range(20_000)]
    top10 = sum(1 for d in draws if d < 10) / len(draws)
    assert top10 == pytest.approx(z.share_of_top(10), abs=0.02)
    assert draws.count(0) > draws.count(1) > draws.count(5)
    flat = Zipf(list(range(100)), 0.0, random.Random(1))
    assert flat.share_of_top(10) == pytest.approx(0.1)


def test_surge_plan_is_sized_by_the_scale_factor(profile: Path) -> None:
    m = load_model(profile)
    tgt = Target(label="t", url="http://127.0.0.1:1", app_cores=2)
    sc = scale_for(tgt, m, 10_000_000)
    # production: peak of 10 M accounts / 500 req/s per core
    assert sc.production_app_cores == pytest.approx(m.peak_rps(10_000_000) / 500)
    assert sc.factor == pytest.approx(2 / sc.production_app_cores)
    plan = shapes.surge(m, sc, tgt.url, 80, steps=7, max_users=10_000)
    assert [s.accounts for s in plan.steps] == [n * 1_000_000 for n in range(4, 11)]
    assert [s.mark for s in plan.steps] == ["4M", "", "", "", "", "", "10M"]
    for s in plan.steps:
        assert s.target_rps == pytest.approx(m.peak_rps(s.accounts) * sc.factor, rel=1e-3)
    # the whole run is 8 slots of 10 s: the first step has a 10-s lead-in at its load before
    # its own warm-up, so every step measures the same window (10 s less its warm-up)
    first, *rest = plan.steps
    assert first.duration_s == 20 and first.warmup_s == pytest.approx(10 + rest[0].warmup_s)
    for s in rest:
        assert s.duration_s == 10 and 0 < s.warmup_s < s.duration_s
    assert {round(s.duration_s - s.warmup_s, 6) for s in plan.steps} == {
        round(10 - rest[0].warmup_s, 6)}
    assert "lead-in of 10 s" in plan.notes[-1]
    # at the 10 M step the target's cores carry the per-core load the plan assumes
    assert plan.steps[-1].target_rps / 2 == pytest.approx(500, rel=1e-3)
    assert plan.think_scale == 1.0
    tight = shapes.surge(m, sc, tgt.url, 70, steps=7, max_users=50)
    assert tight.think_scale < 1 and tight.steps[-1].users <= 51
    assert plan.step_at(0) == 0 and plan.step_at(19.9) == 0 and plan.step_at(20) == 1
    assert plan.step_at(79.9) == 6 and plan.step_at(80) is None


def test_spike_adds_sign_ups_to_the_mix(profile: Path) -> None:
    m = load_model(profile)
    sc = shapes.Scale(0.01, 1, 100, 10_000_000, "test")
    plan = shapes.spike(m, sc, "http://x", 40)
    before, flood, after = plan.steps
    assert before.weights is None and after.weights is None
    assert flood.weights is not None and flood.weights["signup"] > 0
    assert sum(flood.weights.values()) == pytest.approx(1)
    # half of the 6 M new accounts on day one, at the peak factor, scaled
    su = 3_000_000 / 86_400 * 2.5 * 0.01
    assert flood.target_rps == pytest.approx(before.target_rps + 2 * su, rel=1e-3)
    assert after.accounts == 7_000_000


def test_percentiles_like_locust() -> None:
    hist = {10: 90, 100: 9, 1000: 1}
    assert percentile(hist, 100, 0.5) == 10
    assert percentile(hist, 100, 0.95) == 100
    assert percentile(hist, 100, 0.99) == 1000
    assert percentile({}, 0, 0.99) == 0


def slo(**kw: float) -> Slo:
    return Slo.from_json({"p99_ms": {"default": 500, "GET /timelines/home": 100},
                          "min_requests": 20, **kw})


def test_gates_name_each_breach() -> None:
    stats = {"Aggregated": EndpointStats("Aggregated", 200, 4, {50: 196, 900: 4}, 10),
             "GET /timelines/home": EndpointStats("GET /timelines/home", 150, 0,
                                                  {50: 140, 200: 10}, 10),
             "POST /posts": EndpointStats("POST /posts", 40, 4, {50: 36, 900: 4}, 10),
             "POST /reports": EndpointStats("POST /reports", 3, 0, {5000: 3}, 10)}
    v = judge(stats, slo())
    assert not v.passed
    assert "errors 2.00% > 1.00%" in v.breaches
    assert "GET /timelines/home: p99 200 ms > 100 ms" in v.breaches
    assert "POST /posts: errors 10.0% > 5%" in v.breaches
    assert "POST /posts: p99 900 ms > 500 ms" in v.breaches
    assert v.unjudged == ["POST /reports"]  # 3 requests: p99 not judged
    ok = judge({"Aggregated": EndpointStats("Aggregated", 50, 0, {20: 50}, 10)}, slo())
    assert ok.passed


def test_analysis_fails_a_step_that_did_not_carry_its_load(profile: Path) -> None:
    m = load_model(profile)
    sc = shapes.Scale(0.01, 1, 100, 10_000_000, "test")
    plan = shapes.surge(m, sc, "http://x", 20, steps=2)

    def rec(i: int, n: int) -> dict:
        return {"index": i, "t_start": 1.0, "t_end": 2.0, "seconds": 10.0, "users": 5,
                "stats": {"Aggregated": {"requests": n, "failures": 0, "hist": {"20": n}},
                          "GET /timelines/home": {"requests": n, "failures": 0,
                                                  "hist": {"20": n}}}}
    want = [round(s.target_rps * 10) for s in plan.steps]
    res = analyse(plan, {"steps": [rec(0, want[0]), rec(1, want[1] // 2)]}, slo())
    assert res.steps[0].passed and not res.steps[1].passed
    assert res.first_failed is res.steps[1]
    assert res.steps[1].breaches[0].startswith("load not reached")
    assert not res.passed
    cut = analyse(plan, {"steps": [rec(0, want[0])]}, slo())
    assert not cut.passed and cut.run_breaches == ["only 1 of 2 steps completed"]


def test_calibration_doc_counts_each_steps_requests_and_the_whole_run(
        profile: Path, tmp_path: Path) -> None:
    from freehold.deploy.loadtest.calibrate import calibration_doc
    from freehold.deploy.loadtest.execute import Outcome
    from freehold.deploy.loadtest.runner import RunOutput

    m = load_model(profile)
    plan = shapes.calibrate(m, "http://x", 20, steps=2)

    def rec(i: int, n: int) -> dict:
        return {"index": i, "t_start": 1.0, "t_end": 2.0, "seconds": 7.0, "users": 5,
                "stats": {"Aggregated": {"requests": n, "failures": 0, "hist": {"20": n}}}}
    res = analyse(plan, {"steps": [rec(0, 70), rec(1, 140)]}, slo())
    run = RunOutput(out_dir=tmp_path, exit_codes={"local": 0}, wall_s=25.0)
    tgt = Target(label="t", url="http://x", app_cores=1)

    def doc() -> dict:
        return calibration_doc(Outcome(res, run, tmp_path, {}), tgt, "http://x", 1.0, m)

    assert [s["requests"] for s in doc()["steps"]] == [70, 140]
    assert doc()["requests_total"] is None  # no Locust stats file
    # Locust's totals count the warm-ups too, which the steps' measured windows leave out
    (tmp_path / "locust_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count\nGET,/timelines/home,250,0\n"
        ",Aggregated,300,0\n")
    assert doc()["requests_total"] == 300


def test_targets_and_inputs() -> None:
    assert parse_duration("90") == 90 and parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_accounts("10M") == 10_000_000 and parse_accounts("250k") == 250_000
    for bad in ("soon", "5x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    lab = resolve_target(str(ROOT / "inventories" / "lab.yaml"))
    assert lab.app_cores == sum(s.cores for s in lab.spec.servers_with_role("app"))
    assert [s.name for s in lab.loadgen] == [s.name for s in lab.spec.servers_with_role(
        "loadgen")]
    assert len(lab.app_urls) == len(lab.spec.servers_with_role("app"))
    url = resolve_target("http://127.0.0.1:8000/", app_cores=3)
    assert url.url == "http://127.0.0.1:8000" and url.app_cores == 3
    with pytest.raises(TargetError, match="no such spec file"):
        resolve_target("nowhere.yaml")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freehold.deploy", "loadtest", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "needle"), [
    (["run", "http://127.0.0.1:9", "--shape", "tsunami"], "--shape tsunami: unknown"),
    (["run", "http://127.0.0.1:9", "--duration", "soon"], "--duration"),
    (["run", "http://127.0.0.1:9", "--from", "10M", "--to", "4M"], "need 0 < from < to"),
    (["run", "nowhere.yaml"], "no such spec file"),
    (["calibrate", "http://127.0.0.1:9", "--roster", "/nonexistent/r.json"], "no roster"),
])
def test_cli_refuses_bad_input_in_one_line(profile: Path, args: list[str], needle: str) -> None:
    r = cli(*args, "--profile", str(profile))
    assert r.returncode == 2, r.stdout + r.stderr
    assert needle in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_cli_bad_profile_names_the_field(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(PROFILE.replace("peak_to_average", "peak_2_avg"))
    r = cli("run", "http://127.0.0.1:9", "--profile", str(p))
    assert r.returncode == 2 and "peak_to_average: missing" in r.stderr


def test_plan_round_trips_through_json(profile: Path, tmp_path: Path) -> None:
    m = load_model(profile)
    plan = shapes.spike(m, shapes.Scale(0.01, 1, 100, 10_000_000, "t"), "http://x", 40)
    back = shapes.LoadPlan.load(plan.save(tmp_path / "plan.json"))
    assert back == plan
    assert json.loads((tmp_path / "plan.json").read_text())["shape"] == "spike"


def test_a_new_users_first_pause_is_the_steady_state_residual_of_its_think_time() -> None:
    # think times uniform on 5..25 s: the residual's mean is E[T^2] / (2 E[T]) = 325/(2*15)
    rng = random.Random(7)
    pauses = [first_pause(rng, 5.0, 25.0) for _ in range(40_000)]
    assert min(pauses) >= 0 and max(pauses) <= 25.0
    mean = sum(pauses) / len(pauses)
    assert mean == pytest.approx(((25**3 - 5**3) / 3 / 20) / 30, rel=0.02)  # 10.83 s
    # users started together then act at the steady rate: in each of the first 5 seconds about
    # one user in 15 (the mean think time) acts, not all of them in the first second
    first_second = sum(p < 1.0 for p in pauses) / len(pauses)
    assert first_second == pytest.approx(1 / 15, rel=0.1)
    assert first_pause(rng, 3.0, 3.0) <= 3.0
