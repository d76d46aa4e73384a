"""`mailpulse campaign`: create, follow, pause, resume and cancel campaigns on a running
server, and pick the winner of an A/B test, through its admin API (the CLI holds no state of
its own).

The server and the admin key: see mailpulse.admin_client.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mailpulse.admin_client import DEFAULT_URL, AdminKey, ProjectDir, Url, call, client_for

campaign_app = typer.Typer(help="Broadcast campaigns on a running server.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

FINAL = ("sent", "cancelled")
AWAITING_DECISION = "awaiting decision"  # nothing moves until a person picks a winner


@campaign_app.command("send")
def send(
    campaign_id: Annotated[str, typer.Argument(help="A new campaign's id.")],
    template: Annotated[str, typer.Option("--template", "-t", help="The template to send.")],
    segment: Annotated[
        str | None, typer.Option("--segment", "-s", help="The audience; none: everyone.")
    ] = None,
    to_list: Annotated[
        str | None,
        typer.Option("--list", "-l", help="Or the contacts of a list (mailpulse import --list)."),
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Its topic (subscriptions, caps).")] = None,
    sender: Annotated[
        str | None, typer.Option(help='Its From, e.g. "News <news@shop.example>".')
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Send from this time, e.g. 2026-12-01T08:00Z.")
    ] = None,
    local_time: Annotated[
        str | None,
        typer.Option(help="Or at this time on each recipient's clock, e.g. 2026-12-01T09:00."),
    ] = None,
    ab_test: Annotated[
        Path | None,
        typer.Option(help="Test variants first: a JSON file of the ab_test (see the README)."),
    ] = None,
    follow: Annotated[bool, typer.Option(help="Show progress until it is sent.")] = True,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Create a campaign: sent at once (with its progress), from --at, or at --local-time."""
    if segment and to_list:
        raise typer.BadParameter("give --segment or --list, not both", param_hint="--list")
    audience: dict[str, str] | str = "all"
    if segment:
        audience = {"segment": segment}
    elif to_list:
        audience = {"list": to_list}
    body: dict[str, Any] = {"id": campaign_id, "template": template, "audience": audience}
    if topic:
        body["topic"] = topic
    if sender:
        body["sender"] = sender
    if at:
        body["send_at"] = at
    if local_time:
        body["local_time"] = local_time
    if ab_test is not None:
        body["ab_test"] = _json_file(ab_test)
    with client_for(url, admin_key, project) as client:
        created = call(client, "POST", "/admin/campaigns", json=body)
        later = created["send_at"] > time.time()
        when = time.strftime(" for %Y-%m-%d %H:%M UTC", time.gmtime(created["send_at"]))
        out.print(f"campaign {created['id']}: {created['status']}{when if later else ''}")
        if follow and not later:
            _follow(client, campaign_id)


@campaign_app.command("status")
def status(
    campaign_id: Annotated[str, typer.Argument()],
    follow: Annotated[bool, typer.Option(help="Show progress until it is sent.")] = False,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Where a campaign stands, its messages per delivery state, and what they did."""
    with client_for(url, admin_key, project) as client:
        if follow:
            _follow(client, campaign_id)
            return
        state = call(client, "GET", f"/admin/campaigns/{campaign_id}")
        messages = ", ".join(f"{k} {v}" for k, v in sorted(state["messages"].items())) or "none"
        out.print(
            f"campaign {state['id']}: {state['status']}; {state['queued']} queued; "
            f"messages: {messages}"
        )
        if state.get("held"):
            out.print(f"held: {state['held']}")
        if state.get("engagement"):
            out.print(_engagement(state["engagement"]))
        if state.get("ab_test"):
            _print_ab_test(state["ab_test"])


def _engagement(e: dict[str, Any]) -> str:
    """Opens and clicks by people (with their rates) and by machines, conversions, revenue."""

    def rate(figure: str) -> str:
        return "" if e[f"{figure}_rate"] is None else f" ({e[f'{figure}_rate']:.1%})"

    return (
        f"opened {e['opened']}{rate('open')}, clicked {e['clicked']}{rate('click')}; "
        f"by machines: opened {e['machine_opened']}, clicked {e['machine_clicked']}; "
        f"converted {e['converted']}{rate('conversion')}, revenue {e['revenue']:.2f}"
    )


@campaign_app.command("winner")
def winner(
    campaign_id: Annotated[str, typer.Argument()],
    variant: Annotated[str, typer.Argument(help="The variant the rest of the audience gets.")],
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    project: ProjectDir = None,
) -> None:
    """Pick the winner of an A/B test: before it is decided, or when it could not tell."""
    with client_for(url, admin_key, project) as client:
        state = call(
            client, "POST", f"/admin/campaigns/{campaign_id}/winner", json={"variant": variant}
        )
        out.print(f"campaign {state['id']}: {state['status']}; the rest gets {variant}")


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        err.print(f"[bold red]error:[/] cannot read {path}: {error}")
    except json.JSONDecodeError as error:
        err.print(f"[bold red]error:[/] {path}:{error.lineno}: not JSON: {error.msg}")
    raise typer.Exit(1)


def _print_ab_test(ab_test: dict[str, Any]) -> None:
    """Each variant's figures as they stand, and the decision once taken, with its numbers."""
    when = ""
    if ab_test["decide_at"] is not None and not ab_test["decision"]:
        when = time.strftime(
            ", decided at %Y-%m-%d %H:%M:%S UTC", time.gmtime(ab_test["decide_at"])
        )
    out.print(
        f"A/B test by {ab_test['winner_by']}, {ab_test['test_share']:.0%} tested at "
        f"{ab_test['confidence']:.0%} confidence: phase {ab_test['phase']}{when}"
    )
    decision = ab_test["decision"]
    table = Table("variant", "subject / template", "sent", "opens", "clicks", "conversions")
    table.add_column(f"{ab_test['winner_by']} rate")
    table.add_column("z")
    table.add_column("p")
    shown = {v["id"]: v for v in ab_test["variants"]}
    for row in ab_test["figures"] or []:
        variant = shown[row["id"]]
        what = variant.get("subject") or variant.get("template") or "as the campaign"
        table.add_row(
            row["id"],
            what,
            *(f"{row[k]:,}" for k in ("sent", "opens", "clicks", "conversions")),
            f"{row['rate']:.1%}",
            "" if row["z"] is None else f"{row['z']:.2f}",
            "" if row["p"] is None else f"{row['p']:.3g}",
        )
    out.print(table)
    if decision:
        verdict = f"winner {decision['winner']}" if decision["winner"] else "undecided"
        numbers = (
            "" if decision["p"] is None else f" (z {decision['z']:.2f}, p {decision['p']:.3g})"
        )
        rest = ", ".join(decision["rest"]) or "nothing yet: pick with `mailpulse campaign winner`"
        out.print(f"decision by {decision['by']}: {verdict}{numbers}; the rest gets {rest}")


def _move(action: str) -> Any:
    def command(
        campaign_id: Annotated[str, typer.Argument()],
        url: Url = DEFAULT_URL,
        admin_key: AdminKey = None,
        project: ProjectDir = None,
    ) -> None:
        with client_for(url, admin_key, project) as client:
            state = call(client, "POST", f"/admin/campaigns/{campaign_id}/{action}")
            out.print(f"campaign {state['id']}: {state['status']}")

    command.__doc__ = {
        "pause": "Stop reading the audience; messages already queued still go.",
        "resume": "Read on from where it stopped.",
        "cancel": "For good: nobody else gets it.",
    }[action]
    return command


for _action in ("pause", "resume", "cancel"):
    campaign_app.command(_action)(_move(_action))


def _follow(client: httpx.Client, campaign_id: str) -> None:
    """A progress bar of messages sent, with the rate and the time left, until it is done."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counted]}"),
        TextColumn("{task.fields[rate]:,.0f}/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=out) as progress:
        task = progress.add_task(campaign_id, total=None, rate=0.0, counted="")
        started, first_sent = time.monotonic(), None
        while True:
            state = call(client, "GET", f"/admin/campaigns/{campaign_id}")
            messages = state["messages"]
            sent = messages.get("sent", 0)
            # Done with: all but those waiting to go (queued) or to be tried again (deferred).
            done = sum(n for k, n in messages.items() if k not in ("queued", "deferred"))
            final = state["status"] in FINAL
            total = state["queued"] if final else max(state["audience"] or 0, state["queued"])
            if first_sent is None and sent:
                first_sent = time.monotonic()
            rate = sent / (time.monotonic() - (first_sent or started)) if sent else 0.0
            progress.update(
                task,
                completed=done,
                total=total or None,
                rate=rate,
                counted=f"{done:,}/{total:,} done" if total else f"{done:,} done",
                description=f"{campaign_id} ({state['status']}"
                + ("; held by the breaker)" if state.get("held") else ")"),
            )
            # Every recipient read has a message by now (in scale-out the folds of other
            # partitions may still be making some), and none waits to go.
            if final and sum(messages.values()) >= state["queued"] and not messages.get("queued"):
                break
            if state["status"] == AWAITING_DECISION:
                break
            time.sleep(0.5)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(messages.items())) or "no messages"
    out.print(f"campaign {campaign_id}: {state['status']}; {summary}")
    if state.get("ab_test"):
        _print_ab_test(state["ab_test"])
