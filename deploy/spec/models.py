"""Cluster spec models: what the YAML may say (`*In`, strict) and the expanded spec."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
)
from pydantic_core import PydanticCustomError

ROLES = ("base", "mesh", "etcd", "postgres", "pgbouncer", "redis", "lb", "app", "worker",
         "media", "monitoring", "backup", "dns", "loadgen")
IMPLIED_ROLES = ("base", "mesh")
ProviderKind = Literal["owned", "rented", "cloud"]
NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$"
DEFAULT_MESH = ipaddress.IPv4Network("100.96.0.0/16")
DEFAULT_LAB = ipaddress.IPv4Network("198.18.0.0/15")


def spec_problem(what: str, fix: str) -> PydanticCustomError:
    """A validation error the loader reports as "<field>: <what> — <fix>"."""
    return PydanticCustomError("spec_problem", "{what} — {fix}", {"what": what, "fix": fix})


def _numbers_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def spec_text(pattern: str, form: str) -> Any:
    """A string type that must match `pattern` in full (YAML numbers are taken as their text),
    for spec strings that reach a command, a URL or a config file. A mismatch is reported as
    "<field>: '<value>' is not allowed — use <form>"."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if regex.fullmatch(value) is None:
            raise spec_problem(f"{value!r} is not allowed", f"use {form}")
        return value

    return Annotated[str, BeforeValidator(_numbers_as_text), AfterValidator(check)]


UnixUser = spec_text(r"[a-z_][a-z0-9_-]{0,31}",
                     "a Unix user name: lower-case letters, digits, '_' and '-' (at most 32)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- what a spec file may contain -------------------------------------------------------

class ProviderIn(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: ProviderKind
    notes: str | None = None


class SiteIn(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    provider: str
    latency_ms: dict[str, float] = Field(default_factory=dict)
    network: ipaddress.IPv4Network | None = None
    notes: str | None = None


class ServerDefaultsIn(_Strict):
    ssh_user: UnixUser = "root"
    ssh_port: int = Field(22, ge=1, le=65535)
    ssh_key: str | None = None
    cores: int = Field(2, ge=1)
    ram_gib: float = Field(4, gt=0)
    disk_gib: float = Field(40, gt=0)
    roles: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)


class ServerIn(_Strict):
    name: str
    site: str
    provider: str | None = None
    address: str | None = None
    address_start: str | None = None
    public_address: str | None = None
    public_address_start: str | None = None
    private_address: str | None = None
    private_address_start: str | None = None
    mesh_address: str | None = None
    mesh_address_start: str | None = None
    ssh_user: UnixUser | None = None
    ssh_port: int | None = Field(None, ge=1, le=65535)
    ssh_key: str | None = None
    cores: int | None = Field(None, ge=1)
    ram_gib: float | None = Field(None, gt=0)
    disk_gib: float | None = Field(None, gt=0)
    roles: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)


class MeshIn(_Strict):
    network: ipaddress.IPv4Network = DEFAULT_MESH
    port: int = Field(51820, ge=1, le=65535)
    # seconds between keepalives to every peer; 0 (off) unless servers sit behind NAT: with
    # N servers a full mesh sends N*(N-1)/keepalive packets a second for nothing
    keepalive: int = Field(0, ge=0, le=3600)


class LabIn(_Strict):
    network: ipaddress.IPv4Network = DEFAULT_LAB


class SpecIn(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    providers: list[ProviderIn] = Field(min_length=1)
    sites: list[SiteIn] = Field(min_length=1)
    defaults: ServerDefaultsIn = Field(default_factory=ServerDefaultsIn)
    roles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    mesh: MeshIn = Field(default_factory=MeshIn)
    lab: LabIn | None = None
    known_hosts: list[str] | None = Field(None, min_length=1)
    servers: list[ServerIn] = Field(min_length=1)

    @field_validator("known_hosts")
    @classmethod
    def _known_hosts_paths(cls, files: list[str] | None) -> list[str] | None:
        for f in files or []:
            if not f.strip() or any(c in f for c in "\0\n\r"):
                raise ValueError(f"{f!r} is not a file path — give known_hosts file paths "
                                 "(relative to the spec's folder, or ~/…)")
        return files


# ---- the expanded spec every command reads ----------------------------------------------

class Provider(BaseModel):
    name: str
    kind: ProviderKind


class Site(BaseModel):
    name: str
    provider: str
    latency_ms: dict[str, float] = Field(default_factory=dict)
    network: ipaddress.IPv4Network | None = None


class Server(BaseModel):
    name: str
    site: str
    provider: str
    public_address: str
    private_address: str
    mesh_address: str
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_key: str | None = None
    cores: int
    ram_gib: float
    disk_gib: float
    roles: list[str]
    labels: dict[str, str] = Field(default_factory=dict)
    line: int | None = Field(default=None, exclude=True, repr=False)

    def has(self, role: str) -> bool:
        return role in self.roles


class Mesh(BaseModel):
    network: ipaddress.IPv4Network = DEFAULT_MESH
    port: int = 51820
    keepalive: int = 0


class LabSettings(BaseModel):
    network: ipaddress.IPv4Network = DEFAULT_LAB


class ClusterSpec(BaseModel):
    name: str
    path: str = "<spec>"
    providers: list[Provider]
    sites: list[Site]
    servers: list[Server]
    roles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    mesh: Mesh = Field(default_factory=Mesh)
    lab: LabSettings | None = None
    # host keys are checked against these (absolute; the first one naming a server decides;
    # `freehold trust` and the lab record keys in the first)
    known_hosts: list[str] = Field(default_factory=list)
    _by_name: dict[str, Server] = PrivateAttr(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        self._by_name = {s.name: s for s in self.servers}

    def server(self, name: str) -> Server:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no server named {name!r} in spec {self.name}") from None

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site named {name!r} in spec {self.name}")

    def provider(self, name: str) -> Provider:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(f"no provider named {name!r} in spec {self.name}")

    def servers_with_role(self, role: str) -> list[Server]:
        return [s for s in self.servers if role in s.roles]

    def servers_in_site(self, site: str) -> list[Server]:
        return [s for s in self.servers if s.site == site]

    def servers_of_provider(self, provider: str) -> list[Server]:
        return [s for s in self.servers if s.provider == provider]

    def role_settings(self, role: str) -> dict[str, Any]:
        return dict(self.roles.get(role) or {})

    def latency(self, a: str, b: str) -> float | None:
        """Round-trip ms between two sites (0 within a site), None when the spec does not say."""
        if a == b:
            return 0.0
        return self.site(a).latency_ms.get(b)
