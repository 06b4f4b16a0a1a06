"""The EnvironmentFile writer against real systemd (Debian 12's, on a lab server): a unit that
reads the file sees every value exactly as written."""

from __future__ import annotations

import base64
import json

from freehold.deploy.lab import Lab
from freehold.roles.common.envfile import environment_file
from tests.unit.test_envfile import HARD_VALUES


def test_systemd_reads_every_value_as_written(small_lab: Lab) -> None:
    values = {f"FREEHOLD_V{i}": v for i, v in enumerate(HARD_VALUES)}
    text = base64.b64encode(environment_file(values, "envfile test").encode()).decode()
    show = "import json, os; print(json.dumps({k: v for k, v in os.environ.items()}))"
    r = small_lab.run("a1", f"echo {text} | base64 -d > /run/freehold-envcheck.env && "
                            "systemd-run --quiet --wait --pipe "
                            "-p EnvironmentFile=/run/freehold-envcheck.env "
                            f"/usr/bin/python3 -c '{show}'; "
                            "rm -f /run/freehold-envcheck.env", timeout=60)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert {k: seen.get(k) for k in values} == values
