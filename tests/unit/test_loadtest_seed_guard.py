"""Which targets `freehold loadtest seed` writes to without --production-ok (issue 18.1): the lab
spec, and databases on this machine or in the lab; and where the roster (credentials) goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.app.services.accounts import LOADTEST_PREFIX, check_username
from freehold.app.services.errors import Invalid
from freehold.deploy.loadtest.seed import SeedError, refuse_production
from freehold.deploy.loadtest.target import resolve_target

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab.yaml"


def test_only_the_lab_spec_is_a_lab(tmp_path: Path) -> None:
    assert resolve_target(str(LAB)).is_lab
    for name in ("production-example.yaml", "single-site.yaml"):
        assert not resolve_target(str(ROOT / "inventories" / name)).is_lab
    # the lab's servers without its lab section (as a production copy would be) are not a lab
    text = LAB.read_text()
    section = "lab:\n  network: 198.18.0.0/15\n"
    assert section in text
    spec = tmp_path / "lab.yaml"
    spec.write_text(text.replace(section, ""))
    assert not resolve_target(str(spec)).is_lab


@pytest.mark.parametrize("dsn", [
    "postgresql://freehold:pw@127.0.0.1:5432/freehold",
    "postgresql://freehold@localhost/freehold",
    "postgresql:///freehold?host=/run/postgresql",
    "host=127.0.0.2 dbname=freehold",
])
def test_local_databases_need_no_flag(dsn: str) -> None:
    refuse_production(resolve_target("http://127.0.0.1:8000"), dsn, False)


@pytest.mark.parametrize("target,dsn", [
    ("http://127.0.0.1:8000", "postgresql://freehold:pw@203.0.113.5:5432/freehold"),
    ("http://127.0.0.1:8000", "postgresql://freehold:pw@db.example.org/freehold"),
    ("http://127.0.0.1:8000", "host=127.0.0.1,203.0.113.5 dbname=freehold"),
    (str(LAB), "postgresql://freehold:pw@203.0.113.5/freehold"),
    (str(ROOT / "inventories" / "production-example.yaml"), None),
])
def test_other_targets_are_refused_without_the_flag(target: str, dsn: str | None) -> None:
    tgt = resolve_target(target)
    with pytest.raises(SeedError) as err:
        refuse_production(tgt, dsn, False)
    msg = str(err.value)
    assert msg.startswith("--production-ok:") and "\n" not in msg
    assert "pw" not in msg  # no password from the DSN in the message
    refuse_production(tgt, dsn, True)


def test_a_lab_database_needs_no_flag() -> None:
    refuse_production(resolve_target(str(LAB)), "postgresql://f:pw@198.18.1.14:5000/f", False)
    refuse_production(resolve_target(str(LAB)), None, False)


def test_the_roster_lives_with_the_operators_keys_not_in_the_repository() -> None:
    path = resolve_target(str(LAB)).default_roster
    assert not path.resolve().is_relative_to(ROOT)
    assert path.parent.parent == Path.home() / ".config" / "freehold"


def test_usernames_under_the_loadtest_prefix_are_refused() -> None:
    for name in (f"{LOADTEST_PREFIX}x1", f"{LOADTEST_PREFIX.upper()}x1"):
        with pytest.raises(Invalid) as err:
            check_username(name)
        assert err.value.field == "username"
    assert check_username("loadtester") == "loadtester"
