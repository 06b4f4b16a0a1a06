"""Lab fixtures: real systemd-nspawn servers (needs root, systemd-container, debootstrap,
nftables). Reusable by every engineer's lab tests:

    def test_x(main_lab): main_lab.run("a1", "hostname")      # inventories/lab.yaml, up

`main_lab` boots inventories/lab.yaml for the session and takes it down at the end, unless it was
already up before the session (then it is left as found). `small_lab` is this package's own
3-server, 2-site lab on 198.19.200.0/22, so it runs beside the main lab. Two runs of the small
labs side by side (two engineers, two CI jobs) each take their own name and /20:
`FREEHOLD_LAB_TEST_NAME=lab-h7 FREEHOLD_LAB_TEST_NET=198.19.48` (its second lab uses .56).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from freehold.deploy.lab import Lab
from freehold.deploy.lab.hygiene import Snapshot, snapshot
from tests.lab.cli import LabSecrets

REPO = Path(__file__).resolve().parents[2]
SMALL_NAME = os.environ.get("FREEHOLD_LAB_TEST_NAME", "labtest")
SMALL_NET = os.environ.get("FREEHOLD_LAB_TEST_NET", "198.19.200")
SMALL_SPEC = textwrap.dedent("""\
    name: {name}
    providers:
      - {{name: p1, kind: owned}}
      - {{name: p2, kind: rented}}
    sites:
      - {{name: a, provider: p1, network: {net}.{o}.0/24, latency_ms: {{b: 40}}}}
      - {{name: b, provider: p2, network: {net}.{o1}.0/24}}
    lab: {{network: {net}.{o}.0/22}}
    defaults: {{cores: 1, ram_gib: 1, disk_gib: 10}}
    servers:
      - {{name: a1, site: a, address: {net}.{o}.10, roles: [etcd]}}
      - {{name: a2, site: a, address: {net}.{o}.11, roles: [app]}}
      - {{name: b1, site: b, address: {net}.{o1}.10, roles: [postgres]}}
    """)


def lab_missing() -> str | None:
    """Why lab tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "lab tests need root"
    for tool in ("systemd-nspawn", "debootstrap", "nft", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} missing: run `bash scripts/install-deps.sh` as root"
    return None


def small_lab_name(kind: str = "") -> str:
    """The small lab's name, or its sibling's (kind "clash", "hyg") for one-off labs."""
    if not kind:
        return SMALL_NAME
    return f"lab{kind}" if SMALL_NAME == "labtest" else f"{SMALL_NAME}{kind[0]}"


def small_lab_net(offset: int = 0) -> str:
    """First three octets of a small lab's range: `offset` /24s past the configured one."""
    a, b, c = SMALL_NET.split(".")
    return f"{a}.{b}.{int(c) + offset}"


def write_small_spec(path: Path, name: str = SMALL_NAME, net: str = SMALL_NET) -> Path:
    """3 servers (a1, a2 in site a; b1 in site b; 40 ms between), lab network <net>.0/22."""
    a, b, c = net.split(".")
    path.write_text(SMALL_SPEC.format(name=name, net=f"{a}.{b}", o=int(c), o1=int(c) + 1))
    return path


@pytest.fixture(scope="session")
def lab_ready() -> None:
    reason = lab_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def small_lab_spec(tmp_path_factory: pytest.TempPathFactory, lab_ready: None) -> Path:
    return write_small_spec(tmp_path_factory.mktemp("labspec") / "small-lab.yaml")


@pytest.fixture(scope="session")
def before_small_lab(small_lab_spec: Path) -> Snapshot:
    """The machine before the small lab came up."""
    Lab.from_spec(small_lab_spec).down()     # a previous run killed midway leaves nothing
    return snapshot()


@pytest.fixture(scope="session")
def small_lab(small_lab_spec: Path, before_small_lab: Snapshot) -> Iterator[Lab]:
    lab = Lab.from_spec(small_lab_spec)
    lab.up(timeout=120)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def main_lab(lab_ready: None) -> Iterator[Lab]:
    """inventories/lab.yaml, up for the session (left up if it was up before)."""
    lab = Lab.from_spec(REPO / "inventories" / "lab.yaml")
    was_up = lab.is_up()
    lab.up(timeout=180)
    try:
        yield lab
    finally:
        if not was_up:
            lab.down()


@pytest.fixture(scope="session")
def lab_secrets(main_lab: Lab) -> LabSecrets:
    """The secrets every module deploying the main lab uses (tests/lab/cli.py)."""
    return LabSecrets.of(main_lab)


def lab_named_by(variable: str, spec_path: Path, request: pytest.FixtureRequest) -> Lab:
    """The session's main lab, or — when the environment variable `variable` names another spec
    (development: a small lab already up) — that lab; one that is not up fails, never skips."""
    if not os.environ.get(variable):
        return request.getfixturevalue("main_lab")
    lab = Lab.from_spec(spec_path)
    if not lab.is_up():
        pytest.fail(f"{variable}={spec_path}: that lab is not up — "
                    f"`freehold lab up --spec {spec_path}`, or unset the variable",
                    pytrace=False)
    return lab
