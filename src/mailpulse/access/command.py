"""`mailpulse keys` (create, list and revoke scoped API keys) and `mailpulse audit` (the admin
actions kept, newest first), on a running server through its admin API (the server and the
admin key: see mailpulse.admin_client)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mailpulse.access.keys import Scope
from mailpulse.admin_client import DEFAULT_URL, AdminKey, ProjectDir, Url, call, client_for
from mailpulse.policy.suppression import iso
from mailpulse.units import parse_duration

keys_app = typer.Typer(help="Scoped API keys of a running server.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@keys_app.command("create")
def create(
    scope: Annotated[
        Scope, typer.Option(help="write: /v1 only; read: GET on /admin; admin: everything.")
    ],
    name: Annotated[str, typer.Option(help="What it is for, shown in lists.")] = "",
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Make a key. It is printed this once: only its SHA-256 is kept."""
    with client_for(url, admin_key, project) as client:
        made = call(client, "POST", "/admin/keys", json={"scope": scope.value, "name": name})
    err.print(f"{made['scope']} key {made['prefix']} (id {made['id']}); keep it now:")
    out.print(made["key"], highlight=False)


@keys_app.command("list")
def list_keys(
    url: Url = DEFAULT_URL, admin_key: AdminKey = None, project: ProjectDir = None
) -> None:
    """Every key, revoked ones too (never the keys themselves)."""
    with client_for(url, admin_key, project) as client:
        listed = call(client, "GET", "/admin/keys")["keys"]
    table = Table("id", "prefix", "scope", "name", "created", "revoked")
    for key in listed:
        revoked = iso(key["revoked_at"]) if key["revoked_at"] is not None else ""
        table.add_row(
            key["id"], key["prefix"], key["scope"], key["name"], iso(key["created_at"]), revoked
        )
    out.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see keys list).")],
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Revoke a key: refused at once here, within a second on every other node."""
    with client_for(url, admin_key, project) as client:
        key = call(client, "DELETE", f"/admin/keys/{key_id}")
    out.print(f"{key['scope']} key {key['prefix']} revoked since {iso(key['revoked_at'])}")


def _moment(text: str | None, option: str) -> str | None:
    """A time the server reads (epoch seconds, ISO 8601) from that, or from a duration ago."""
    if text is None:
        return None
    try:
        return str(time.time() - parse_duration(text))
    except ValueError:
        pass
    if text[:1].isdigit() and ("-" in text or ":" in text):
        return text  # ISO 8601: the server checks it
    raise typer.BadParameter(
        f"{text!r}: give a duration ago (30m, 7d) or a time (2026-12-01T08:00Z)",
        param_hint=option,
    )


def audit(
    since: Annotated[
        str | None, typer.Option(help="From a duration ago (7d) or a time (2026-12-01T08:00Z).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to a duration ago or a time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Entries shown.")] = 50,
    before: Annotated[
        int | None, typer.Option(min=1, help="Go on from an earlier page's `more:`.")
    ] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """The audit log of admin actions, newest first: who, what, when, from where, and how it
    ended (done, refused, failed)."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (
        ("since", _moment(since, "--since")),
        ("until", _moment(until, "--until")),
        ("before", before),
    ):
        if value is not None:
            params[name] = value
    with client_for(url, admin_key, project) as client:
        page = call(client, "GET", "/admin/audit", params=params)
    # A line each, not a table: entries are long, and greppable lines read better.
    for e in page["entries"]:
        who = e["actor"] + (f" ({e['scope']})" if e["scope"] else "")
        target = "".join(f" {k}={v}" for k, v in e["target"].items())
        summary = f": {e['summary']}" if e["summary"] else ""
        out.print(
            f"{iso(e['at'])} {who} from {e['ip'] or '?'} {e['method']} {e['path']}{target} "
            f"{e['outcome']} {e['status']}{summary}",
            markup=False,
            highlight=False,
        )
    if not page["entries"]:
        err.print("no entries")
    if page["next"]:
        out.print(f"more: --before {page['next']}")
