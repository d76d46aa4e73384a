"""`mailpulse breaker`: where the protective breaker of a running server stands, and resuming
it, through its admin API (the server and the admin key: see mailpulse.admin_client)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from mailpulse.admin_client import DEFAULT_URL, AdminKey, ProjectDir, Url, call, client_for
from mailpulse.policy.breaker import counted
from mailpulse.policy.suppression import iso
from mailpulse.units import format_duration

breaker_app = typer.Typer(
    help="The protective breaker: marketing paused when the complaint rate reaches [breaker] "
    "pause, until resumed.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True, highlight=False)
BASE = "/admin/breaker"


def _print(standing: dict[str, Any]) -> None:
    if standing["tripped"]:
        out.print(f"[bold red]tripped[/] at {iso(standing['tripped_at'])}: {standing['reason']}")
        out.print("marketing is held (transactional mail goes); resume: mailpulse breaker resume")
    else:
        out.print("[green]not tripped[/]: marketing goes out")
    figures, limits = standing["figures"], standing["thresholds"]
    rate = figures["rate_percent"] or "no rate"
    judged = {
        "unjudged": f"not judged below {limits['min_sends']:,} sends",
        "clear": "below the alert",
        "alert": "at the alert",
        "pause": "at the pause",
    }[figures["judged"]]
    out.print(
        f"now: {rate} ({counted(figures['complaints'], 'complaint')} about "
        f"{counted(figures['sends'], 'marketing message')} since {iso(figures['since'])}): {judged}"
    )
    out.print(
        f"thresholds: alert {limits['alert']}, pause {limits['pause']}, over "
        f"{format_duration(limits['window'])}, from {limits['min_sends']:,} sends"
    )
    alert = standing["alert_since"]
    out.print(f"alert: raised at {iso(alert)}" if alert is not None else "alert: not raised")
    if standing["resumed_at"] is not None:
        out.print(f"last resumed: {iso(standing['resumed_at'])} by {standing['resumed_by']}")


@breaker_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="The API's answer, as JSON.")] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Tripped or not and why, the complaint rate judged now, the thresholds, the alert."""
    with client_for(url, admin_key, project) as client:
        standing = call(client, "GET", BASE)
    if as_json:
        out.print(orjson.dumps(standing).decode(), markup=False)
        return
    _print(standing)


@breaker_app.command("resume")
def resume(
    force: Annotated[
        bool,
        typer.Option(
            help="Resume although the rate is still at the pause threshold (its cause is dealt "
            "with); only what is sent after the resume is judged then."
        ),
    ] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Let marketing go again: what the breaker held goes out, campaigns read on."""
    with client_for(url, admin_key, project) as client:
        resumed = call(client, "POST", f"{BASE}/resume", json={"force": force})
    out.print(f"resumed: {resumed['released']:,} held messages go out")
