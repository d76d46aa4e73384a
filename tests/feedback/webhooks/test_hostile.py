"""Bad and hostile requests to the webhooks: providers not configured, bodies too large (said
or sent), bodies that are not JSON or nest without end, and any JSON at all in the readers:
each refused with a reason or ignored with one, nothing recorded, nothing raised."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailpulse.feedback.webhooks.mailgun import mailgun_event
from mailpulse.feedback.webhooks.model import EspEvent, Kind
from mailpulse.feedback.webhooks.postmark import postmark_event
from mailpulse.feedback.webhooks.router import MAX_BODY
from mailpulse.feedback.webhooks.sendgrid import sendgrid_event
from mailpulse.feedback.webhooks.ses import ses_events
from tests.e2e.conftest import embedded_server
from tests.feedback.webhooks.conftest import Hooks, mailgun_signed, postmark_auth, sendgrid_headers

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=8)
    ),
    max_leaves=40,
)
# Objects with the fields the readers look at, holding anything.
shaped = st.fixed_dictionaries(
    {},
    optional={
        name: json_values
        for name in (
            "event",
            "email",
            "smtp-id",
            "sg_event_id",
            "type",
            "status",
            "reason",
            "mailpulse_key",
            "sg_machine_open",
            "timestamp",
            "severity",
            "delivery-status",
            "message",
            "user-variables",
            "client-info",
            "recipient",
            "RecordType",
            "ID",
            "Type",
            "Email",
            "Details",
            "Metadata",
            "Content",
            "Geo",
            "SuppressSending",
            "SuppressionReason",
        )
    },
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, shaped))
def test_the_readers_take_any_json_and_never_raise(item: object) -> None:
    for read in (sendgrid_event, mailgun_event, postmark_event):
        found = read(item)
        assert isinstance(found, EspEvent)
        if found.kind == Kind.IGNORED:
            assert found.result and found.why
    for event in ses_events(json.dumps(item), "sns-id"):
        assert isinstance(event, EspEvent)


@settings(max_examples=100)
@given(st.text(max_size=300))
def test_ses_reads_any_message_text(text: str) -> None:
    assert all(isinstance(e, EspEvent) for e in ses_events(text, "sns-id"))


async def test_a_provider_not_configured_is_not_found(tmp_path: Path) -> None:
    async with embedded_server(tmp_path) as server:
        for provider in ("ses", "sendgrid", "mailgun", "postmark", "sparkpost"):
            answer = await server.client.post(f"/webhooks/{provider}", content=b"{}", auth=None)
            assert (answer.status_code, answer.json()["where"]) == (404, "provider"), provider
        sideways = await server.client.post("/webhooks/..%2f..%2fadmin", content=b"{}", auth=None)
        assert sideways.status_code == 404


async def test_bodies_over_the_limit_are_refused_before_they_are_read(hooks: Hooks) -> None:
    # A request saying it is larger is answered before any of its body is sent.
    host, port = hooks.server.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /webhooks/sendgrid HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
        f"\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()
    )
    await writer.drain()
    async with asyncio.timeout(10):
        status = await reader.readline()
    writer.close()
    assert status.startswith(b"HTTP/1.1 413"), status

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536

    for provider in ("ses", "sendgrid", "mailgun", "postmark"):
        sent = await hooks.server.client.post(f"/webhooks/{provider}", content=chunks(), auth=None)
        assert sent.status_code == 413, provider
    assert hooks.counted("sendgrid", "too_large", "requests") == 2


async def test_bodies_that_are_not_json_are_refused(hooks: Hooks) -> None:
    ana = await hooks.sent("ana")
    for body in (b"not json", b"[" * 100_000 + b"]" * 100_000, b'{"a": "\xff"}', b""):
        answers = [
            await hooks.post("ses", body),
            await hooks.post("sendgrid", body, sendgrid_headers(body)),
            await hooks.post("mailgun", body),
            await hooks.post("postmark", body, {"Authorization": postmark_auth()}),
        ]
        for answer in answers:
            assert answer.status_code == 400, (body[:20], answer.text)
            assert answer.json()["where"] == "body"
    # Signed, well formed, and about nothing a reader knows: taken, nothing recorded.
    odd = mailgun_signed({"event-data": {"event": "delivered", "recipient": ["not", "text"]}})
    assert (await hooks.post("mailgun", json.dumps(odd).encode())).json()["recorded"] == 0
    assert hooks.counted("mailgun", "malformed") == 1
    told = {e["event"] for e in await hooks.server.events(ana.user)}
    assert told.isdisjoint({"Email Bounced", "Email Complained", "Email Opened"})
