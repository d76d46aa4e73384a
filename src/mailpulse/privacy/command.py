"""`mailpulse contact export|erase`: a contact's data, through a running server's admin API
(the server and the admin key: see mailpulse.admin_client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mailpulse.admin_client import DEFAULT_URL, AdminKey, ProjectDir, Url, call, client_for
from mailpulse.policy.suppression import iso

contact_app = typer.Typer(help="A contact's data on a running server.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ContactId = Annotated[str, typer.Argument(help="Any id of the contact: userId, anonymousId.")]


@contact_app.command("export")
def export(
    contact_id: ContactId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here; none: to stdout.")
    ] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Everything held on a contact, as JSON (a GDPR access request)."""
    with client_for(url, admin_key, project) as client:
        exported = call(client, "GET", f"/admin/contacts/{contact_id}/export")
    text = json.dumps(exported, indent=2, ensure_ascii=False)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"{exported['contact_id']}: written to {output}")


@contact_app.command("erase")
def erase(
    contact_id: ContactId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    wait: Annotated[
        float, typer.Option(min=0, max=60, help="Seconds to wait for it to be done.")
    ] = 10.0,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Erase a contact (a GDPR erasure request): its personal data goes from the profile,
    events, messages and consent records, and its address is never mailed again. It cannot
    be undone."""
    if not yes:
        typer.confirm(f"Erase {contact_id} for good?", abort=True)
    with client_for(url, admin_key, project) as client:
        erased = call(
            client,
            "DELETE",
            f"/admin/contacts/{contact_id}",
            params={"wait": wait},
            timeout=wait + 10,
        )
    if erased["erased"]:
        out.print(f"{erased['contact_id']}: erased at {iso(erased['erased_at'])}")
    else:
        out.print(f"{erased['contact_id']}: erasure asked; the pipeline has yet to carry it out")
