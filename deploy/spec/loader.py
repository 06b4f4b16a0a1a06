"""Read a cluster spec: YAML (with line numbers) -> strict models -> ranges expanded -> checked.

YAML is read with PyYAML's libyaml loader (ten times faster than a round-trip loader on a
300-entry spec); line numbers come from the composed node tree.

Every problem found is reported, one line each, as
"<file>:<line>: <field.path>: <what> — <fix>" inside one SpecError.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from freehold.deploy.spec.errors import LineMap, Problems, SpecError
from freehold.deploy.spec.models import (
    IMPLIED_ROLES,
    ROLES,
    ClusterSpec,
    LabSettings,
    Mesh,
    Provider,
    Server,
    ServerIn,
    Site,
    SpecIn,
)
from freehold.deploy.spec.ranges import RangeError, count_up, expand, expand_addresses
from freehold.deploy.spec.role_settings import validated

# settings the kit reads, per role: name -> (type, check, fix)
INT_SETTINGS = {("redis", "replicas"): 0, ("redis", "masters"): 1, ("media", "masters"): 1,
                ("etcd", "members"): 1}
SITE_SETTINGS = {("postgres", "primary_site"), ("postgres", "standby_site")}


def load_spec(path: Path | str) -> ClusterSpec:
    """Load, expand and validate the spec at `path`; raises SpecError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError([f"{path}: cannot read the spec ({e.strerror or e}) — "
                         "give the path of a cluster spec YAML file"]) from None
    except UnicodeDecodeError:
        raise SpecError([f"{path}: not UTF-8 text — save the spec as UTF-8 YAML"]) from None
    return loads_spec(text, path)


def loads_spec(text: str, path: Path | str = "<spec>") -> ClusterSpec:
    """Like load_spec, from YAML text."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = (e.problem or e.context or "invalid YAML").strip()
        raise SpecError([f"{path}{line}: (yaml): {what} — fix the YAML syntax on that line"]
                        ) from None
    except yaml.YAMLError as e:
        raise SpecError([f"{path}: (yaml): {str(e).splitlines()[0]} — fix the YAML syntax"]
                        ) from None
    if not isinstance(data, dict):
        raise SpecError([f"{path}:1: (top level): the spec is not a mapping — start with "
                         "'name:', 'providers:', 'sites:' and 'servers:'"])
    lines, duplicates = LineMap.from_yaml(node)
    if duplicates:
        problems = Problems(path, lines)
        for loc, line, key in sorted(duplicates, key=lambda d: d[1]):
            problems.add(loc, f"key '{key}' given twice (the last one would win)",
                         "keep one", line=line)
        problems.raise_if_any()
    return parse_spec(data, path, lines)


def parse_spec(data: dict[str, Any], path: Path | str = "<spec>",
               lines: LineMap | None = None) -> ClusterSpec:
    """Validate and expand an already-parsed spec document."""
    problems = Problems(path, lines)
    try:
        raw = SpecIn.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            _pydantic_problem(problems, err)
        problems.raise_if_any()
        raise  # pragma: no cover - errors() is never empty
    spec = _expand(raw, problems)
    problems.raise_if_any()
    base = Path(str(path)).parent if not str(path).startswith("<") else None
    for server in spec.servers:  # ~/ and paths relative to the spec file's folder
        if server.ssh_key:
            key = Path(server.ssh_key).expanduser()
            if not key.is_absolute() and base is not None:
                key = base / key
            server.ssh_key = str(key)
    spec.known_hosts = known_hosts_files(raw.known_hosts, path)
    return spec


def known_hosts_files(given: list[str] | None, spec_path: Path | str) -> list[str]:
    """The spec's known_hosts files, absolute: as given (relative to the spec's folder), else
    `<spec stem>.known_hosts` beside the spec, then ~/.ssh/known_hosts."""
    home = Path("~/.ssh/known_hosts").expanduser()
    if str(spec_path).startswith("<"):
        return [str(Path(f).expanduser()) for f in given] if given else [str(home)]
    spec = Path(spec_path).absolute()
    if not given:
        return [str(spec.with_name(f"{spec.stem}.known_hosts")), str(home)]
    return [str(spec.parent / Path(f).expanduser()) for f in given]


def _pydantic_problem(problems: Problems, err: Any, prefix: tuple[str | int, ...] = ()) -> None:
    loc = (*prefix, *(part for part in err["loc"] if part != "[key]"))
    kind = err["type"]
    if kind == "spec_problem":
        problems.add(loc, err["ctx"]["what"], err["ctx"]["fix"])
    elif kind == "extra_forbidden":
        known = _known(loc) if not prefix else ""
        problems.add(loc, "unknown field", f"remove it or check its spelling{known}")
    elif kind == "missing":
        problems.add(loc, "missing", "add this field")
    elif kind == "literal_error":
        problems.add(loc, f"{err['input']!r} is not allowed", err["msg"].lower())
    elif kind == "string_pattern_mismatch":
        problems.add(loc, f"{err['input']!r} is not a valid name",
                     "use lower-case letters, digits, '-' and '_'")
    else:
        given = err.get("input")
        what = err["msg"] if isinstance(given, dict | list) else f"{given!r}: {err['msg']}"
        problems.add(loc, what, "fix the value")


def _known(loc: tuple[Any, ...]) -> str:
    models = {"providers": "ProviderIn", "sites": "SiteIn", "servers": "ServerIn",
              "defaults": "ServerDefaultsIn", "mesh": "MeshIn", "lab": "LabIn"}
    from freehold.deploy.spec import models as m
    cls = getattr(m, models.get(str(loc[0]), "SpecIn")) if len(loc) > 1 else SpecIn
    return " (known: " + ", ".join(cls.model_fields) + ")"


def _suggest(value: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "use one of: " + ", ".join(choices)


def _expand(raw: SpecIn, problems: Problems) -> ClusterSpec:
    providers = [Provider(name=p.name, kind=p.kind) for p in raw.providers]
    provider_names = [p.name for p in providers]
    _duplicates(problems, "providers", provider_names)
    site_names = [s.name for s in raw.sites]
    _duplicates(problems, "sites", site_names)

    lab = LabSettings(network=raw.lab.network) if raw.lab else None
    lab_subnets = list(lab.network.subnets(new_prefix=24)) if lab else []
    sites: list[Site] = []
    for i, s in enumerate(raw.sites):
        if s.provider not in provider_names:
            problems.add(("sites", i, "provider"), f"unknown provider '{s.provider}'",
                         _suggest(s.provider, provider_names))
        for other, ms in s.latency_ms.items():
            if other not in site_names or other == s.name:
                problems.add(("sites", i, "latency_ms", other), f"'{other}' is not another site",
                             _suggest(other, [n for n in site_names if n != s.name]))
            elif ms < 0:
                problems.add(("sites", i, "latency_ms", other), f"negative latency {ms}",
                             "give the round-trip time in milliseconds")
        network = s.network
        if lab and network is None and i + 1 < len(lab_subnets):
            network = lab_subnets[i + 1]
        if lab and network is not None and not network.subnet_of(lab.network):
            problems.add(("sites", i, "network"), f"{network} is outside the lab network "
                         f"{lab.network}", "pick a /24 inside it")
        sites.append(Site(name=s.name, provider=s.provider, latency_ms=dict(s.latency_ms),
                          network=network))
    # latency is a round trip: fill in the reverse direction where only one side says it
    by_site = {s.name: s for s in sites}
    for s in sites:
        for other, ms in list(s.latency_ms.items()):
            if other in by_site and other != s.name:
                by_site[other].latency_ms.setdefault(s.name, ms)
    for i, s in enumerate(sites):
        for j in range(i):
            if s.network and sites[j].network and s.network.overlaps(sites[j].network):
                problems.add(("sites", i, "network"), f"{s.network} overlaps site "
                             f"{sites[j].name}'s {sites[j].network}", "give each site its own")

    roles = _role_settings(raw, problems, site_names)
    servers = _servers(raw, problems, by_site, provider_names, lab)
    mesh = Mesh(network=raw.mesh.network, port=raw.mesh.port, keepalive=raw.mesh.keepalive)
    _mesh_addresses(servers, sites, mesh.network, problems)
    _clashes(servers, problems)
    return ClusterSpec(name=raw.name, path=problems.path, providers=providers, sites=sites,
                       servers=[s for s, _ in servers], roles=roles, mesh=mesh, lab=lab)


def _duplicates(problems: Problems, field: str, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            problems.add((field, i, "name"), f"duplicate name '{name}' (also {field}"
                         f"[{seen[name]}])", "give each a unique name")
        seen.setdefault(name, i)


def _role_settings(raw: SpecIn, problems: Problems, sites: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for role, settings in raw.roles.items():
        if role not in ROLES:
            problems.add(("roles", role), f"unknown role '{role}'", _suggest(role, ROLES))
            continue
        settings = dict(settings or {})
        try:
            settings = validated(role, settings)
        except ValidationError as e:
            for err in e.errors():
                _pydantic_problem(problems, err, ("roles", role))
        for key, value in settings.items():
            if (role, key) in INT_SETTINGS:
                low = INT_SETTINGS[(role, key)]
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    problems.add(("roles", role, key), f"{value!r} is not a whole number ≥ {low}",
                                 f"give a whole number ≥ {low}")
            if (role, key) in SITE_SETTINGS and value not in sites:
                problems.add(("roles", role, key), f"unknown site '{value}'",
                             _suggest(str(value), sites))
        out[role] = settings
    return out


def _pick(entry: ServerIn, field: str, problems: Problems, i: int,
          count: int) -> list[str] | None:
    """Addresses for one field (address/public/private/mesh) of a server entry, expanded."""
    value = getattr(entry, field)
    start = getattr(entry, f"{field}_start")
    if value is not None and start is not None:
        problems.add(("servers", i, f"{field}_start"), f"both {field} and {field}_start given",
                     "keep one")
        return None
    try:
        if start is not None:
            return count_up(start, count)
        if value is not None:
            return expand_addresses(value, count)
    except RangeError as e:
        what, _, fix = str(e).partition(" — ")
        problems.add(("servers", i, f"{field}_start" if start is not None else field), what, fix)
    return None


def _servers(raw: SpecIn, problems: Problems, sites: dict[str, Site], providers: list[str],
             lab: LabSettings | None) -> list[tuple[Server, int]]:
    d = raw.defaults
    out: list[tuple[Server, int]] = []
    seen: dict[str, int] = {}
    for d_role_i, role in enumerate(d.roles):
        if role not in ROLES:
            problems.add(("defaults", "roles", d_role_i), f"unknown role '{role}'",
                         _suggest(role, ROLES))
    for i, entry in enumerate(raw.servers):
        line = problems.lines.line(("servers", i))
        try:
            names = expand(entry.name)
        except RangeError as e:
            what, _, fix = str(e).partition(" — ")
            problems.add(("servers", i, "name"), what, fix)
            continue
        site = sites.get(entry.site)
        if site is None:
            problems.add(("servers", i, "site"), f"unknown site '{entry.site}'",
                         _suggest(entry.site, list(sites)))
        elif entry.provider is not None and entry.provider != site.provider:
            problems.add(("servers", i, "provider"), f"'{entry.provider}' but site "
                         f"{site.name} is at provider {site.provider}",
                         "drop the field or move the server to a site of that provider")
        roles: list[str] = list(IMPLIED_ROLES)
        for j, role in enumerate(entry.roles):
            if role not in ROLES:
                problems.add(("servers", i, "roles", j), f"unknown role '{role}'",
                             _suggest(role, ROLES))
        for role in [*d.roles, *entry.roles]:
            if role in ROLES and role not in roles:
                roles.append(role)
        count = len(names)
        before = len(problems.items)
        both = _pick(entry, "address", problems, i, count)
        public = _pick(entry, "public_address", problems, i, count) or both
        private = _pick(entry, "private_address", problems, i, count) or both
        mesh = _pick(entry, "mesh_address", problems, i, count)
        if len(problems.items) > before or site is None:
            continue
        if public is None and private is None:
            problems.add(("servers", i), "no address",
                         "give address (or public_address and private_address)")
            continue
        public = public or private
        private = private or public
        if public is None or private is None:  # pragma: no cover - narrowed above
            continue
        for k, name in enumerate(names):
            if not _valid_hostname(name):
                problems.add(("servers", i, "name"), f"'{name}' is not a valid host name",
                             "use lower-case letters, digits and '-' (at most 63)")
                break
            if name in seen:
                first_line = problems.lines.line(("servers", seen[name]))
                problems.add(("servers", i, "name"), f"duplicate name '{name}' (also servers"
                             f"[{seen[name]}] at line {first_line})",
                             "rename one; ranges must not overlap")
                continue
            seen[name] = i
            server = Server(
                name=name, site=site.name, provider=site.provider,
                public_address=public[k], private_address=private[k],
                mesh_address=mesh[k] if mesh else "",
                ssh_user=entry.ssh_user or d.ssh_user, ssh_port=entry.ssh_port or d.ssh_port,
                ssh_key=entry.ssh_key or d.ssh_key, cores=entry.cores or d.cores,
                ram_gib=entry.ram_gib or d.ram_gib, disk_gib=entry.disk_gib or d.disk_gib,
                roles=roles, labels={**d.labels, **entry.labels}, line=line)
            _check_site_network(server, site, lab, problems, i)
            out.append((server, i))
    return out


def _valid_hostname(name: str) -> bool:
    import re
    return bool(re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name))


def _check_site_network(server: Server, site: Site, lab: LabSettings | None,
                        problems: Problems, i: int) -> None:
    net = site.network
    if net is None:
        return
    addr = ipaddress.IPv4Address(server.private_address)
    if addr not in net:
        problems.add(("servers", i, "private_address"), f"{server.name}: {addr} is outside "
                     f"site {site.name}'s network {net}", f"use an address inside {net}")
    elif lab and addr in (net.network_address, net.broadcast_address, net.network_address + 1):
        problems.add(("servers", i, "private_address"), f"{server.name}: {addr} is reserved "
                     f"(network, broadcast or the lab router)", f"use {net.network_address + 10}"
                     " and up")


def _mesh_addresses(servers: list[tuple[Server, int]], sites: list[Site],
                    network: ipaddress.IPv4Network, problems: Problems) -> None:
    """Servers without a mesh address get one from their site's block of the mesh network:
    the network is cut into equal blocks (a power of two, one per site), and a site's servers
    count up from the block's first host in spec order, so adding a server to the end of a
    site's list never moves another server."""
    blocks = 2 ** math.ceil(math.log2(max(len(sites), 1)))
    size = network.num_addresses // blocks
    index = {s.name: k for k, s in enumerate(sites)}
    used: dict[str, int] = {}
    for server, i in servers:
        if server.mesh_address:
            if ipaddress.IPv4Address(server.mesh_address) not in network:
                problems.add(("servers", i, "mesh_address"), f"{server.name}: "
                             f"{server.mesh_address} is outside the mesh network {network}",
                             "use an address inside mesh.network or leave it out")
            continue
        k = used.get(server.site, 0)
        used[server.site] = k + 1
        if k + 2 >= size:
            problems.add(("servers", i), f"{server.name}: site {server.site}'s block of "
                         f"mesh.network {network} is exhausted ({size - 2} addresses)",
                         "give a larger mesh.network")
            continue
        server.mesh_address = str(network.network_address + index[server.site] * size + 1 + k)


def _clashes(servers: list[tuple[Server, int]], problems: Problems) -> None:
    owner: dict[str, tuple[str, int]] = {}
    mesh_owner: dict[str, str] = {}
    for server, i in servers:
        for field, addr in (("public_address", server.public_address),
                            ("private_address", server.private_address)):
            other = owner.get(addr)
            if other and other[0] != server.name:
                problems.add(("servers", i, field), f"address clash: {server.name} and "
                             f"{other[0]} (servers[{other[1]}]) both use {addr}",
                             "give each server its own address; ranges must not overlap")
                break
            owner[addr] = (server.name, i)
        other_mesh = mesh_owner.get(server.mesh_address)
        if other_mesh and server.mesh_address:
            problems.add(("servers", i, "mesh_address"), f"address clash: {server.name} and "
                         f"{other_mesh} both use mesh address {server.mesh_address}",
                         "give each server its own mesh address")
        mesh_owner[server.mesh_address] = server.name


__all__ = ["load_spec", "loads_spec", "parse_spec", "SpecError"]
