"""The local courier against a real SMTP server: prepared intents go out once, only when
submitted, and as submitted."""

from __future__ import annotations

import asyncio
import email
from pathlib import Path

import pytest

from mailpulse.delivery import SmtpRelay
from mailpulse.project import load_project
from mailpulse.runtime import courier as courier_module
from mailpulse.runtime.courier import LocalCourier
from mailpulse.runtime.courier_parts import message_factory
from mailpulse.types import DeliveryStatus, SendIntent
from tests.delivery.peers import smtp_server

__all__ = ["smtp_server"]

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def intent(n: int, name: str = "Ann", template: str = "welcome") -> SendIntent:
    return SendIntent(
        key=f"key-{n}",
        contact_id=f"c{n}",
        email=f"ann{n}@example.org",
        template=template,
        context={"contact": {"first_name": name, "email": f"ann{n}@example.org"}},
    )


def courier_for(port: int, max_connections: int = 4) -> tuple[LocalCourier, SmtpRelay]:
    relay = SmtpRelay("127.0.0.1", port, starttls=False, max_connections=max_connections)
    return LocalCourier(message_factory(load_project(SHOP)), relay), relay


def subject(raw: bytes) -> str:
    return str(email.message_from_bytes(raw)["Subject"])


async def settled(relay: SmtpRelay, in_flight: int) -> None:
    for _ in range(200):
        if relay.in_flight == in_flight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"in flight: {relay.in_flight}, expected {in_flight}")


async def test_a_prepared_intent_opens_its_transaction_and_goes_out_on_submit(smtp_server):
    handler, port = smtp_server()
    courier, relay = courier_for(port)
    courier.prepare(intent(1))
    await settled(relay, 1)  # MAIL, RCPT and DATA done: the server waits for the content
    assert handler.messages == []
    delivered = await courier.submit(intent(1))
    assert delivered.result is not None and delivered.result.status == DeliveryStatus.SENT
    assert delivered.sign_s > 0 and delivered.message_id.startswith("<")
    await courier.close()
    assert [m[1] for m in handler.messages] == [["ann1@example.org"]]
    assert "Ann" in subject(handler.messages[0][2])


async def test_a_prepared_intent_never_submitted_is_dropped_unsent(smtp_server, monkeypatch):
    monkeypatch.setattr(courier_module, "PREPARED_FOR", 0.1)
    handler, port = smtp_server()
    courier, relay = courier_for(port)
    courier.prepare(intent(1))
    await settled(relay, 1)
    await settled(relay, 0)  # expired: the connection went, mid-transaction
    assert relay.has_free_connection()
    # Submitted after all, it is made and sent afresh.
    delivered = await courier.submit(intent(1))
    assert delivered.result is not None and delivered.result.status == DeliveryStatus.SENT
    await courier.close()
    assert len(handler.messages) == 1


async def test_what_goes_out_is_the_submitted_intent_not_the_prepared_one(smtp_server):
    handler, port = smtp_server()
    courier, relay = courier_for(port)
    courier.prepare(intent(1, name="Ann"))
    await settled(relay, 1)
    delivered = await courier.submit(intent(1, name="Bea"))
    assert delivered.result is not None and delivered.result.status == DeliveryStatus.SENT
    await courier.close()
    assert len(handler.messages) == 1
    assert "Bea" in subject(handler.messages[0][2])


async def test_a_template_failing_at_prepare_fails_the_submit(smtp_server):
    handler, port = smtp_server()
    courier, relay = courier_for(port)
    courier.prepare(intent(1, template="no_such_template"))
    await asyncio.sleep(0.05)
    assert relay.in_flight == 0  # nothing to send: no transaction opened
    delivered = await courier.submit(intent(1, template="no_such_template"))
    assert delivered.result is None and "no_such_template" in delivered.error
    await courier.close()
    assert handler.messages == []


async def test_close_drops_prepared_transactions_without_sending(smtp_server):
    handler, port = smtp_server()
    courier, relay = courier_for(port)
    for n in range(3):
        courier.prepare(intent(n))
    await settled(relay, 3)
    await asyncio.wait_for(courier.close(), 5)
    assert relay.in_flight == 0
    assert handler.messages == []


@pytest.mark.parametrize("prepared_share", [0.0, 0.5, 1.0])
async def test_under_load_each_intent_goes_out_exactly_once(smtp_server, prepared_share):
    handler, port = smtp_server()
    courier, _relay = courier_for(port, max_connections=2)
    intents = [intent(n) for n in range(60)]
    for it in intents[: int(len(intents) * prepared_share)]:
        courier.prepare(it)
    results = await asyncio.gather(*(courier.submit(it) for it in intents))
    await courier.close()
    assert all(r.result is not None and r.result.status == DeliveryStatus.SENT for r in results)
    assert sorted(m[1][0] for m in handler.messages) == sorted(i.email for i in intents)


async def test_an_address_the_message_cannot_carry_fails_that_message_alone(smtp_server):
    handler, port = smtp_server()
    courier, _relay = courier_for(port)
    unwritable = SendIntent(
        key="key-u",
        contact_id="cu",
        email="émile@example.org",  # accepted at intake; needs SMTPUTF8, which is not sent
        template="welcome",
        context={"contact": {"first_name": "Émile", "email": "émile@example.org"}},
    )
    courier.prepare(unwritable)  # preparing it raises nothing either
    failed = await courier.submit(unwritable)
    assert failed.result is None and "SMTPUTF8" in failed.error
    sent = await courier.submit(intent(1))
    assert sent.result is not None and sent.result.status == DeliveryStatus.SENT
    await courier.close()
    assert [m[1] for m in handler.messages] == [["ann1@example.org"]]
