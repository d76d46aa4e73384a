"""The inbound listener over real SMTP (smtplib against aiosmtpd on a socket), with a real
SQLite outbox and log: only our signed return paths and unsubscribe@ are accepted; a DSN or
an ARF report at a send's return path becomes its event once, durable before the 250; what
names someone else, says nothing, or is hostile changes nothing and is counted by why."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailpulse.delivery.mime import key_digest, make_message_id, message_id_of
from mailpulse.feedback.classify import classify_bytes
from mailpulse.feedback.inbound import InboundListener
from mailpulse.feedback.intake import Intake
from mailpulse.feedback.unsubscribe import UNSUBSCRIBE, MessageToken
from mailpulse.feedback.verp import ReturnPath
from mailpulse.observe import Metrics
from mailpulse.store import FoldCommit, OutboxRow, OutboxStatus, OutboxUpdate
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.tokens import TokenSigner
from mailpulse.types import Event, SendIntent
from tests.feedback.builders import arf_report, postfix_dsn

DOMAIN = "shop.test"
SIGNER = TokenSigner("s" * 40)
KEY = "campaign:winter:user:ana"
ANA = "ana@example.com"
MAX_SIZE = 64 * 1024
RETURNED = (
    f"From: Shop <hello@{DOMAIN}>\r\nTo: {ANA}\r\nSubject: Winter sale\r\n"
    f"Message-ID: {make_message_id(KEY, DOMAIN)}\r\nX-Mailpulse-Key: {KEY}\r\n\r\nHello\r\n"
).encode()


@dataclass
class Listening:
    port: int
    verp: str  # Ana's message's return path
    log: SqliteEventLog
    metrics: Metrics

    def send(self, rcpts: list[str], data: bytes, mail_from: str = "") -> dict:
        """One SMTP transaction; the refused recipients with their replies, or raises."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            return client.sendmail(mail_from, rcpts, data)

    async def deliver(self, rcpts: list[str], data: bytes) -> dict:
        return await asyncio.to_thread(self.send, rcpts, data)

    async def events(self) -> list[Event]:
        return await self.log.for_contact(["user:ana"], 100)

    def counted(self, result: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "mailpulse_inbound_messages_total", {"result": result}
        )
        return value or 0.0


@pytest.fixture
async def listening(tmp_path: Path) -> AsyncIterator[Listening]:
    log, state = SqliteEventLog(tmp_path / "log.db"), SqliteStateStore(tmp_path / "state.db")
    await log.open()
    await state.open()
    send = SendIntent(key=KEY, contact_id="user:ana", email=ANA, template="welcome", context={})
    row = OutboxRow(intent=send, status=OutboxStatus.QUEUED, next_attempt_at=0.0)
    await state.commit(FoldCommit(checkpoint=0, intents=[row]))
    sent = make_message_id(KEY, DOMAIN)
    await state.outbox_update(
        [
            OutboxUpdate(
                key=KEY,
                status="sent",
                attempts=1,
                next_attempt_at=0.0,
                message_id=sent,
                last_code=250,
                last_text="ok",
                updated_at=0.0,
            )
        ]
    )

    async def find_send(digest: bytes) -> SendIntent | None:
        found = await state.outbox_by_message_id(message_id_of(digest, DOMAIN))
        return found.intent if found else None

    metrics = Metrics()
    return_path = ReturnPath(SIGNER, f"bounces@{DOMAIN}")
    intake = Intake(return_path, SIGNER, find_send, log.append, metrics)
    listener = InboundListener(intake, host="127.0.0.1", port=0, max_size=MAX_SIZE, hostname=DOMAIN)
    await listener.start()
    try:
        yield Listening(listener.port, return_path.address(key_digest(KEY)), log, metrics)
    finally:
        await listener.stop()
        await state.close()
        await log.close()


def dsn_to(to: str, **options: object) -> bytes:
    return postfix_dsn(RETURNED, to=to, recipient=ANA, **options)


async def test_only_our_signed_return_paths_and_unsubscribe_are_accepted(
    listening: Listening,
) -> None:
    forged = "bounces-" + "a" * 45 + f"@{DOMAIN}"
    other_project = ReturnPath(TokenSigner("t" * 40), f"bounces@{DOMAIN}").address(key_digest(KEY))
    refused = [forged, other_project, f"postmaster@{DOMAIN}", "x@other.test"]
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await listening.deliver(refused, dsn_to(forged))
    assert {rcpt: reply[0] for rcpt, reply in caught.value.recipients.items()} == dict.fromkeys(
        refused, 550
    )
    assert listening.counted("refused_recipient") == len(refused)
    # Accepted alongside a refused one: the good recipient takes the message.
    assert await listening.deliver([listening.verp.upper(), forged], dsn_to(listening.verp)) == {
        forged: (550, b"5.1.1 No such mailbox here")
    }
    assert [e.event for e in await listening.events()] == ["Email Bounced"]


async def test_a_dsn_at_a_return_path_bounces_its_send_once(listening: Listening) -> None:
    assert await listening.deliver([listening.verp], dsn_to(listening.verp)) == {}
    # The remote server delivering the same report again adds nothing.
    await listening.deliver([listening.verp], dsn_to(listening.verp))
    [bounced] = await listening.events()
    assert bounced.event == "Email Bounced" and bounced.contact_key == "user:ana"
    props = bounced.properties
    assert (props["key"], props["recipient"], props["bounce"], props["source"]) == (
        KEY,
        ANA,
        "hard",
        "dsn",
    )
    assert (props["smtp_code"], props["smtp_status"], props["category"]) == (
        550,
        "5.1.1",
        "userunknown",
    )
    assert props["remote_mta"] == "mailstore.remote.test"
    assert listening.counted("hard_bounce") == 2


async def test_a_delay_report_is_a_deferral_not_a_bounce(listening: Listening) -> None:
    delayed = dsn_to(
        listening.verp, status="4.2.2", action="delayed", diagnostic="452 4.2.2 mailbox full"
    )
    await listening.deliver([listening.verp], delayed)
    full = dsn_to(listening.verp, status="5.2.2", diagnostic="552 5.2.2 mailbox full")
    await listening.deliver([listening.verp], full)
    got = [
        (e.event, e.properties["bounce"], e.properties["smtp_status"])
        for e in await listening.events()
    ]
    assert got == [("Email Deferred", "soft", "4.2.2"), ("Email Bounced", "soft", "5.2.2")]


async def test_a_complaint_at_a_return_path_is_its_sends(listening: Listening) -> None:
    report = arf_report(RETURNED, to=listening.verp, recipient=ANA)
    await listening.deliver([listening.verp], report)
    redacted = arf_report(RETURNED, to=listening.verp, recipient=None, feedback_type="opt-out")
    await listening.deliver([listening.verp], redacted)
    got = [
        (e.event, e.properties["feedback_type"], e.properties["recipient"])
        for e in await listening.events()
    ]
    assert got == [("Email Complained", "abuse", ANA), ("Email Complained", "opt-out", ANA)]


@pytest.mark.parametrize(
    ("message", "result"),
    [
        # A report about someone else's recipients, at Ana's return path: nobody is bounced.
        (
            lambda to: postfix_dsn(RETURNED, to=to, recipient="victim@example.org"),
            "other_recipient",
        ),
        (lambda to: arf_report(RETURNED, to=to, recipient="victim@example.org"), "other_recipient"),
        # A report returning another message of ours than the one its return path names.
        (
            lambda to: postfix_dsn(
                RETURNED.replace(KEY.encode(), b"campaign:x:user:bo"), to=to, recipient=ANA
            ),
            "other_recipient",
        ),
        (
            lambda to: (
                b"From: Ana <ana@example.com>\r\nSubject: Out of Office\r\n"
                b"Auto-Submitted: auto-replied\r\n\r\nAway until Monday.\r\n"
            ),
            "auto_reply",
        ),
        (lambda to: b"Subject: hello\r\n\r\nJust a note.\r\n", "not_a_report"),
        # Cut before its report: a bounce all the same, of no known reason (soft).
        (lambda to: dsn_to(to)[:700], "soft_bounce"),
        (lambda to: dsn_to(to).replace(b"charset=utf-8", b"charset=x-no-such"), "hard_bounce"),
    ],
)
async def test_what_is_not_about_the_send_changes_nothing(
    listening: Listening, message, result: str
) -> None:
    assert await listening.deliver([listening.verp], message(listening.verp)) == {}
    events = await listening.events()
    bounced = result in ("hard_bounce", "soft_bounce")
    assert [e.event for e in events] == (["Email Bounced"] if bounced else [])
    assert listening.counted(result) == 1


async def test_a_message_over_the_size_limit_is_refused_at_data(listening: Listening) -> None:
    def big() -> tuple[bytes, int]:
        with smtplib.SMTP("127.0.0.1", listening.port, timeout=10) as client:
            client.ehlo()
            size = int(client.esmtp_features["size"])
            client.mail("")
            client.rcpt(listening.verp)
            client.putcmd("data")
            client.getreply()
            client.send(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (2 * MAX_SIZE // 1000))
            client.send(b".\r\n")
            return client.getreply()[0], size

    code, advertised = await asyncio.to_thread(big)
    assert (code, advertised) == (552, MAX_SIZE)
    assert await listening.events() == []


async def test_a_valid_token_whose_send_is_gone_is_taken_and_noted(listening: Listening) -> None:
    gone = ReturnPath(SIGNER, f"bounces@{DOMAIN}").address(key_digest("campaign:old:user:x"))
    assert await listening.deliver([gone], dsn_to(gone)) == {}
    assert await listening.events() == [] and listening.counted("unknown_send") == 1


async def test_when_the_log_cannot_take_it_the_sender_is_asked_to_retry(
    listening: Listening,
) -> None:
    await listening.log.close()
    with pytest.raises(smtplib.SMTPDataError) as caught:
        await listening.deliver([listening.verp], dsn_to(listening.verp))
    assert caught.value.smtp_code == 451
    assert listening.counted("error") == 1
    # The listener is still there, and says the same until the log is back.
    with pytest.raises(smtplib.SMTPDataError) as again:
        await listening.deliver([listening.verp], dsn_to(listening.verp))
    assert again.value.smtp_code == 451


async def test_a_mailto_unsubscribe_with_our_token_unsubscribes(listening: Listening) -> None:
    token = SIGNER.sign(UNSUBSCRIBE, MessageToken("user:ana", ANA, "", KEY))
    mail = f"From: {ANA}\r\nTo: unsubscribe@{DOMAIN}\r\nSubject: unsubscribe {token}\r\n\r\n"
    assert await listening.deliver([f"unsubscribe@{DOMAIN}"], mail.encode()) == {}
    [event] = await listening.events()
    assert event.event == "Unsubscribed" and event.properties["source"] == "mailto"
    bad = mail.replace(token, token[:-2] + "xx").encode()
    with pytest.raises(smtplib.SMTPDataError) as caught:
        await listening.deliver([f"unsubscribe@{DOMAIN}"], bad)
    assert caught.value.smtp_code == 550
    assert listening.counted("bad_token") == 1 and listening.counted("unsubscribe") == 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=3000))
async def test_arbitrary_bytes_never_break_the_listener(listening: Listening, data: bytes) -> None:
    # smtplib dot-stuffs and ends the data; whatever the bytes, the answer is an SMTP reply.
    body = data.replace(b"\r", b"").replace(b"\n", b"\r\n")
    try:
        await listening.deliver([listening.verp], body)
    except smtplib.SMTPDataError as refused:
        assert refused.smtp_code in (451, 552, 554)
    assert listening.counted("error") == 0


# -- out of band: reports at the bare return path, found by the returned message's headers ----

BARE = f"bounces@{DOMAIN}"


def signed_copy(key: str = KEY, address: str = ANA) -> bytes:
    """Ana's message as a marketing message is made: its List-Unsubscribe carries a token
    this project signed."""
    token = SIGNER.sign(UNSUBSCRIBE, MessageToken("user:ana", address, "", key))
    link = f"List-Unsubscribe: <https://{DOMAIN}/u/{token}>\r\n".encode()
    return RETURNED.replace(b"\r\n\r\n", b"\r\n" + link + b"\r\n", 1)


async def test_a_report_that_lost_its_return_path_finds_its_send_by_its_signed_copy(
    listening: Listening,
) -> None:
    assert await listening.deliver([BARE], postfix_dsn(signed_copy(), to=BARE, recipient=ANA)) == {}
    [bounced] = await listening.events()
    props = bounced.properties
    assert (props["key"], props["recipient"], props["bounce"]) == (KEY, ANA, "hard")
    assert listening.counted("hard_bounce") == 1


async def test_plain_headers_alone_find_the_send_but_never_suppress_at_once(
    listening: Listening,
) -> None:
    """Message-ID and X-Mailpulse-Key can be written by anyone who knows the key: the bounce
    counts, as soft; a complaint named so is not taken."""
    await listening.deliver([BARE], postfix_dsn(RETURNED, to=BARE, recipient=ANA))
    await listening.deliver([BARE], arf_report(RETURNED, to=BARE, recipient=ANA))
    [bounced] = await listening.events()
    assert (bounced.event, bounced.properties["bounce"]) == ("Email Bounced", "soft")
    assert bounced.properties["category"] == "userunknown"
    assert listening.counted("unsigned_report") == 1


@pytest.mark.parametrize(
    ("returned", "recipient", "result"),
    [
        # The Message-ID names one send, X-Mailpulse-Key another: neither is believed.
        (RETURNED.replace(KEY.encode(), b"campaign:x:user:bo"), ANA, "unknown_send"),
        # A token signed by another project's secret: a forgery, whatever the rest says.
        (
            RETURNED.replace(
                b"\r\n\r\n",
                b"\r\nList-Unsubscribe: <https://shop.test/u/"
                + TokenSigner("t" * 40)
                .sign(UNSUBSCRIBE, MessageToken("user:ana", ANA, "", "campaign:x:user:bo"))
                .encode()
                + b">\r\n\r\n",
                1,
            ),
            ANA,
            "unknown_send",
        ),
        # Nothing of ours in it at all.
        (b"From: a@b.test\r\nMessage-ID: <1@b.test>\r\n\r\nhi\r\n", ANA, "unknown_send"),
        # Our signed copy, but the report claims another sender's recipient.
        (signed_copy(), "victim@example.org", "other_recipient"),
    ],
)
async def test_an_out_of_band_report_that_names_no_send_of_ours_changes_nothing(
    listening: Listening, returned: bytes, recipient: str, result: str
) -> None:
    dsn = postfix_dsn(returned, to=BARE, recipient=recipient)
    assert await listening.deliver([BARE], dsn) == {}
    assert await listening.events() == []
    assert listening.counted(result) == 1


# Addresses that can be read: a domain label may not start or end with "-" (RFC 1035). One
# that cannot be read names nobody, and a report at a send's VERP address about such a
# recipient is taken as about that send, which is what VERP is for.
_someone_else = st.from_regex(
    r"[a-z0-9][a-z0-9._+-]{0,20}@[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?\.test", fullmatch=True
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(_someone_else, min_size=1, max_size=4),
    st.sampled_from(["5.1.1", "5.1.2", "5.2.2", "4.4.7"]),
    st.booleans(),
)
async def test_a_dsn_claiming_another_senders_recipients_suppresses_nobody(
    listening: Listening, claimed: list[str], status: str, out_of_band: bool
) -> None:
    """At Ana's return path or the bare one, with her message returned, signed or not: a
    report naming only others bounces nobody."""
    to = BARE if out_of_band else listening.verp
    dsn = postfix_dsn(signed_copy(), to=to, recipient=claimed[0], status=status)
    # The others as more per-recipient groups of the same report.
    groups = "".join(
        f"\r\n\r\nFinal-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: {status}"
        for address in claimed[1:]
    ).encode()
    end_of_groups = b"\r\n\r\n--4XyZ1k2Lmnz9sPq.1730801643/mx.remote.test\r\nContent-Description: U"
    dsn = dsn.replace(end_of_groups, groups + end_of_groups, 1)
    assert len(classify_bytes(dsn).recipients) == len(claimed)
    assert await listening.deliver([to], dsn) == {}
    assert await listening.events() == []
