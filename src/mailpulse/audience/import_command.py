"""`mailpulse import FILE`: contacts from a .csv or .ndjson file, through a running server.

The file is read twice, streaming, never whole: first every row is checked (the same checks
the server makes), then the good rows go to `POST /admin/contacts/import` in chunks. With
`--all-or-nothing`, any refused row stops the import before anything is sent. Progress bars
show both passes; the report names each refused row's line and reason.
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


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeRemainingColumn(),
        console=out,
    )


def _rows(path: Path, progress: Progress, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    task = progress.add_task(what, total=path.stat().st_size, rows=0)
    for count, row in enumerate(read_rows(path.name, _lines(path, progress, task)), start=1):
        progress.update(task, rows=count)
        yield row


def import_contacts(
    file: Annotated[Path, typer.Argument(help="A .csv (header row first) or .ndjson file.")],
    all_or_nothing: Annotated[
        bool, typer.Option(help="Import nothing if any row is refused.")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="Write every refused row here (CSV).")] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Import contacts: upsert by id, or by email where a row has no id."""
    if not file.is_file():
        err.print(f"[bold red]error:[/] {file}: no such file")
        raise typer.Exit(2)
    try:
        with _progress() as progress:
            check = ImportCheck()
            refused = [
                outcome
                for line, fields in _rows(file, progress, "checking")
                if isinstance(outcome := check.contact(line, fields), Rejected)
            ]
    except (ValueError, UnicodeDecodeError) as exc:
        err.print(f"[bold red]error:[/] {file}: {exc}")
        raise typer.Exit(2) from exc
    _report(file, refused, report)
    if refused and all_or_nothing:
        err.print("[bold red]nothing imported:[/] --all-or-nothing, and rows were refused")
        raise typer.Exit(1)
    imported = 0
    with client_for(url, admin_key, project) as client, _progress() as progress:
        check, chunk = ImportCheck(), []
        for line, fields in _rows(file, progress, "importing"):
            if not isinstance(check.contact(line, fields), Rejected):
                chunk.append(fields)
            if len(chunk) == CHUNK:
                imported += _send(client, chunk)
                chunk = []
        if chunk:
            imported += _send(client, chunk)
    out.print(f"{file}: {imported:,} contacts imported, {len(refused):,} rows refused")


def _send(client: Any, rows: list[dict[str, Any]]) -> int:
    answer = call(client, "POST", "/admin/contacts/import", json={"contacts": rows})
    for rejected in answer["rejected"]:  # checked here first: only if the server knows better
        err.print(f"  refused by the server: {rejected['kind']}: {rejected['reason']}")
    imported: int = answer["imported"]
    return imported


def _report(file: Path, refused: list[Rejected], report: Path | None) -> None:
    if not refused:
        return
    kinds = Counter(r.kind for r in refused)
    err.print(f"{file}: refused " + ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items())))
    for rejected in refused[:SHOWN]:
        err.print(f"  {file}:{rejected.row}: {rejected.kind}: {rejected.reason}")
    if len(refused) > SHOWN:
        err.print(
            f"  ... and {len(refused) - SHOWN:,} more"
            + ("" if report else " (--report FILE lists them all)")
        )
    if report is not None:
        with report.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "kind", "reason"])
            writer.writerows((r.row, r.kind, r.reason) for r in refused)
