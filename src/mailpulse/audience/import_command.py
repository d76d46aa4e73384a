"""`mailpulse import FILE`: contacts from a .csv or .ndjson file, through a running server.

The file is read twice, streaming, never whole: first every row is checked (the same checks
the server makes), then the good rows go to `POST /admin/contacts/import` in chunks. With
`--all-or-nothing`, any refused row stops the import before anything is sent. Progress bars
show both passes; the report names each refused row's line and reason, and the lines of the
rows imported whose address is on the suppression list (they will not be mailed).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from mailpulse.audience.importing import ImportCheck, Rejected, read_rows
from mailpulse.audience.lists import LIST_NAME
from mailpulse.campaigns.command import DEFAULT_URL, AdminKey, ProjectDir, Url, call, client_for

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
CHUNK = 5000
SHOWN = 20  # refused rows listed; all of them with --report


def _lines(path: Path, progress: Progress, task: Any) -> Iterator[bytes]:
    with path.open("rb") as file:
        for line in file:
            progress.advance(task, len(line))
            yield line


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeRemainingColumn(),
        console=out,
    )


def file_rows(
    path: Path, progress: Progress, what: str, columns: tuple[str, ...] = ("email", "id")
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, fields) of each row of a .csv or .ndjson file, streamed, with its progress."""
    task = progress.add_task(what, total=path.stat().st_size, rows=0)
    rows = read_rows(path.name, _lines(path, progress, task), columns)
    for count, row in enumerate(rows, start=1):
        progress.update(task, rows=count)
        yield row


def import_contacts(
    file: Annotated[Path, typer.Argument(help="A .csv (header row first) or .ndjson file.")],
    all_or_nothing: Annotated[
        bool, typer.Option(help="Import nothing if any row is refused.")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="Write every refused row here (CSV).")] = None,
    into: Annotated[
        str | None,
        typer.Option("--list", help="Put the contacts in this list, which a campaign can mail."),
    ] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Import contacts: upsert by id, or by email where a row has no id."""
    if into is not None and not LIST_NAME.fullmatch(into):
        raise typer.BadParameter(
            f"{into!r}: a list's name is 1 to 64 letters, digits, '_', '-' or '.'",
            param_hint="--list",
        )
    if not file.is_file():
        err.print(f"[bold red]error:[/] {file}: no such file")
        raise typer.Exit(2)
    try:
        with progress_bar() as progress:
            check = ImportCheck()
            refused = [
                outcome
                for line, fields in file_rows(file, progress, "checking")
                if isinstance(outcome := check.contact(line, fields), Rejected)
            ]
    except (ValueError, UnicodeDecodeError) as exc:
        err.print(f"[bold red]error:[/] {file}: {exc}")
        raise typer.Exit(2) from exc
    print_rows(file, refused, "refused", bool(report))
    if refused and all_or_nothing:
        write_report(report, refused)
        err.print("[bold red]nothing imported:[/] --all-or-nothing, and rows were refused")
        raise typer.Exit(1)
    imported, suppressed = 0, []
    with client_for(url, admin_key, project) as client, progress_bar() as progress:
        check, chunk = ImportCheck(), []
        for line, fields in file_rows(file, progress, "importing"):
            if not isinstance(check.contact(line, fields), Rejected):
                chunk.append((line, fields))
            if len(chunk) == CHUNK:
                imported += _send(client, chunk, suppressed, into)
                chunk = []
        if chunk:
            imported += _send(client, chunk, suppressed, into)
    print_rows(file, suppressed, "imported but suppressed (not to be mailed)", bool(report))
    write_report(report, refused + suppressed)
    out.print(
        f"{file}: {imported:,} contacts imported ({len(suppressed):,} suppressed), "
        f"{len(refused):,} rows refused"
    )


def _send(
    client: Any,
    rows: list[tuple[int, dict[str, Any]]],
    suppressed: list[Rejected],
    into: str | None,
) -> int:
    """Imports a chunk of rows; the suppressed among them are added to `suppressed`, with
    their lines in the file."""
    body: dict[str, Any] = {"contacts": [fields for _, fields in rows]}
    if into is not None:
        body["list"] = into
    answer = call(client, "POST", "/admin/contacts/import", json=body)
    for rejected in answer["rejected"]:  # checked here first: only if the server knows better
        err.print(f"  refused by the server: {rejected['kind']}: {rejected['reason']}")
    for row in answer["suppressed"]:
        suppressed.append(Rejected(rows[row["row"] - 1][0], row["kind"], row["reason"]))
    imported: int = answer["imported"]
    return imported


def print_rows(file: Path, rows: list[Rejected], what: str, reported: bool) -> None:
    """How many rows of each kind, and the first of them with their lines."""
    if not rows:
        return
    kinds = Counter(r.kind for r in rows)
    err.print(f"{file}: {what}: " + ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items())))
    for row in rows[:SHOWN]:
        err.print(f"  {file}:{row.row}: {row.kind}: {row.reason}")
    if len(rows) > SHOWN:
        err.print(
            f"  ... and {len(rows) - SHOWN:,} more"
            + ("" if reported else " (--report FILE lists them all)")
        )


def write_report(report: Path | None, rows: list[Rejected]) -> None:
    """Every row reported, as CSV: line, kind, reason."""
    if report is None or not rows:
        return
    with report.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "kind", "reason"])
        writer.writerows((r.row, r.kind, r.reason) for r in rows)
