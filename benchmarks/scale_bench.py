"""The scale rehearsal (issue 20): `freehold deploy` on a fresh lab of N servers, measured.

    .venv/bin/python benchmarks/scale_bench.py [--servers 300] [--kill 10] [--roles ROLES]
        [--pairs 3] [--host-timeout 60] [--name scalebench] [--network 10.220.0.0/17]

On a fresh lab of its own (the spec of `freehold lab scale --servers N`: the production example's
4 sites and 3 providers with its latencies, a core of 12 servers with the heavy roles at lab size
and nodes; plus one admin; own name and network, never the main lab):
  1. first deploy of what every production server carries (base, mesh, the monitoring
     exporters; `--roles` adds more): wall time, controller CPU-seconds and peak memory (the
     `freehold deploy` process tree), SSH connections opened; `--kill K` nodes are killed once
     the deploy holds their connections: the others must converge, the report must name the K
     and why, the exit code must be non-zero;
  2. the K booted again, a rerun: only they change;
  3. no-op redeploy: 0 changes; then each role alone, for the controller CPU per host per role;
  4. a server paused mid-run is cut off by `--host-timeout` (when `freehold deploy` has it);
  5. one changed file on every server (a second SSH key for the spec's admin, through the spec):
     time to converge, and that nothing else changes;
  6. `freehold status` over all of them (<= 20 s), Prometheus's node targets on each monitoring
     server (all up), the WireGuard peers a server holds (N - 1) and random cross-site pings;
  7. side by side with Ansible (ansible-core from PyPI in the benchmark's own virtualenv): a
     playbook doing what roles/base does (benchmarks/ansible/base.yml) in check mode, alternated
     `--pairs` times with Freehold's no-op of base, each pair's ratio and their median;
  8. `--grow G` servers appended to the spec, booted and deployed while a node pings a node of
     another site over the mesh: every peer list re-rendered and applied without restarting a
     tunnel (a sample of 20 checked) and without losing a ping; the time it took.
Figures are set against the issue's targets (for 300 servers: first deploy <= 15 min, no-op
<= 3 min, status <= 20 s, controller memory <= 1.5 GiB, Freehold >= 3x faster than Ansible).
The lab is taken down at the end. Prints the figures and writes benchmarks/results/scale_bench.json
(scale_bench_N.json for another N). Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ansible_side  # noqa: E402
from resultsfile import write_results  # noqa: E402

from freehold.deploy import rehearsal as rh  # noqa: E402
from freehold.deploy.spec import load_spec  # noqa: E402

TARGETS = {"servers": 300, "first_deploy_s": 15 * 60, "noop_s": 3 * 60,
           "controller_memory_mib": 1.5 * 1024, "ansible_ratio": 3.0, "status_s": 20.0}
STARTED = time.monotonic()


def stop_on_signal(signum: int, _frame: Any) -> None:
    """SIGTERM, SIGHUP and SIGINT (which a shell's background job ignores unless re-armed)
    stop the rehearsal as Ctrl-C does: the results so far are written, the lab taken down."""
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def log(line: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.0f} s] {line}", flush=True)


def deploy_options() -> set[str]:
    """The options today's `freehold deploy` takes (the rehearsal uses the newer ones when
    there)."""
    out = subprocess.run([sys.executable, "-m", "freehold.deploy", "deploy", "--help"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    return {w.strip(",") for w in out.stdout.split() if w.startswith("--")}


class Checks:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def add(self, name: str, ok: bool, detail: Any = "") -> bool:
        self.items[name] = {"ok": bool(ok), "detail": detail}
        log(f"  {'ok  ' if ok else 'FAIL'} {name}{f': {detail}' if detail != '' else ''}")
        return ok

    @property
    def ok(self) -> bool:
        return all(v["ok"] for v in self.items.values())


def converged_others(run: rh.DeployRun, hosts: list[str], victims: list[str]) -> list[str]:
    """Hosts besides the victims that did not end every role ok or changed."""
    bad = {r["host"] for r in run.results() if r["host"] not in victims
           and r.get("status") not in ("ok", "changed")}
    return [h for h in hosts if h in bad]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=300)
    ap.add_argument("--kill", type=int, default=10, help="servers killed mid first deploy")
    ap.add_argument("--roles", default="", help="roles deployed besides base,mesh,monitoring")
    ap.add_argument("--pairs", type=int, default=3, help="Ansible/Freehold pairs (0: none)")
    ap.add_argument("--forks", type=int, default=50, help="Ansible forks (Freehold's default "
                    "parallelism is 50 SSH sessions)")
    ap.add_argument("--grow", type=int, default=10, help="servers added at the end (0: none): "
                    "booted and deployed while a ping runs over an existing tunnel")
    ap.add_argument("--host-timeout", type=int, default=60,
                    help="seconds for the paused-server run (needs deploy --host-timeout)")
    ap.add_argument("--no-per-role", action="store_true", help="skip the per-role no-ops")
    ap.add_argument("--no-core", action="store_true", help="every server a node (no lab-size "
                    "core of data and serving servers in the spec)")
    ap.add_argument("--name", default="scalebench", help="the lab's name")
    ap.add_argument("--network", default="10.220.0.0/17", help="the lab's network")
    ap.add_argument("--mesh", default="100.114.0.0/17", help="the spec's mesh network")
    ap.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("scale_bench needs root (the lab)")
    if not 0 <= args.kill <= args.servers // 4:
        sys.exit(f"--kill {args.kill}: give 0 to {args.servers // 4} (nodes are killed, never "
                 "the core)")
    extra = [r.strip() for r in args.roles.split(",") if r.strip()]
    roles = [*rh.EVERY_SERVER_ROLES, *extra]
    out_path = args.out or ROOT / "benchmarks" / "results" / (
        "scale_bench.json" if args.servers == TARGETS["servers"]
        else f"scale_bench_{args.servers}.json")

    from freehold.deploy.lab import Lab

    tmp = Path(tempfile.mkdtemp(prefix=f"{args.name}-"))
    spec_path = rh.scaled_spec(tmp / f"{args.name}.yaml", args.name, args.servers,
                               args.network, args.mesh, core=not args.no_core)
    spec = load_spec(spec_path)
    hosts = [s.name for s in spec.servers]
    lab = Lab.from_spec(spec_path)
    secrets, key = tmp / f"{args.name}.secrets", Fernet.generate_key()
    options = deploy_options()
    checks = Checks()
    doc: dict[str, Any] = {
        "servers": args.servers, "nodes": len(rh.nodes(spec)),
        "core": "12 servers with the heavy roles at lab size (not deployed unless --roles names "
                "them)" if not args.no_core else "none", "roles": roles,
        "sites": len(spec.sites),
        "providers": len(spec.providers), "spec": str(spec_path),
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "main_lab_ci_running": subprocess.run(
            ["flock", "-n", "/tmp/freehold-mainlab.lock", "true"]).returncode != 0,
        "deploy_options_used": sorted(o for o in ("--host-timeout", "--parallel", "--batch",
                                                  "--max-fail") if o in options)}
    counter = rh.SshCounter(lab.name, args.network)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop_on_signal)
    if args.keep:  # the kept lab can be deployed again by hand with this key
        key_file = tmp / f"{args.name}.key"
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)
        doc["secrets_key_file"] = str(key_file)

    partial_path = out_path.with_name(out_path.stem + ".partial.json")

    def save(partial: bool = True) -> Path:
        """The results so far: to NAME.partial.json while running or when stopped early (a
        finished run's file is never overwritten by half a run), to NAME.json at the end."""
        doc["partial"] = partial
        doc["checks"] = checks.items
        doc["all_checks_ok"] = checks.ok and not partial
        doc["total_s"] = round(time.monotonic() - STARTED, 1)
        path = write_results(partial_path if partial else out_path, doc, script=__file__,
                             settings={**vars(args), "out": str(out_path)},
                             durability="not applicable (no database: base, mesh, exporters)")
        if not partial:
            partial_path.unlink(missing_ok=True)
        return path

    log(f"scale rehearsal: {args.servers} servers, roles {','.join(roles)}, lab {lab.name} "
        f"({args.network}), work folder {tmp}")
    try:
        with rh.lab_up(lab, log=log, keep=args.keep) as boot_s:
            doc["lab_boot_s"] = round(boot_s, 1)
            counter.open()
            rehearse(args, spec_path, hosts, lab, secrets, key, roles, options, counter,
                     checks, doc, tmp, save)
    except KeyboardInterrupt as stop:
        doc["interrupted"] = str(stop) or "stopped by SIGINT"
        checks.add("the rehearsal ran to its end", False, doc["interrupted"])
        log(f"{doc['interrupted']}: writing what was measured, taking the lab down")
    finally:
        counter.close()
        doc["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
        written = save(partial="interrupted" in doc or sys.exc_info()[0] is not None)
        log(f"written {written.relative_to(ROOT) if written.is_relative_to(ROOT) else written}")
    print(json.dumps(doc.get("figures", {}), indent=2))
    if not checks.ok:
        sys.exit(1)


def rehearse(args: argparse.Namespace, spec_path: Path, hosts: list[str], lab: Any,
             secrets: Path, key: bytes, roles: list[str], options: set[str],
             counter: rh.SshCounter, checks: Checks, doc: dict[str, Any], tmp: Path,
             save: Any) -> None:
    """The steps of the module's docstring; `save()` writes the results so far (marked
    partial) after each deploy, so a rehearsal killed outright still leaves its figures."""
    n = len(hosts)
    figures: dict[str, Any] = doc.setdefault("figures", {})
    runs: dict[str, Any] = doc.setdefault("runs", {})

    def deploy(label: str, run_roles: list[str], extra: list[str] | None = None,
               during: Any = None, timeout: float = 3 * 3600) -> rh.DeployRun:
        log(f"{label}: freehold deploy --roles {','.join(run_roles)} {' '.join(extra or [])}")
        run = rh.deploy_measured(label, spec_path, secrets, key, run_roles, extra,
                                 timeout=timeout, during=during, counter=counter, log=log)
        if during is not None and getattr(during, "events", None):
            run.events = during.events
        runs[label] = run.summary()
        log(f"{label}: exit {run.code} in {run.wall_s:.1f} s, controller CPU {run.cpu_s:.1f} s, "
            f"peak {run.peak_rss_mib:.0f} MiB, {run.ssh_connections} SSH connections, "
            f"{run.changes()} operations changed on {len(run.changed_hosts())} hosts, "
            f"{len(run.failed())} hosts failed")
        save()
        return run

    # 1. first deploy, K servers killed mid-run
    victims = rh.pick_victims(rh.nodes(load_spec(spec_path)), args.kill)
    killer = rh.FaultMidRun(lab, victims, "kill", settle=20.0, log=log)
    first = deploy("first deploy", roles, during=killer)
    killer.join()
    figures["first_deploy"] = {k: runs["first deploy"][k] for k in (
        "wall_s", "controller_cpu_s", "servers_cpu_s", "controller_peak_rss_mib",
        "ssh_connections")}
    figures["first_deploy"]["killed_mid_run"] = len(victims)
    if victims:
        failed = first.failed()
        checks.add("first deploy: exit code non-zero with servers killed", first.code != 0,
                   first.code)
        checks.add("first deploy: the report names exactly the killed servers",
                   set(failed) == set(victims),
                   {"killed": victims, "named": sorted(failed)})
        checks.add("first deploy: a reason for each killed server",
                   all(len(failed.get(v, "")) > 20 for v in victims),
                   {v: failed.get(v, "")[:160] for v in victims[:3]})
        checks.add("first deploy: kill errors", not killer.errors, killer.errors)
        doc["killed"] = {"hosts": victims, "reasons": failed, "events": killer.events}
    else:
        checks.add("first deploy: exit 0", first.code == 0, first.code)
    others = converged_others(first, hosts, victims)
    checks.add("first deploy: every other server converged", not others, others[:10])

    # 2. the killed servers back, a rerun changes only them
    if victims:
        log(f"starting the {len(victims)} killed servers again")
        figures["killed_restart_s"] = round(rh.start_again(lab, victims), 1)
        rerun = deploy("rerun after restart", roles)
        changed = rerun.changed_hosts()
        checks.add("rerun: exit 0", rerun.code == 0, rerun.failed() or rerun.code)
        checks.add("rerun: only the killed servers change", set(changed) == set(victims),
                   {"changed": changed[:20], "killed": victims})
        figures["rerun_s"] = runs["rerun after restart"]["wall_s"]

    # 3. no-op: 0 changes, then each role alone for CPU per host per role
    noop = deploy("no-op", roles)
    checks.add("no-op: exit 0 and 0 changes", noop.code == 0 and noop.changes() == 0,
               {"exit": noop.code, "changed": noop.changes(),
                "ops": list(noop.change_names())[:5]})
    figures["noop"] = {k: runs["no-op"][k] for k in (
        "wall_s", "controller_cpu_s", "servers_cpu_s", "controller_peak_rss_mib",
        "ssh_connections")}
    figures["noop"]["controller_cpu_ms_per_host"] = round(1000 * noop.cpu_s / n, 1)
    # the deploy's own accounting of its CPU per role (its process, not the tree), per host
    figures["noop"]["controller_cpu_ms_per_host_per_role"] = {
        role: round(1000 * sec / n, 1)
        for role, sec in (noop.doc.get("role_cpu_seconds") or {}).items()}
    if not args.no_per_role:
        per_role = {}
        for role in roles:
            one = deploy(f"no-op {role}", [role])
            per_role[role] = {"wall_s": round(one.wall_s, 1), "controller_cpu_s":
                              round(one.cpu_s, 1), "controller_cpu_ms_per_host":
                              round(1000 * one.cpu_s / n, 1), "changed": one.changes()}
            checks.add(f"no-op {role}: 0 changes", one.code == 0 and one.changes() == 0,
                       one.changes())
        figures["noop_per_role"] = per_role

    # 4. a paused server cut off by the per-host timeout
    if "--host-timeout" in options:
        victim = rh.pick_victims(rh.nodes(load_spec(spec_path)), 1)
        pauser = rh.FaultMidRun(lab, victim, "pause", settle=10.0, log=log)
        paused = deploy("no-op, one server paused", roles,
                        ["--host-timeout", str(args.host_timeout)], during=pauser,
                        timeout=args.host_timeout * 10 + 1800)
        pauser.join()
        for v in victim:
            lab.resume(v)
        failed = paused.failed()
        checks.add("paused: exit code non-zero", paused.code != 0, paused.code)
        checks.add("paused: the report names the paused server", set(failed) == set(victim),
                   {"paused": victim, "named": failed})
        figures["paused_run_s"] = round(paused.wall_s, 1)
    else:
        doc["paused"] = "not run: this freehold deploy has no --host-timeout option yet"
        log(f"paused server: {doc['paused']}")

    # 5. one changed file on every server: a second key for the admin
    rh.add_admin_key(spec_path)
    change = deploy("changed admin key", roles)
    names = change.change_names()
    checks.add("change: exit 0, every server changed", change.code == 0
               and len(change.changed_hosts()) == n, {"exit": change.code,
                                                      "changed_hosts": len(change.changed_hosts())})
    checks.add("change: only the admin's account changed", set(names) == {"Admin ops"}, names)
    figures["changed_file_converge_s"] = runs["changed admin key"]["wall_s"]

    # 6. status, Prometheus and the mesh at this size
    seen = rh.observe(spec_path, lab, key, log=log)
    doc["figures"].update(seen.figures)
    for name, ok, detail in seen.checks:
        checks.add(name, ok, detail)

    # 7. side by side with Ansible
    if args.pairs > 0:
        ansible(args, spec_path, lab, deploy, checks, doc, tmp)
    figures["targets"] = targets(doc, n)

    # 8. the mesh grows: servers added, no tunnel restarted, no ping lost
    if args.grow > 0:
        grow(args, spec_path, lab, deploy, roles, checks, doc)


def grow(args: argparse.Namespace, spec_path: Path, lab: Any, deploy: Any, roles: list[str],
         checks: Checks, doc: dict[str, Any]) -> None:
    """`--grow` servers appended to the spec, booted and deployed (every peer list re-rendered
    and applied by `wg syncconf`) while a node pings a node of another site over the mesh."""
    from freehold.deploy.lab import Lab

    spec = load_spec(spec_path)
    n = len(spec.servers)
    node_names = rh.nodes(spec)
    pinger_host = node_names[1]
    far = next(s for s in spec.servers if s.name in node_names
               and s.site != spec.server(pinger_host).site)
    sample = rh.pick_victims(node_names, 20)
    before = {h: rh.wg_identity(lab, h) for h in sample}
    pinger = rh.Pinger(lab, pinger_host, far.mesh_address, max_s=3 * 3600)
    pinger.start()
    try:
        rh.grow_spec(spec_path, args.name, n + args.grow, args.network, args.mesh,
                     core=not args.no_core)
        grown = load_spec(spec_path)
        known = {x.name for x in spec.servers}
        added = [s.name for s in grown.servers if s.name not in known]
        log(f"grow: {len(added)} servers added to the spec ({', '.join(added)}), booting them")
        t = time.monotonic()
        Lab.from_spec(spec_path).up(timeout=600)
        boot_s = time.monotonic() - t
        run = deploy("grown", roles)
    finally:
        ping_log = pinger.stop()
    grown_lab = Lab.from_spec(spec_path)
    after = {h: rh.wg_identity(grown_lab, h) for h in sample}
    new_peers = {h: rh.wg_identity(grown_lab, h)[2] for h in added}
    answered, lost = rh.ping_replies(ping_log), rh.lost_pings(ping_log)
    restarted = [h for h in sample if after[h][:2] != before[h][:2]]
    wrong = {h: p for h, p in {**{h: after[h][2] for h in sample}, **new_peers}.items()
             if p != len(grown.servers) - 1}
    checks.add("grow: exit 0", run.code == 0, run.failed() or run.code)
    checks.add(f"grow: the {len(added)} new servers and {len(sample)} existing ones hold "
               f"{len(grown.servers) - 1} peers", not wrong and len(added) == args.grow, wrong)
    checks.add("grow: no tunnel restarted (wg-quick@wg0 and wireguard-go unchanged)",
               not restarted, restarted)
    checks.add(f"grow: no ping lost over the existing tunnel {pinger_host} -> {far.name}",
               bool(answered) and not lost, {"answered": len(answered), "lost": lost[:20]})
    if not args.keep:  # the lab's own teardown knows only the servers it booted with
        grown_lab.down()
    doc["figures"]["grow"] = {
        "servers_before": n, "added": len(added), "boot_s": round(boot_s, 1),
        "deploy_s": round(run.wall_s, 1), "changed_hosts": len(run.changed_hosts()),
        "pinger": pinger_host, "ping_target": far.name, "pings_answered": len(answered),
        "pings_lost": len(lost), "tunnels_checked": len(sample), "tunnels_restarted":
        len(restarted)}


def ansible(args: argparse.Namespace, spec_path: Path, lab: Any, deploy: Any, checks: Checks,
            doc: dict[str, Any], tmp: Path) -> None:
    log("Ansible: its own virtualenv (ansible-core from PyPI)")
    bin_dir, version = ansible_side.ensure_ansible()
    spec = load_spec(spec_path)
    cfg = ansible_side.write_inventory(spec, lab.ssh_key_path, lab.known_hosts_path,
                                       tmp / "ansible", forks=args.forks)
    pairs = []
    for i in range(args.pairs):
        order = ("ansible", "freehold") if i % 2 == 0 else ("freehold", "ansible")
        pair: dict[str, Any] = {"order": list(order)}
        for who in order:
            if who == "ansible":
                log(f"pair {i + 1}: ansible-playbook --check benchmarks/ansible/base.yml")
                a = ansible_side.run_check(bin_dir, cfg)
                log(f"pair {i + 1}: Ansible check mode {a['wall_s']} s (CPU {a['cpu_s']} s), "
                    f"{a['changed']} changed, {a['failed']} failed, "
                    f"{a['unreachable']} unreachable on {a['hosts']} hosts")
                pair["ansible"] = a
            else:
                f = deploy(f"pair {i + 1} freehold no-op base", ["base"])
                pair["freehold"] = {"wall_s": round(f.wall_s, 1), "cpu_s": round(f.cpu_s, 1),
                                    "changed": f.changes(), "exit_code": f.code}
        pair["ratio_wall"] = round(pair["ansible"]["wall_s"] / pair["freehold"]["wall_s"], 2)
        pair["ratio_cpu"] = round(pair["ansible"]["cpu_s"] / max(0.1, pair["freehold"]["cpu_s"]),
                                  2)
        log(f"pair {i + 1}: Ansible / Freehold = {pair['ratio_wall']}x wall, "
            f"{pair['ratio_cpu']}x controller CPU")
        pairs.append(pair)
    good = all(p["ansible"]["exit_code"] == 0 and p["ansible"]["changed"] == 0
               and p["ansible"]["hosts"] == len(spec.servers) for p in pairs)
    checks.add("Ansible: check mode ran on every server, 0 changed (same state as Freehold's)",
               good, [(p["ansible"]["exit_code"], p["ansible"]["changed"], p["ansible"]["hosts"])
                      for p in pairs])
    checks.add("Freehold no-op of base: 0 changes in every pair",
               all(p["freehold"]["changed"] == 0 and p["freehold"]["exit_code"] == 0
                   for p in pairs))
    doc["ansible"] = {
        "version": version, "forks": args.forks, "pipelining": True,
        "control_persist": "ansible's default (ControlMaster=auto, ControlPersist=60s)",
        "gather_facts": False, "host_key_checking": "on, against the lab's known_hosts",
        "playbook": "benchmarks/ansible/base.yml",
        "covers": "roles/base: its packages, the admin group and accounts with exclusive "
                  "authorized_keys, the sudoers drop-in, sshd hardening, the nftables rules, "
                  "chrony, sysctl, unattended upgrades, journald limits, the four services and "
                  "the checks/reloads a changed file triggers (handlers); files rendered by "
                  "roles/base's own templates (so Ansible does no templating of its own)",
        "does_not_cover": "roles/base's single apt transaction of every role's packages (only "
                          "base's own packages), and what it writes only while installing "
                          "(apt lock/retry drop-in, policy-rc.d hold); the Freehold side of "
                          "each pair is `freehold deploy --roles base` (a real no-op run, "
                          "which also checks the host keys first)",
        "pairs": pairs,
        "median_ratio_wall": round(statistics.median(p["ratio_wall"] for p in pairs), 2),
        "median_ratio_cpu": round(statistics.median(p["ratio_cpu"] for p in pairs), 2),
    }
    doc["figures"]["ansible_median_ratio_wall"] = doc["ansible"]["median_ratio_wall"]
    doc["figures"]["ansible_median_ratio_cpu"] = doc["ansible"]["median_ratio_cpu"]


def targets(doc: dict[str, Any], n: int) -> dict[str, Any]:
    """Each figure against the issue's target (set for 300 servers)."""
    f = doc["figures"]
    rows = {
        "first_deploy_s": (f["first_deploy"]["wall_s"], TARGETS["first_deploy_s"]),
        "noop_s": (f["noop"]["wall_s"], TARGETS["noop_s"]),
        "status_s": (f.get("status", {}).get("wall_s", float("inf")), TARGETS["status_s"]),
        "controller_memory_mib": (max(r["controller_peak_rss_mib"] for r in
                                      doc["runs"].values()), TARGETS["controller_memory_mib"]),
    }
    out: dict[str, Any] = {"note": "targets are for 300 servers" if n < TARGETS["servers"]
                           else f"{n} servers"}
    for name, (value, limit) in rows.items():
        out[name] = {"value": value, "target_at_most": limit, "met": value <= limit}
    if "ansible_median_ratio_wall" in f:
        out["ansible_ratio"] = {"value": f["ansible_median_ratio_wall"],
                                "target_at_least": TARGETS["ansible_ratio"],
                                "met": f["ansible_median_ratio_wall"] >= TARGETS["ansible_ratio"]}
    for name, row in out.items():
        if isinstance(row, dict):
            log(f"target {name}: {row['value']} ({'met' if row['met'] else 'NOT met'})")
    return out


if __name__ == "__main__":
    main()
