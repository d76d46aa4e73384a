"""Object notifications in the fold: an event about a product reaches the contacts who showed
interest in it lately, read from the interest index, and starts the journey for each."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mailpulse.journeys import parse_journey
from mailpulse.runtime.fold import SENDS
from mailpulse.types import Event
from tests.runtime.test_fold import Clock, anonymous, identify, running, signs_in, track

DAY = 86400.0
BACK_IN_STOCK = parse_journey(
    textwrap.dedent(
        """\
        trigger:
          event: Back In Stock
          fan_out:
            catalog: products
            performed: [Product Viewed, Product Added to Wishlist]
            key: product_id
            within: 30d
        entry: always
        steps:
          - send: back_in_stock
        """
    ),
    Path("back_in_stock.yaml"),
)
JOURNEYS = {"back_in_stock": BACK_IN_STOCK}


@pytest.fixture
def clock() -> Clock:
    return Clock()


def shown(n: int, user: str, name: str, product: object, at: float) -> Event:
    event = track(n, user, name)
    event.properties = {"product_id": product}
    event.timestamp = event.received_at = at
    return event


def about(product: str, message_id: str, at: float) -> Event:
    return Event(
        type="track",
        message_id=message_id,
        contact_key=f"object:products:{product}",
        event="Back In Stock",
        properties={"catalog": "products", "id": product, "stock": 4},
        timestamp=at,
        received_at=at,
    )


async def test_the_event_reaches_recent_interest_in_that_object_only(
    tmp_path: Path, clock: Clock
) -> None:
    clock.now = 100 * DAY
    async with running(tmp_path, clock, journeys=JOURNEYS) as h:
        await h.append([identify(n, u) for n, u in enumerate("abcde")])
        await h.append(
            [
                shown(10, "a", "Product Viewed", "sku-1", clock.now - 40 * DAY),  # too long ago
                shown(11, "b", "Product Viewed", "sku-1", clock.now - DAY),
                shown(12, "c", "Product Viewed", "sku-2", clock.now - DAY),  # another product
                shown(13, "d", "Product Added to Wishlist", "sku-1", clock.now - 2 * DAY),
                shown(14, "e", "Product Added", "sku-1", clock.now - DAY),  # not an interest
                shown(15, "b", "Product Viewed", "sku-1", clock.now - DAY / 2),  # twice: once
            ]
        )
        await h.append([about("sku-1", "stock-1", clock.now)])
        sent = await h.sends(2)
        assert sorted((s.contact_id, s.template) for s in sent) == [
            ("b", "back_in_stock"),
            ("d", "back_in_stock"),
        ]
        assert sent[0].context["event"]["properties"]["id"] == "sku-1"
        assert await h.bus.next_batch(SENDS, 0, 10, 0.5) == []
        # The same event again (a retried request): the log drops it, nobody gets a second.
        await h.append([about("sku-1", "stock-1", clock.now)])
        assert await h.bus.next_batch(SENDS, 0, 10, 0.5) == []
        # Ids that are not text or whole numbers, or that no catalog item could have (a NUL
        # that storage would refuse), name no object.
        await h.append([shown(20, "c", "Product Viewed", {"id": 1}, clock.now)])
        await h.append([shown(21, "c", "Product Viewed", "sku\x00-1", clock.now)])
        contact_events = await h.log.for_contact(["b"], 100)
        copies = [e for e in contact_events if e.event == "Back In Stock"]
        assert [e.message_id for e in copies] == ["stock-1>b"]


async def test_an_anonymous_viewer_who_signs_in_is_reached_under_the_signed_in_profile(
    tmp_path: Path, clock: Clock
) -> None:
    clock.now = 100 * DAY
    async with running(tmp_path, clock, journeys=JOURNEYS) as h:
        viewed = anonymous(1, "anon-7", "Product Viewed", product_id=77)
        viewed.received_at = clock.now
        await h.append([viewed])
        await h.append([signs_in(2, "u7", "anon-7", email="u7@example.com")])
        await h.append([about("77", "stock-77", clock.now + 60)])
        [send] = await h.sends(1)
        assert (send.contact_id, send.email) == ("u7", "u7@example.com")
