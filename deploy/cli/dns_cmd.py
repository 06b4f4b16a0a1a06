"""`freehold dns`: what the registrar needs for the platform's zone (roles/dns)."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.deploy.cli.common import DEFAULT_SPEC, SpecArg

app = typer.Typer(help="The platform's DNS zone (roles/dns).", no_args_is_help=True)


@app.command("export")
def export(
    spec: SpecArg = DEFAULT_SPEC,
    secrets: Path | None = typer.Option(None, "--secrets",
                                        help="Secrets file (default: <spec>.secrets)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Print what to enter at the registrar: NS records with their glue addresses, and the DS
    record when the zone is signed (roles.dns.dnssec; the key comes from the secrets)."""
    from freehold.deploy.cli.common import console, fail, load_cluster, print_json
    from freehold.deploy.secrets import SecretsError, SecretStore, secrets_path_for
    from freehold.roles.dns.config import SECRET, DnsConfigError, dnssec, export_lines
    from freehold.roles.dns.config import export as export_doc

    cluster = load_cluster(spec, json_out=json_out)
    key = None
    try:
        if dnssec(cluster):
            store = SecretStore(secrets or secrets_path_for(spec), cluster.name)
            if not store.path.exists():
                fail(f"{store.path}: no secrets file — roles.dns.dnssec is on and its key is "
                     "made by the first `freehold deploy`; run it, or pass --secrets")
            key = store.load().cluster.get(SECRET)
        doc = export_doc(cluster, key)
    except (DnsConfigError, SecretsError) as e:
        fail(str(e))
    if json_out:
        print_json(doc)
        return
    for line in export_lines(doc):
        console.print(line, highlight=False, soft_wrap=True)
