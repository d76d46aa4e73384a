"""`mailpulse suppression`: list, add, remove, import and export the suppression list of a
running server, through its admin API (the server and the admin key: see
mailpulse.admin_client).

`import FILE` reads a .csv (a header row naming `address` or `address_hash`) or .ndjson file
twice, streaming: first every row is checked (the server's checks), then the good rows go to
`POST /admin/suppressions/import` in chunks. Bad rows are reported with the file's line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from mailpulse.admin_client import (
    DEFAULT_URL,
    AdminKey,
    ProjectDir,
    Url,
    call,
    client_for,
    refused,
)
from mailpulse.audience.import_command import file_rows, print_rows, progress_bar, write_report
from mailpulse.audience.importing import INVALID, Rejected
from mailpulse.policy.suppression import ADDRESS_FIELDS, EntryError, entry_from_fields, iso
from mailpulse.types import SuppressionReason

suppression_app = typer.Typer(
    help="The suppression list of a running server.", no_args_is_help=True
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
BASE = "/admin/suppressions"
CHUNK = 5000

Topic = Annotated[str, typer.Option(help="A topic's entry; none: the global one.")]


@suppression_app.command("list")
def list_entries(
    reason: Annotated[
        SuppressionReason | None, typer.Option(help="Only entries of this reason.")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Only this topic's entries ('' for the global ones).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Entries shown.")] = 50,
    after: Annotated[str, typer.Option(help="Go on from an earlier list's `more:`.")] = "",
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """A page of entries, in a stable order."""
    params: dict[str, Any] = {"limit": limit, "after": after}
    if reason is not None:
        params["reason"] = reason.value
    if topic is not None:
        params["topic"] = topic
    with client_for(url, admin_key, project) as client:
        page = call(client, "GET", BASE, params=params)
    table = Table("address", "topic", "reason", "detail", "source", "since")
    for entry in page["entries"]:
        table.add_row(
            entry["address"] or f"(erased) {entry['address_hash'][:16]}…",
            entry["topic"] or "(global)",
            entry["reason"],
            entry["detail"],
            entry["source"],
            iso(entry["created_at"]),
        )
    out.print(table)
    if page["next"]:
        out.print(f"more: --after {page['next']}")


@suppression_app.command("add")
def add(
    address: Annotated[str, typer.Argument(help="The address.")],
    reason: Annotated[SuppressionReason, typer.Option(help="Why.")] = SuppressionReason.MANUAL,
    topic: Topic = "",
    detail: Annotated[str, typer.Option(help="A note: what it rests on.")] = "",
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Add an entry: in force for every send from the moment this answers."""
    body = {"address": address, "reason": reason.value, "topic": topic, "detail": detail}
    with client_for(url, admin_key, project) as client:
        answer = call(client, "POST", BASE, json=body)
    entry = answer["entry"]
    what = f"{entry['reason']}{' for topic ' + entry['topic'] if entry['topic'] else ''}"
    if answer["added"]:
        out.print(f"{address}: suppressed: {what}")
    else:
        out.print(f"{address}: already suppressed: {what} since {iso(entry['created_at'])}")


@suppression_app.command("remove")
def remove(
    address: Annotated[str, typer.Argument(help="The address.")],
    topic: Topic = "",
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Remove an entry (an erased one stays)."""
    with client_for(url, admin_key, project) as client:
        entry = call(client, "DELETE", f"{BASE}/{address}", params={"topic": topic})
    scope = f" for topic {entry['topic']}" if entry["topic"] else ""
    out.print(f"{address}: {entry['reason']} entry{scope} removed")


@suppression_app.command("import")
def import_entries(
    file: Annotated[Path, typer.Argument(help="A .csv (header row first) or .ndjson file.")],
    report: Annotated[Path | None, typer.Option(help="Write every refused row here (CSV).")] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Import entries: columns address (or address_hash, for an erased one), topic, reason
    (manual by default), detail, source, created_at."""
    if not file.is_file():
        err.print(f"[bold red]error:[/] {file}: no such file")
        raise typer.Exit(2)
    try:
        with progress_bar() as progress:
            refused = [
                bad
                for line, fields in file_rows(file, progress, "checking", ADDRESS_FIELDS)
                if (bad := _refusal(line, fields)) is not None
            ]
    except (ValueError, UnicodeDecodeError) as exc:
        err.print(f"[bold red]error:[/] {file}: {exc}")
        raise typer.Exit(2) from exc
    print_rows(file, refused, "refused", bool(report))
    write_report(report, refused)
    totals = {"added": 0, "unchanged": 0}
    with client_for(url, admin_key, project) as client, progress_bar() as progress:
        chunk: list[dict[str, Any]] = []
        for line, fields in file_rows(file, progress, "importing", ADDRESS_FIELDS):
            if _refusal(line, fields) is None:
                chunk.append(fields)
            if len(chunk) == CHUNK:
                _send(client, chunk, totals)
                chunk = []
        if chunk:
            _send(client, chunk, totals)
    out.print(
        f"{file}: {totals['added']:,} entries added, {totals['unchanged']:,} unchanged "
        f"(there already), {len(refused):,} rows refused"
    )


def _refusal(line: int, fields: dict[str, Any]) -> Rejected | None:
    try:
        entry_from_fields(fields, source="import", now=time.time())
    except EntryError as error:
        return Rejected(line, INVALID, f"{error.field}: {error.reason}")
    return None


def _send(client: httpx.Client, rows: list[dict[str, Any]], totals: dict[str, int]) -> None:
    body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    answer = call(
        client,
        "POST",
        f"{BASE}/import",
        content=body,
        headers={"content-type": "application/x-ndjson"},
    )
    for rejected in answer["rejected"]:  # checked here first: only if the server knows better
        err.print(f"  refused by the server: {rejected['kind']}: {rejected['reason']}")
    totals["added"] += answer["added"]
    totals["unchanged"] += answer["unchanged"]


@suppression_app.command("export")
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here; none: to stdout.")
    ] = None,
    csv_format: Annotated[
        bool, typer.Option("--csv", help="CSV with a header row (also for an -o FILE.csv).")
    ] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Every entry, streamed: NDJSON (or CSV), as import reads it back."""
    kind = "csv" if csv_format or (output is not None and output.suffix == ".csv") else "ndjson"
    with client_for(url, admin_key, project) as client:
        try:
            with client.stream("GET", f"{BASE}/export", params={"format": kind}) as response:
                if response.status_code >= 400:
                    response.read()
                    refused(response)
                sink = sys.stdout.buffer if output is None else output.open("wb")
                try:
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
                finally:
                    if output is not None:
                        sink.close()
        except httpx.HTTPError as exc:
            err.print(f"[bold red]error:[/] no answer from {client.base_url}: {exc}")
            raise typer.Exit(1) from exc
    if output is not None:
        out.print(f"suppression list written to {output}")
