"""`Lab`: bring a spec's servers up on this machine, inject faults, tear everything down.

    from freehold.deploy.lab import Lab
    lab = Lab.from_spec(Path("inventories/lab.yaml"))
    lab.up()                      # idempotent; builds the image once
    lab.run("a1", "hostname")     # ssh as root, host key checked against lab.known_hosts_path
    lab.kill("a1"); lab.start("a1"); lab.partition("a"); lab.heal(); lab.slow("a-b", 80)
    lab.down()                    # removes every namespace, link, mount, table, process

`up` records the servers' host keys (made here) in the spec's known_hosts file, where every
SSH path (deploy.ssh) checks them; lab.known_hosts_path holds them too, for `lab.run`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from freehold.deploy.lab import container, helpers, keys, network
from freehold.deploy.lab.errors import LabError
from freehold.deploy.lab.host import (
    check_prerequisites,
    netns_list,
    overlapping_routes,
    raise_inotify_limit,
    raise_neighbour_limits,
)
from freehold.deploy.lab.image import CACHE_ROOT, build_image
from freehold.deploy.lab.layout import APT_PROXY_PORT, STATE_ROOT, LabPlan, LabServer, plan_lab
from freehold.deploy.spec import ClusterSpec, load_spec

Progress = Callable[[str, int, int], None]   # (what, done, total)


class Lab:
    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.plan: LabPlan = plan_lab(spec)

    @classmethod
    def from_spec(cls, path: Path | str) -> Lab:
        """Load a spec (raises deploy.spec.SpecError) and plan its lab (raises LabError)."""
        return cls(load_spec(Path(path)))

    # ---- paths other code uses --------------------------------------------------------
    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def ssh_key_path(self) -> Path:
        return keys.ssh_dir(self.plan) / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return keys.ssh_dir(self.plan) / "known_hosts"

    @property
    def state_file(self) -> Path:
        return self.plan.state_dir / "state.json"

    def address(self, host: str) -> str:
        return str(self.plan.server(host).address)

    # ---- state ------------------------------------------------------------------------
    def _load(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, doc: dict) -> None:
        self.plan.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(self.state_file)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One lab change at a time on this machine (flock on the state root: no lock files)."""
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        fd = os.open(STATE_ROOT, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def is_up(self) -> bool:
        return network.router_exists(self.plan) and self.state_file.exists()

    # ---- up / down --------------------------------------------------------------------
    def check_routes(self) -> None:
        nets = [self.plan.transit, *(s.network for s in self.plan.sites)]
        clashes = overlapping_routes(nets, own_dev=self.plan.host_link)
        if clashes:
            mine, theirs, dev = clashes[0]
            raise LabError(f"{self.spec.path}: lab network {mine} overlaps the machine's route "
                           f"{theirs} (dev {dev}) — choose another lab.network / site network")

    def up(self, progress: Progress | None = None, wait: bool = True,
           timeout: float = 180.0) -> None:
        """Boot every server (idempotent: running servers are left alone)."""
        check_prerequisites()
        plan = self.plan
        with self._locked():
            if not network.router_exists(plan):
                self.check_routes()
            image = build_image(log=(lambda m: progress(f"image: {m}", 0, 1)) if progress
                                else None)
            pub = Path(f"{keys.lab_key(plan)}.pub").read_text()
            for srv in plan.servers:
                keys.host_key(plan, srv.name)
            keys.write_known_hosts(plan)
            keys.record_in_spec(plan, self.spec)
            doc = self._load()
            doc.update({"name": plan.name, "spec": self.spec.path, "image": str(image)})
            doc.setdefault("cuts", [])
            doc.setdefault("links", {})
            self._save(doc)
            everyone = len(plan.servers) + _servers_running_elsewhere(plan)
            raise_inotify_limit(everyone)
            raise_neighbour_limits(everyone)
            network.setup_router(plan)
            self._start_helpers(doc)
            self._save(doc)
            total = len(plan.servers)
            for i, srv in enumerate(plan.servers):
                self._boot(srv, image, pub)
                if progress:
                    progress(f"boot {srv.name}", i + 1, total)
        if wait:
            self.wait_ssh([s.name for s in plan.servers], timeout=timeout, progress=progress)

    def _boot(self, srv: LabServer, image: Path, pub: str) -> None:
        network.setup_server_net(self.plan, srv)
        root = container.mount_root(self.plan, srv, image)
        marker = self.plan.server_dir(srv.name) / "identity"
        if not marker.exists():
            container.write_identity(self.plan, srv, root, pub,
                                     keys.ssh_dir(self.plan) / "host_keys")
            marker.write_text("written\n")
        container.boot(self.plan, srv, root)

    def down(self, progress: Progress | None = None) -> None:
        """Stop every server and remove everything this lab made; safe to run twice."""
        check_prerequisites(("ip", "nft"))
        plan = self.plan
        with self._locked():
            servers = {s.name: s for s in plan.servers}
            # servers from an older version of the spec, found by their cgroup or netns
            for top in plan.cgroup_dirs():
                if top.is_dir():
                    for d in top.iterdir():
                        if d.is_dir() and d.name not in servers:
                            servers[d.name] = _orphan(plan, d.name)
            others = _other_lab_prefixes(plan)
            for ns in netns_list():
                name = ns.removeprefix(plan.prefix)
                if any(ns.startswith(o) for o in others):
                    continue                # another lab's (e.g. "lab-h5" beside "lab")
                if ns.startswith(plan.prefix) and ns != plan.router_ns and name not in servers:
                    servers[name] = _orphan(plan, name)
            total = len(servers)
            for i, srv in enumerate(servers.values()):
                container.kill(plan, srv)
                container.clean_nspawn_leftovers(srv)
                container.unmount_root(plan, srv)
                if progress:
                    progress(f"down {srv.name}", i + 1, total)
            self._stop_helpers(self._load())
            network.teardown(plan)
            container.remove_lab_cgroups(plan)
            shutil.rmtree(plan.state_dir, ignore_errors=True)

    # ---- helper processes: the shared apt cache, the delay line ----------------------------
    def _proxy_markers(self) -> tuple[str, str]:
        return "freehold.deploy.lab.aptproxy", str(self.plan.host_transit)

    def _delay_markers(self) -> tuple[str, str]:
        return "freehold.deploy.lab.delayline", str(network.links_file(self.plan))

    def _start_helpers(self, doc: dict) -> None:
        if not helpers.alive(doc.get("proxy_pid"), *self._proxy_markers()):
            doc["proxy_pid"] = helpers.start(
                "freehold.deploy.lab.aptproxy",
                ["--listen", str(self.plan.host_transit), "--port", str(APT_PROXY_PORT),
                 "--cache", str(CACHE_ROOT / "apt")], self.plan.state_dir / "aptproxy.log")
        if not network.links_file(self.plan).exists():
            network.write_links(self.plan, doc.get("links"))
        if not helpers.alive(doc.get("delay_pid"), *self._delay_markers()):
            doc["delay_pid"] = helpers.start(
                "freehold.deploy.lab.delayline",
                ["--tun", network.DELAY_TUN, "--config", str(network.links_file(self.plan))],
                self.plan.state_dir / "delayline.log", netns=self.plan.router_ns)

    def _stop_helpers(self, doc: dict) -> None:
        helpers.stop(doc.get("proxy_pid"), *self._proxy_markers())
        helpers.stop(doc.get("delay_pid"), *self._delay_markers())

    # ---- reaching the servers -----------------------------------------------------------
    def ssh_args(self, host: str, connect_timeout: int = 5) -> list[str]:
        return keys.ssh_command(self.plan, self.address(host), connect_timeout)

    def run(self, host: str, cmd: str, timeout: float = 120.0,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a shell command on a server as root over SSH (its host key checked)."""
        proc = subprocess.run([*self.ssh_args(host), cmd], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"{host}: `{cmd}` exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def ssh_ready(self, host: str, timeout: float = 1.0) -> bool:
        """sshd answers on the server's address (its banner arrives)."""
        with contextlib.suppress(OSError), socket.create_connection(
                (self.address(host), 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(8).startswith(b"SSH-")
        return False

    def wait_ssh(self, hosts: list[str], timeout: float = 180.0,
                 progress: Progress | None = None) -> None:
        pending = list(hosts)
        total = len(pending)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending = [h for h in pending if not self.ssh_ready(h, timeout=0.5)]
            if progress:
                progress("waiting for sshd", total - len(pending), total)
            if pending:
                time.sleep(0.3)
        if pending:
            raise LabError(f"lab {self.name}: no sshd on {', '.join(pending)} after "
                           f"{timeout:.0f} s — see {self.plan.state_dir}/servers/*/console.log")

    # ---- faults -------------------------------------------------------------------------
    def kill(self, host: str) -> None:
        """Power loss: every process of the server SIGKILLed at once, its link down."""
        srv = self.plan.server(host)
        container.kill(self.plan, srv)
        network.set_power(self.plan, srv, False)

    def stop(self, host: str) -> bool:
        """Clean poweroff; True when the server shut down by itself."""
        srv = self.plan.server(host)
        clean = container.stop(self.plan, srv)
        network.set_power(self.plan, srv, False)
        return clean

    def start(self, host: str, wait: bool = True, timeout: float = 120.0) -> None:
        """Boot a killed or stopped server again (same disk, same keys)."""
        srv = self.plan.server(host)
        doc = self._load()
        if not doc:
            raise LabError(f"lab {self.name} is not up: run `freehold lab up` first")
        with self._locked():
            self._boot(srv, Path(doc["image"]), Path(f"{self.ssh_key_path}.pub").read_text())
        if wait:
            self.wait_ssh([host], timeout=timeout)

    def pause(self, host: str) -> None:
        container.pause(self.plan, self.plan.server(host))

    def resume(self, host: str) -> None:
        container.resume(self.plan, self.plan.server(host))

    def partition(self, target: str, from_: str | None = None) -> None:
        """Cut a site or server off from another (or from every other server of the lab).
        The machine itself still reaches every server (SSH keeps working)."""
        left = [s.name for s in self.plan.resolve(target)]
        if from_ is None:
            right = [s.name for s in self.plan.servers if s.name not in left]
        else:
            right = [s.name for s in self.plan.resolve(from_) if s.name not in left]
        if not right:
            raise LabError(f"partition {target}: nothing left on the other side")
        with self._locked():
            doc = self._load()
            doc["cuts"] = [*doc.get("cuts", []), [left, right]]
            network.apply_partitions(self.plan, doc["cuts"])
            self._save(doc)

    def heal(self, links: bool = True) -> None:
        """Remove every partition; with `links`, also set every link back to the spec's latency."""
        with self._locked():
            doc = self._load()
            doc["cuts"] = []
            network.apply_partitions(self.plan, [])
            if links:
                doc["links"] = {}
                network.write_links(self.plan, {})
            self._save(doc)

    def split_pair(self, pair: str) -> tuple[str, str]:
        """'a-b' -> ('a', 'b'); site names may contain '-' themselves."""
        names = {s.name for s in self.plan.sites}
        for i, ch in enumerate(pair):
            if ch == "-" and pair[:i] in names and pair[i + 1:] in names:
                return pair[:i], pair[i + 1:]
        raise LabError(f"{pair!r} is not SITE-SITE with sites of lab {self.name} "
                       f"({', '.join(sorted(names))})")

    def slow(self, pair: str, delay_ms: float, loss_pct: float = 0.0) -> None:
        """Set the round-trip delay between two sites (half each way) and loss per direction."""
        if delay_ms < 0 or not 0 <= loss_pct <= 100:
            raise LabError("slow: --delay must be >= 0 ms and --loss within 0-100 %")
        a, b = self.split_pair(pair)
        if a == b:
            raise LabError(f"slow {pair}: give two different sites (SITE-SITE)")
        with self._locked():
            doc = self._load()
            doc.setdefault("links", {})[f"{a}-{b}"] = {"sites": [a, b], "delay_ms": delay_ms,
                                                       "loss_pct": loss_pct}
            network.write_links(self.plan, doc["links"])
            self._save(doc)

    def links(self) -> dict[str, dict[str, float]]:
        return network.link_settings(self.plan)

    # ---- status -------------------------------------------------------------------------
    def status(self) -> list[dict]:
        doc = self._load()
        cut = {n for left, _right in doc.get("cuts", []) for n in left}
        up = network.router_exists(self.plan)
        now = time.time()
        rows = []
        for srv in self.plan.servers:
            st = container.state(self.plan, srv) if up else "down"
            started = container.started_at(self.plan, srv) if st != "down" else None
            rows.append({
                "name": srv.name, "site": srv.site, "address": str(srv.address),
                "roles": list(srv.roles), "state": st, "partitioned": srv.name in cut,
                "uptime_s": round(now - started, 1) if started else None,
            })
        return rows

    def memory(self, host: str) -> dict[str, int]:
        return container.memory(self.plan, self.plan.server(host))


def _orphan(plan: LabPlan, name: str) -> LabServer:
    """A stand-in for a server no longer in the spec, enough to find and remove its parts."""
    import ipaddress
    return LabServer(name=name, index=-1, site="", address=ipaddress.IPv4Address(0),
                      prefixlen=32, gateway=ipaddress.IPv4Address(0),
                      netns=f"{plan.prefix}{name}", port="", machine=f"{plan.prefix}{name}",
                      roles=())


def _servers_running_elsewhere(plan: LabPlan) -> int:
    """Servers of other labs on this machine (their cgroups), for machine-wide limits."""
    top = plan.cgroup_dirs()[0].parent
    if not top.is_dir():
        return 0
    return sum(1 for lab in top.iterdir() if lab.is_dir() and lab.name != plan.name
               for d in lab.iterdir() if d.is_dir())


def _other_lab_prefixes(plan: LabPlan) -> list[str]:
    """Name prefixes of the other labs on this machine (their state folders), longer than ours
    and starting with it: their namespaces must never be taken for our orphans."""
    from freehold.deploy.lab.layout import lab_tag

    out = []
    with contextlib.suppress(FileNotFoundError):
        for d in STATE_ROOT.iterdir():
            if d.is_dir() and d.name != plan.name:
                prefix = f"fh{lab_tag(d.name)}-"
                if prefix != plan.prefix and prefix.startswith(plan.prefix):
                    out.append(prefix)
    return out
