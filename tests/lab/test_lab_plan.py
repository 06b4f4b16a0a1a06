"""The lab's plan from a spec and the delay line's link table (no root needed)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from freehold.deploy.lab.delayline import Links
from freehold.deploy.lab.errors import LabError
from freehold.deploy.lab.image import apt_sources, debian_mirror, image_sources
from freehold.deploy.lab.layout import lab_tag, plan_lab
from freehold.deploy.spec import load_spec

from .conftest import write_small_spec

REPO = Path(__file__).resolve().parents[2]


def test_plan_of_the_main_lab() -> None:
    plan = plan_lab(load_spec(REPO / "inventories" / "lab.yaml"))
    assert plan.prefix == "fhlab-" and plan.host_link == "fhlab-h"
    assert [str(s.network) for s in plan.sites] == ["198.18.1.0/24", "198.18.2.0/24",
                                                    "198.18.3.0/24"]
    assert [str(s.gateway) for s in plan.sites] == ["198.18.1.1", "198.18.2.1", "198.18.3.1"]
    assert str(plan.transit) == "198.19.255.252/30"
    a1 = plan.server("a1")
    assert (str(a1.address), a1.netns, str(a1.gateway)) == ("198.18.1.10", "fhlab-a1",
                                                            "198.18.1.1")
    assert plan.latency("a", "c") == plan.latency("c", "a") == 25.0
    assert plan.latency("a", "a") == 0.0
    assert [s.name for s in plan.resolve("b")] == ["b1", "b2", "b3"]
    with pytest.raises(LabError, match="neither a site nor a server"):
        plan.resolve("zz")


def test_interface_names_fit_15_chars() -> None:
    assert lab_tag("lab") == "lab"
    long = lab_tag("a-very-long-lab-name")
    assert len(f"fh{long}-h") <= 15 and long != lab_tag("a-very-long-lab-name2")


def test_plan_problems_one_line_each(tmp_path: Path) -> None:
    """The loader already refuses these; the plan double-checks specs built in code."""
    spec = load_spec(write_small_spec(tmp_path / "s.yaml", net="198.19.200"))
    spec.sites[1].network = ipaddress.IPv4Network("198.19.210.0/24")
    spec.servers[1].private_address = "198.19.200.1"
    with pytest.raises(LabError) as err:
        plan_lab(spec)
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert "sites.b.network: 198.19.210.0/24 is outside lab.network" in lines[0]
    assert "servers.a2.address: 198.19.200.1 is not a usable host address" in lines[1]
    assert "servers.b1.address: 198.19.201.10 is not a usable host address" in lines[2]


def test_apt_sources_deb822_and_one_line(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm "
        "bookworm-updates\nComponents: main contrib\n\nTypes: deb\nURIs: http://sec.example/ds\n"
        "Suites: bookworm-security\nComponents: main\nEnabled: no\n")
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://other.example/debian bookworm-backports main\n")
    found = apt_sources(tmp_path)
    assert [s.uri for s in found] == ["http://mirror.example/debian",
                                      "http://other.example/debian"]
    assert debian_mirror(found) == "http://mirror.example/debian"
    assert "Suites: bookworm bookworm-updates\nComponents: main contrib" in image_sources(found)
    with pytest.raises(LabError, match="no apt source for Debian bookworm"):
        debian_mirror(found[1:])


def test_delay_line_table(tmp_path: Path) -> None:
    cfg = tmp_path / "links.json"
    cfg.write_text(json.dumps({"sites": {"a": "10.0.1.0/24", "b": "10.0.2.0/24"},
                               "links": {"a>b": {"delay_ms": 20, "loss_pct": 0},
                                         "b>a": {"delay_ms": 5, "loss_pct": 50}}}))
    links = Links(cfg)

    def packet(src: str, dst: str) -> bytes:
        return (bytes([0x45]) + bytes(11) + ipaddress.IPv4Address(src).packed
                + ipaddress.IPv4Address(dst).packed)

    assert links.lookup(packet("10.0.1.5", "10.0.2.7")) == (0.02, 0.0)
    assert links.lookup(packet("10.0.2.7", "10.0.1.5")) == (0.005, 0.5)
    assert links.lookup(packet("10.0.1.5", "10.0.1.6")) == (0.0, 0.0)
    assert links.lookup(packet("192.0.2.1", "10.0.1.6")) == (0.0, 0.0)
    assert links.lookup(b"\x60" + bytes(39)) == (0.0, 0.0)          # IPv6: passes through
