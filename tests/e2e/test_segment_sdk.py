"""The official Segment Python SDK, unmodified, with its host pointed at mailpulse."""

from __future__ import annotations

import asyncio

from segment.analytics import Client

from tests.e2e.conftest import WRITE_KEY, Server, Sink


async def test_segment_python_sdk_works_unmodified(server: Server, sink: Sink) -> None:
    errors: list[Exception] = []
    client = Client(
        WRITE_KEY, host=server.base, sync_mode=True, on_error=lambda e, _: errors.append(e)
    )

    def use_the_sdk() -> None:
        client.identify("sdk-user", {"email": "sdk@example.com", "first_name": "Sam"})
        client.track("sdk-user", "Signed Up", {"plan": "pro"})
        client.page("sdk-user", "Docs", "Getting started", {"url": "https://shop.test/docs"})
        client.group("sdk-user", "acme-inc", {"name": "Acme"})
        client.alias("sdk-user", "sdk-user-2")
        client.flush()

    await asyncio.to_thread(use_the_sdk)
    assert errors == []
    [got] = await sink.wait_for("sdk@example.com")
    assert "Hello Sam," in got.message.get_body(("plain",)).get_content()
    await server.wait_event("sdk-user", "Email Sent")
    events = await server.events("sdk-user")
    kinds = {e["type"] for e in events}
    assert {"identify", "track", "page", "group", "alias"} <= kinds
    page = next(e for e in events if e["type"] == "page")
    assert page["name"] == "Getting started"
    contact = (await server.admin.get("/admin/contacts/sdk-user-2")).json()
    assert contact["id"] == "sdk-user-2" and contact["email"] == "sdk@example.com"
