"""The machine-wide limits a lab raises before it boots (never lowering them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.deploy.lab import host


def test_the_arp_table_grows_with_the_lab() -> None:
    five, big = host.neighbour_limits(5), host.neighbour_limits(300)
    assert five == {"gc_thresh1": 128, "gc_thresh2": 768, "gc_thresh3": 1024}  # the defaults
    # 300 servers over 4 sites: the router knows all 300, each server ~75 of its site
    assert big["gc_thresh3"] >= 300 + 300 * 75
    assert big["gc_thresh1"] < big["gc_thresh2"] < big["gc_thresh3"]


def test_limits_are_raised_never_lowered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in (("gc_thresh1", 128), ("gc_thresh2", 100000), ("gc_thresh3", 1024)):
        (tmp_path / key).write_text(f"{value}\n")
    monkeypatch.setattr(host, "NEIGH", tmp_path)
    now = host.raise_neighbour_limits(300)
    assert (tmp_path / "gc_thresh3").read_text() == "38400\n"
    assert (tmp_path / "gc_thresh1").read_text() == "4800\n"
    assert (tmp_path / "gc_thresh2").read_text() == "100000\n"  # already higher: kept
    assert now == {"gc_thresh1": 4800, "gc_thresh2": 100000, "gc_thresh3": 38400}
