"""`freehold lab`: real Debian servers on this machine, in sites, faults on demand (issue 4)."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from freehold.deploy.cli.common import (
    DEFAULT_SPEC,
    console,
    err_console,
    fail,
    fail_lines,
    print_json,
    require_spec_file,
)
from freehold.deploy.lab import Lab, LabError
from freehold.deploy.lab.host import check_prerequisites
from freehold.deploy.lab.image import build_image, image_info
from freehold.deploy.lab.scale import (
    DEFAULT_MESH,
    DEFAULT_NET,
    LIKE,
    ScaleError,
    ScaleRequest,
    render_spec,
)
from freehold.deploy.spec import SpecError, load_spec, loads_spec

app = typer.Typer(help="A real multi-site cluster of Debian servers on this machine.",
                  no_args_is_help=True)
image_app = typer.Typer(help="The lab's Debian 12 image.", no_args_is_help=True)
fault_app = typer.Typer(help="Faults on demand: power loss, shutdowns, partitions, slow links.",
                        no_args_is_help=True)
app.add_typer(image_app, name="image")
app.add_typer(fault_app, name="fault")

SpecOpt = typer.Option(DEFAULT_SPEC, "--spec", "-s", help="cluster spec with the lab servers")


def _die(exc: Exception) -> NoReturn:
    if isinstance(exc, SpecError):
        fail_lines(exc.problems)
    fail_lines(str(exc).splitlines() or [repr(exc)])


def _lab(spec: Path) -> Lab:
    require_spec_file(spec, option="--spec")
    try:
        return Lab.from_spec(spec)
    except (SpecError, LabError) as exc:
        _die(exc)


@contextmanager
def _progress(title: str) -> Iterator[Callable[[str, int, int], None]]:
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=False) as bar:
        task = bar.add_task(title, total=None)

        def update(what: str, done: int, total: int) -> None:
            bar.update(task, description=f"{title}: {what}", completed=done, total=total)

        yield update


@app.command("up")
def up(spec: Path = SpecOpt,
       timeout: float = typer.Option(180, help="seconds to wait for every sshd")) -> None:
    """Boot the lab servers of a spec (builds the image once; running servers are kept)."""
    lab = _lab(spec)
    try:
        check_prerequisites()
        with _progress(f"lab {lab.name} up") as progress:
            lab.up(progress=progress, timeout=timeout)
    except (LabError, SpecError) as exc:
        _die(exc)
    _table(lab)
    console.print(f"ssh key: {lab.ssh_key_path}   known_hosts: {lab.known_hosts_path}",
                  highlight=False)


@app.command("scale")
def scale(servers: int = typer.Option(..., "--servers", "-n",
                                      help="servers in the lab, core included"),
          out: Path | None = typer.Option(None, "--out", "-o",
                                          help="spec to write (default inventories/lab-N.yaml)"),
          name: str | None = typer.Option(None, "--name", help="the lab's name (default scaleN)"),
          net: str = typer.Option(str(DEFAULT_NET), "--net",
                                  help="lab network, a /21 or wider (sites: its 2nd-5th /24)"),
          mesh: str = typer.Option(str(DEFAULT_MESH), "--mesh", help="WireGuard mesh network"),
          core: bool = typer.Option(True, "--core/--no-core",
                                    help="--no-core: every server is a node (base, mesh, "
                                         "exporters)"),
          like: Path = typer.Option(Path(LIKE), "--like",
                                    help="spec whose sites, providers and latencies to copy"),
          ) -> None:
    """Write a scaled lab spec: N servers over 4 sites, heavy roles at lab size; boot it with
    `freehold lab up --spec`. A file rather than `lab up --scale N`: deploy, status and trust
    read the same spec, and the file says in its header what is scaled and what is not."""
    out = out or Path(f"inventories/lab-{servers}.yaml")
    require_spec_file(like, option="--like")
    try:
        req = ScaleRequest(servers=servers, name=name or f"scale{servers}",
                           net=_network(net, "--net"), mesh=_network(mesh, "--mesh"), core=core)
        text = render_spec(req, load_spec(like), str(out))
        loads_spec(text, out)              # what it writes must load as a spec
    except (ScaleError, SpecError) as exc:
        _die(exc)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    console.print(f"{out}: {servers} servers (lab {req.name}); boot it: freehold lab up "
                  f"--spec {out}", highlight=False)


def _network(text: str, option: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text)
    except ValueError:
        fail(f"{option} {text!r}: give an IPv4 network such as 10.210.0.0/16")


@app.command("down")
def down(spec: Path = SpecOpt) -> None:
    """Stop every server and remove all the lab made (namespaces, links, mounts, tables)."""
    lab = _lab(spec)
    try:
        check_prerequisites(("ip", "nft"))
        with _progress(f"lab {lab.name} down") as progress:
            lab.down(progress=progress)
    except LabError as exc:
        _die(exc)
    console.print(f"lab {lab.name}: down, nothing left", highlight=False)


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _table(lab: Lab) -> None:
    rows = lab.status()
    table = Table(title=f"lab {lab.name}")
    for col in ("server", "state", "site", "address", "roles", "uptime"):
        table.add_column(col)
    colors = {"running": "green", "paused": "yellow", "stopped": "red", "down": "dim"}
    for r in rows:
        state = r["state"] + (" partitioned" if r["partitioned"] else "")
        table.add_row(r["name"], f"[{colors.get(r['state'], 'white')}]{state}[/]", r["site"],
                      r["address"], ",".join(x for x in r["roles"] if x not in ("base", "mesh")),
                      _uptime(r["uptime_s"]))
    console.print(table)


@app.command("status")
def status(spec: Path = SpecOpt, json_out: bool = typer.Option(False, "--json")) -> None:
    """Each server's state (running, stopped, paused, partitioned), site, address, roles, uptime."""
    lab = _lab(spec)
    try:
        if json_out:
            print_json({"lab": lab.name, "up": lab.is_up(), "servers": lab.status(),
                        "links": lab.links() if lab.is_up() else {}})
            return
        _table(lab)
    except LabError as exc:
        _die(exc)


@app.command("ssh", context_settings={"allow_extra_args": True,
                                      "ignore_unknown_options": True})
def ssh(ctx: typer.Context, host: str = typer.Argument(..., help="server name"),
        spec: Path = SpecOpt) -> None:
    """SSH into a lab server as root (host key checked); with CMD, run it and exit with its code."""
    lab = _lab(spec)
    try:
        args = lab.ssh_args(host)
    except LabError as exc:
        _die(exc)
    if not lab.ssh_key_path.exists():
        fail(f"lab {lab.name} is not up: run `freehold lab up --spec {spec}` first")
    cmd = list(ctx.args)
    if not cmd:
        os.execvp(args[0], [*args[:-1], "-t", args[-1]])
    raise typer.Exit(subprocess.run([*args, " ".join(cmd)], check=False).returncode)


@image_app.command("build")
def image_build(rebuild: bool = typer.Option(False, "--rebuild",
                                             help="build again even when cached")) -> None:
    """Build the Debian 12 image with debootstrap (cached outside the repo)."""
    try:
        check_prerequisites(("debootstrap", "systemd-nspawn"))
        with _progress("image") as progress:
            path = build_image(rebuild=rebuild, log=lambda m: progress(m, 0, 1))
    except LabError as exc:
        _die(exc)
    info = image_info()
    console.print(f"image {path} (built in {info.get('build_seconds', '?')} s from "
                  f"{info.get('mirror', '?')})", highlight=False)


@image_app.command("info")
def image_show(json_out: bool = typer.Option(False, "--json")) -> None:
    """Where the image is, whether it is built, from which mirror."""
    info = image_info()
    if json_out:
        print_json(info)
    else:
        for k, v in info.items():
            console.print(f"{k}: {v}", highlight=False)


def _fault(spec: Path, action: Callable[[Lab], object], done: str) -> None:
    lab = _lab(spec)
    if not lab.is_up():
        fail(f"lab {lab.name} is not up: run `freehold lab up --spec {spec}` first")
    try:
        action(lab)
    except LabError as exc:
        _die(exc)
    console.print(done, highlight=False)


HostArg = typer.Argument(..., help="server name")


@fault_app.command("kill")
def fault_kill(host: str = HostArg, spec: Path = SpecOpt) -> None:
    """Power loss: every process of the server killed at once."""
    _fault(spec, lambda lab: lab.kill(host), f"{host}: killed")


@fault_app.command("stop")
def fault_stop(host: str = HostArg, spec: Path = SpecOpt) -> None:
    """Clean poweroff of the server."""
    _fault(spec, lambda lab: lab.stop(host), f"{host}: stopped")


@fault_app.command("start")
def fault_start(host: str = HostArg, spec: Path = SpecOpt) -> None:
    """Boot a killed or stopped server again (same disk)."""
    _fault(spec, lambda lab: lab.start(host), f"{host}: running")


@fault_app.command("pause")
def fault_pause(host: str = HostArg, spec: Path = SpecOpt) -> None:
    """Freeze the server (SIGSTOP to all its processes)."""
    _fault(spec, lambda lab: lab.pause(host), f"{host}: paused")


@fault_app.command("resume")
def fault_resume(host: str = HostArg, spec: Path = SpecOpt) -> None:
    """Thaw a paused server."""
    _fault(spec, lambda lab: lab.resume(host), f"{host}: running")


@fault_app.command("partition")
def fault_partition(target: str = typer.Argument(..., help="SITE or HOST to cut off"),
                    from_: str | None = typer.Option(None, "--from",
                                                     help="SITE or HOST (default: all others)"),
                    spec: Path = SpecOpt) -> None:
    """Cut a site or server off from another one (or from every other server)."""
    _fault(spec, lambda lab: lab.partition(target, from_),
           f"{target}: cut off from {from_ or 'every other server'}")


@fault_app.command("heal")
def fault_heal(spec: Path = SpecOpt) -> None:
    """Remove every partition and set every link back to the spec's latency."""
    _fault(spec, lambda lab: lab.heal(), "healed: no partition, spec latencies")


def _quantity(text: str, unit: str, what: str) -> float:
    m = re.fullmatch(rf"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:{unit})?\s*", text)
    if not m:
        fail(f"{what} {text!r}: give a number, e.g. 80{unit}")
    return float(m.group(1))


@fault_app.command("slow")
def fault_slow(pair: str = typer.Argument(..., help="SITE-SITE"),
               delay: str = typer.Option(..., "--delay", help="round trip, e.g. 80ms"),
               loss: str = typer.Option("0%", "--loss", help="loss each way, e.g. 1%"),
               spec: Path = SpecOpt) -> None:
    """Set the round-trip delay (and loss) between two sites."""
    d = _quantity(delay, "ms", "--delay")
    lo = _quantity(loss, "%", "--loss")
    _fault(spec, lambda lab: lab.slow(pair, d, lo), f"{pair}: {d:g} ms round trip, {lo:g}% loss")
