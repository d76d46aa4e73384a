"""Talking to a running server's admin API from the command line: `--url` (default
http://127.0.0.1:8000) and the admin key, from `--admin-key`, the MAILPULSE_ADMIN_KEY
environment variable, or the project's mailpulse.toml (`-p`). An error answer is printed with
what it says and where, and exits 1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)

Url = Annotated[str, typer.Option("--url", help="The server.")]
AdminKey = Annotated[
    str | None, typer.Option("--admin-key", envvar="MAILPULSE_ADMIN_KEY", help="Admin key.")
]
ProjectDir = Annotated[
    Path | None, typer.Option("--project", "-p", help="Read the admin key from this project.")
]
DEFAULT_URL = "http://127.0.0.1:8000"


def client_for(url: str, admin_key: str | None, project: Path | None) -> httpx.Client:
    if admin_key is None and project is not None:
        from mailpulse.project import load_config

        admin_key = load_config(project.resolve())[0].project.admin_key
    if not admin_key:
        err.print("[bold red]error:[/] give the admin key: --admin-key, MAILPULSE_ADMIN_KEY or -p")
        raise typer.Exit(2)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"})


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[bold red]error:[/] no answer from {client.base_url}: {exc}")
        raise typer.Exit(1) from exc
    if response.status_code >= 400:
        refused(response)
    result: dict[str, Any] = response.json()
    return result


def refused(response: httpx.Response) -> NoReturn:
    """An error answer (read whole): what it says and where, and exit 1."""
    is_json = response.headers.get("content-type", "").startswith("application/json")
    body = response.json() if is_json else {"error": response.text}
    where = f" (at {body['where']})" if body.get("where") else ""
    err.print(f"[bold red]error:[/] {body.get('error')}{where}")
    raise typer.Exit(1)
