"""`mailpulse bounce classify FILE|DIR...`: what the inbound listener would make of messages,
for an operator debugging a bounce. One JSON line per message (one per recipient when a
report names several), with the classifier the listener uses."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from mailpulse.errors import ProjectError
from mailpulse.feedback.classify import Classification, classify_bytes
from mailpulse.feedback.rules import BounceRules, builtin_rules, project_rules, rules_file

bounce_app = typer.Typer(help="Bounces and complaints.", no_args_is_help=True)
MAX_FILE = 64 * 1024 * 1024  # bytes; a bounce is rarely over a few MB


def _files(paths: list[Path]) -> Iterator[tuple[Path, str | None]]:
    """Each file named or under a folder named (dotfiles skipped), or why a path is none."""
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.parts[-1:])
            )
            yield from ((p, None) for p in found)
        elif path.is_file():
            yield path, None
        else:
            yield path, "no such file or folder"


def lines_for(path: Path, result: Classification) -> list[dict[str, Any]]:
    """The JSON lines of one message: one per recipient, or one saying what it is."""
    common = {"file": str(path), "kind": result.kind, "source": result.source}
    if result.feedback_type:
        common["feedback_type"] = result.feedback_type
    if result.original_message_id:
        common["original_message_id"] = result.original_message_id
    if result.original_key:
        common["original_key"] = result.original_key
    if not result.recipients:
        decision = "auto-reply" if result.kind == "auto-reply" else "none"
        return [{**common, "decision": decision}]
    many = len(result.recipients) > 1
    return [
        {
            **common,
            **({"n": n} if many else {}),
            "address": r.address,
            "status": r.status,
            "status_source": r.status_source,
            "smtp_code": r.smtp_code,
            "action": r.action,
            "category": r.reason,
            "decision": r.decision,
            "diagnostic": r.diagnostic[:300],
        }
        for n, r in enumerate(result.recipients)
    ]


@bounce_app.command("classify")
def classify_command(
    paths: Annotated[list[Path], typer.Argument(help="Message files, or folders of them.")],
    rules: Annotated[
        Path | None,
        typer.Option(help="A rules file put before the built-in rules (bounce_rules.toml)."),
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option(help="Use this project's bounce_rules.toml, as its listener does."),
    ] = None,
) -> None:
    """Classify bounce, complaint and auto-reply messages: one JSON line per message (per
    recipient when it names several) with address, status, smtp code, action, category and
    decision (hard, soft, complaint, auto-reply, none)."""
    chosen = _rules(rules, project)
    encode = msgspec.json.Encoder().encode
    failed = False
    for path, problem in _files(paths):
        if problem is None and path.stat().st_size > MAX_FILE:
            problem = f"larger than {MAX_FILE // (1024 * 1024)} MB"
        if problem is None:
            try:
                data = path.read_bytes()
            except OSError as exc:
                problem = exc.strerror or str(exc)
        if problem is not None:
            typer.echo(f"error: {path}: {problem}", err=True)
            failed = True
            continue
        for line in lines_for(path, classify_bytes(data, chosen)):
            sys.stdout.write(encode(line).decode() + "\n")
    if failed:
        raise typer.Exit(2)


def _rules(path: Path | None, project: Path | None) -> BounceRules:
    # Read as the listener reads a project's (rules.rules_file): a file that is not UTF-8 is
    # an error naming it, not a traceback.
    try:
        if path is not None:
            return rules_file(path)
        if project is not None:
            return project_rules(project)
    except ProjectError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    return builtin_rules()
