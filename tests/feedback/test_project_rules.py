"""A project's own bounce rules (bounce_rules.toml beside mailpulse.toml): put before the
built-in rules, extending them without code; checked by `mailpulse validate` with file, line
and reason; the classifier the inbound listener and the webhooks use."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailpulse.cli import app
from mailpulse.delivery.mime import key_digest, make_message_id
from mailpulse.errors import ProjectError
from mailpulse.feedback.classify import classify_bytes, classify_reply
from mailpulse.feedback.rules import builtin_rules
from mailpulse.feedback.verp import ReturnPath
from mailpulse.observe import Metrics
from mailpulse.project import load_project
from mailpulse.runtime.wiring import inbound_for
from mailpulse.store import FoldCommit, OutboxRow, OutboxStatus, OutboxUpdate
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.tokens import TokenSigner
from mailpulse.types import SendIntent
from tests.e2e.conftest import write_project
from tests.feedback.builders import postfix_dsn

RETURNED = b"From: Shop <hello@shop.test>\r\nTo: ana@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"
GREYLIST = """\
# Our relay's greylisting refusals: a deferral, never a verdict on the address.
[[reason]]
name = "greylisted"
decision = "soft"
implies = "4.7.1"
text = ['greylist']
"""
runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", smtp_port=2525)


def test_a_projects_rules_go_before_the_built_in_ones(project: Path) -> None:
    (project / "bounce_rules.toml").write_text(GREYLIST, encoding="utf-8")
    rules = load_project(project).bounce_rules
    words = "550 5.1.1 <ana@example.com>: user unknown (greylisted, try again)"
    dsn = postfix_dsn(RETURNED, to="b@shop.test", recipient="ana@example.com", diagnostic=words)
    [ours] = classify_bytes(dsn, rules).recipients
    assert (ours.reason, ours.decision) == ("greylisted", "soft")
    [builtin] = classify_bytes(dsn).recipients
    assert (builtin.reason, builtin.decision) == ("userunknown", "hard")
    # The webhooks' path reads the same rules.
    judged = classify_reply("ana@example.com", "", "451 greylisted", rules=rules)
    assert judged.reason == "greylisted"


def test_without_a_rules_file_a_project_has_the_built_in_rules(project: Path) -> None:
    assert load_project(project).bounce_rules is builtin_rules()


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (GREYLIST.replace('"soft"', '"sometimes"'), 4, "decision"),
        (GREYLIST.replace("'greylist'", "'(grey'"), 6, "regular expression"),
        (GREYLIST + "\n[[stage]]\nreason = \"nonesuch\"\ntext = ['x']\n", 9, "no [[reason]]"),
        (GREYLIST + "\n[bounced]\nsubject = ['x']\n", 8, "bounced"),
        (GREYLIST.replace("[[reason]]", "[[reason]"), 2, "not valid TOML"),
    ],
)
def test_validate_names_the_rules_file_its_line_and_why(
    project: Path, text: str, line: int, reason: str
) -> None:
    (project / "bounce_rules.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert (caught.value.path.name, caught.value.line) == ("bounce_rules.toml", line)
    assert reason in caught.value.message
    result = runner.invoke(app, ["validate", str(project)])
    assert result.exit_code == 2
    assert f"bounce_rules.toml:{line}" in " ".join(result.output.split())


def test_a_rules_file_that_is_not_text_is_refused(project: Path) -> None:
    (project / "bounce_rules.toml").write_bytes(b"\xff\xfe[[reason]]\x00")
    with pytest.raises(ProjectError) as caught:
        load_project(project)
    assert caught.value.path.name == "bounce_rules.toml"


async def test_the_inbound_listener_classifies_with_the_projects_rules(
    project: Path, tmp_path: Path
) -> None:
    (project / "bounce_rules.toml").write_text(GREYLIST, encoding="utf-8")
    with (project / "mailpulse.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[inbound]\nhost = "127.0.0.1"\nport = 0\n')
    loaded = load_project(project)
    log, state = SqliteEventLog(tmp_path / "log.db"), SqliteStateStore(tmp_path / "state.db")
    await log.open()
    await state.open()
    key, signer = "campaign:winter:user:ana", TokenSigner("s" * 40)
    send = SendIntent(
        key=key, contact_id="user:ana", email="ana@example.com", template="w", context={}
    )
    row = OutboxRow(intent=send, status=OutboxStatus.QUEUED, next_attempt_at=0.0)
    await state.commit(FoldCommit(checkpoint=0, intents=[row]))
    sent = OutboxUpdate(
        key=key,
        status="sent",
        attempts=1,
        next_attempt_at=0.0,
        message_id=make_message_id(key, "shop.test"),
        last_code=250,
        last_text="ok",
        updated_at=0.0,
    )
    await state.outbox_update([sent])
    listener = inbound_for(loaded, state, signer, log.append, Metrics())
    assert listener is not None
    await listener.start()
    try:
        verp = ReturnPath(signer, "bounces@shop.test").address(key_digest(key))
        words = "550 5.1.1 <ana@example.com>: greylisted, try again later"
        dsn = postfix_dsn(RETURNED, to=verp, recipient="ana@example.com", diagnostic=words)

        def deliver() -> None:
            with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
                client.sendmail("", [verp], dsn)

        await asyncio.to_thread(deliver)
        [bounced] = await log.for_contact(["user:ana"], 10)
        assert (bounced.properties["category"], bounced.properties["bounce"]) == (
            "greylisted",
            "soft",
        )
    finally:
        await listener.stop()
        await state.close()
        await log.close()
