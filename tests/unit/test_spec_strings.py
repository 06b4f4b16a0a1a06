"""Spec strings that reach a shell, a URL or a config file: each bad value is refused with one
line naming the field, the value and the allowed form; good values still load; the media
bucket is quoted where it reaches a root shell; `roles.app.env` cannot shadow the kit's own
settings."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from freehold.deploy.secrets import Secrets
from freehold.deploy.spec import SpecError, load_spec, loads_spec
from tests.unit.systemd_envfile import read_environment_file

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab.yaml"


def lab_doc(**roles: dict[str, Any]) -> dict[str, Any]:
    doc = yaml.safe_load(LAB.read_text())
    for role, settings in roles.items():
        doc["roles"][role] = {**(doc["roles"].get(role) or {}), **settings}
    return doc


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as e:
        loads_spec(yaml.safe_dump(doc, sort_keys=False), "t.yaml")
    return e.value.problems


def only_problem(doc: dict[str, Any]) -> str:
    problems = problems_of(doc)
    assert len(problems) == 1, problems
    assert "\n" not in problems[0]
    return problems[0]


@pytest.mark.parametrize("path", sorted((ROOT / "inventories").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_inventory_still_loads(path: Path) -> None:
    assert load_spec(path).servers


BAD = [
    # (role, field, bad value, words of the allowed form)
    ("media", "bucket", "media; rm -rf /", "an S3 bucket name"),
    ("media", "bucket", "$(reboot)", "an S3 bucket name"),
    ("media", "bucket", "Media", "an S3 bucket name"),
    ("backup", "full_at", "daily\nExecStartPre=/bin/sh -c id", "OnCalendar expression"),
    ("backup", "repo_host", "b1 && id", "a server name"),
    ("backup", "compress", "xz", "'zst'"),
    ("backup", "repositories", 3, "1 or 2"),
    ("monitoring", "webhook_url", "http://h/$(id)", "http:// or https:// URL"),
    ("monitoring", "webhook_url", "file:///etc/shadow", "http:// or https:// URL"),
    ("pgbouncer", "replica_max_lag", "16MB\nhttp-check send", "a size in bytes"),
    ("pgbouncer", "pool_mode", "transaction; x", "'transaction'"),
    ("postgres", "archive_command", "/bin/true\nssl = off", "one line of text"),
]


@pytest.mark.parametrize(("role", "field", "value", "form"), BAD,
                         ids=[f"{r}.{f}={v!r}" for r, f, v, _ in BAD])
def test_bad_role_strings_are_refused_in_one_line(role: str, field: str, value: str,
                                                  form: str) -> None:
    line = only_problem(lab_doc(**{role: {field: value}}))
    assert line.startswith("t.yaml:") and f"roles.{role}.{field}: {value!r}" in line, line
    assert form in line.split(" — ", 1)[1], line


def test_bad_admin_name_and_key_are_refused() -> None:
    doc = lab_doc(base={"admins": [{"name": "eve;id", "ssh_keys": [
        "ssh-ed25519 AAAAC3Nza key\ncommand=\"id\" ssh-rsa AAAA"]}]})
    problems = problems_of(doc)
    assert any("roles.base.admins[0].name: 'eve;id' is not allowed — use a Unix user name"
               in p for p in problems), problems
    assert any("roles.base.admins[0].ssh_keys[0]:" in p and "OpenSSH public key" in p
               for p in problems), problems


def test_bad_ssh_user_is_refused() -> None:
    doc = lab_doc()
    doc["defaults"]["ssh_user"] = "root -oProxyCommand=id"
    line = only_problem(doc)
    assert "defaults.ssh_user: 'root -oProxyCommand=id' is not allowed — use a Unix user" in line


def test_bad_number_names_the_value() -> None:
    line = only_problem(lab_doc(app={"port": "80; id"}))
    assert "roles.app.port: '80; id': " in line and "integer" in line


def test_good_role_strings_load() -> None:
    spec = loads_spec(yaml.safe_dump(lab_doc(
        media={"bucket": "freehold-media.2"},
        backup={"full_at": "Sun *-*-* 03:00:00", "compress": "lz4", "repo_host": "c1"},
        monitoring={"webhook_url": "https://hooks.example.org:8443/alert?to=ops&x=1"},
        pgbouncer={"replica_max_lag": "32MB", "pool_mode": "session"},
        postgres={"archive_command": "pgbackrest --stanza=main archive-push %p"},
        base={"admins": [{"name": "ada", "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1 ada@laptop"]}]},
        app={"port": 8001, "env": {"RL_SIGNUP_PER_IP": 200, "bootstrap_admins": "ada,bob",
                                   "BENCH_ENDPOINTS": False}},
    )), "t.yaml")
    assert spec.role_settings("media")["bucket"] == "freehold-media.2"
    assert spec.role_settings("app")["env"] == {"RL_SIGNUP_PER_IP": "200",
                                                "bootstrap_admins": "ada,bob",
                                                "BENCH_ENDPOINTS": "0"}
    assert spec.role_settings("media")["masters"] == 3   # keys the models do not name stay


# ---- roles.app.env ---------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["DATABASE_URL", "FREEHOLD_DATABASE_URL", "secret_key",
                                 "Freehold_Redis_Url", "S3_SECRET_KEY", "DEVELOPMENT"])
def test_env_keys_that_shadow_the_kits_own_are_refused(key: str) -> None:
    line = only_problem(lab_doc(app={"env": {key: "postgresql://attacker@evil/db"}}))
    assert f"roles.app.env.{key}: '{key}' would override FREEHOLD_" in line, line
    assert line.endswith("— remove it")


@pytest.mark.parametrize("value", ["a\nFREEHOLD_DATABASE_URL=postgresql://evil/db", "a\rb",
                                   "nul\x00"])
def test_env_values_with_control_characters_are_refused(value: str) -> None:
    line = only_problem(lab_doc(app={"env": {"BOOTSTRAP_ADMINS": value}}))
    assert "roles.app.env.BOOTSTRAP_ADMINS:" in line and "one line of text" in line


def test_env_key_given_in_two_spellings_is_refused() -> None:
    line = only_problem(lab_doc(app={"env": {"TRENDS_HOURS": 1, "FREEHOLD_TRENDS_HOURS": 2}}))
    assert "roles.app.env:" in line and "both set FREEHOLD_TRENDS_HOURS" in line


def test_app_env_keeps_the_kits_values_and_quotes_the_users() -> None:
    from freehold.roles.app.config import app_env, env_file

    value = 'a "b" \\c $d %e `f` \'g\''
    spec = loads_spec(yaml.safe_dump(lab_doc(app={"env": {"BOOTSTRAP_ADMINS": value}})), "t")
    secrets = Secrets()
    secrets.fill([s.name for s in spec.servers])
    env = app_env(spec, secrets, spec.server("a3"))
    assert env["FREEHOLD_BOOTSTRAP_ADMINS"] == value
    assert read_environment_file(env_file(env)) == env


@pytest.mark.parametrize("value", ['say "hi"', "back\\slash\\", " padded ", "$HOME 100%"])
def test_app_env_file_reads_back_as_written(value: str) -> None:
    from freehold.roles.app.config import env_file

    env = {"FREEHOLD_BOOTSTRAP_ADMINS": value, "FREEHOLD_DATABASE_URL": "postgresql://h/db"}
    assert read_environment_file(env_file(env)) == env


def test_app_env_file_refuses_a_newline_that_would_add_a_variable() -> None:
    from freehold.roles.app.config import env_file

    with pytest.raises(ValueError, match="control character"):
        env_file({"FREEHOLD_BOOTSTRAP_ADMINS": "a\nFREEHOLD_DATABASE_URL=postgresql://evil/db"})


def test_app_env_refuses_a_shadowing_key_the_loader_did_not_see() -> None:
    from freehold.roles.app.config import app_env

    spec = load_spec(LAB)
    spec = spec.model_copy(update={"roles": {**spec.roles, "app": {
        "env": {"DATABASE_URL": "postgresql://evil/db"}}}})
    secrets = Secrets()
    secrets.fill([s.name for s in spec.servers])
    with pytest.raises(ValueError, match="would override FREEHOLD_DATABASE_URL"):
        app_env(spec, secrets, spec.server("a3"))


def test_platform_env_list_is_what_the_app_role_sets() -> None:
    from freehold.deploy.spec.role_settings import APP_PLATFORM_ENV
    from freehold.roles.app.config import app_env

    spec = load_spec(LAB)   # every role present: every variable the role can set is set
    secrets = Secrets()
    secrets.fill([s.name for s in spec.servers])
    assert set(app_env(spec, secrets, spec.server("a3"))) == APP_PLATFORM_ENV - {
        "FREEHOLD_DEVELOPMENT"}


# ---- the media bucket in a root shell and a URL ---------------------------------------------

def test_bucket_commands_quote_the_bucket() -> None:
    from freehold.roles.media.config import bucket_create_command, bucket_url
    from freehold.roles.media.facts import HttpStatus

    spec = load_spec(LAB)
    hostile = "m'; touch /tmp/pwned; echo '"
    spec = spec.model_copy(update={"roles": {**spec.roles, "media": {
        **spec.roles["media"], "bucket": hostile}}})
    probe = shlex.split(HttpStatus().command(bucket_url(spec)))
    assert probe[-3].endswith(f"/buckets/{hostile}/")          # one word, as given
    assert probe[-2:] == ["||", "true"]
    create = shlex.split(bucket_create_command(spec))
    assert create[:3] == ["printf", "%s\\n", f"s3.bucket.create -name {hostile}"]
    assert create[3] == "|" and "touch" not in create[4:]


@pytest.mark.parametrize(("env", "says"), [
    ({"FEED_CAPP": 500}, "FREEHOLD_FEED_CAPP: no such setting of the app"),
    ({"FEED_CAP": "lots"}, "FREEHOLD_FEED_CAP='lots': input should be a valid integer"),
    ({"BENCH_ENDPOINTS": 2}, "FREEHOLD_BENCH_ENDPOINTS='2': input should be a valid boolean"),
])
def test_env_is_judged_by_the_apps_own_settings_model(env: dict[str, Any], says: str) -> None:
    """A misspelt setting or a value the app would refuse fails the spec check (one line),
    not the app at start-up or silently (a boolean of "2" was False before)."""
    line = only_problem(lab_doc(app={"env": env}))
    assert "roles.app.env:" in line and says in line and line.endswith("— fix or remove it")
