"""How the courier process answers a finished delivery (the process itself is driven in
tests/e2e/test_courier_pool.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from mailpulse.runtime.courier import Delivered
from mailpulse.runtime.courier_process import _answer, _delivery
from mailpulse.types import DeliveryStatus, SendIntent


async def test_a_delivery_is_answered_with_its_outcome() -> None:
    done: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
    done.set_result(Delivered(message_id="<m@x>"))

    answer = _answer(7, done)

    assert answer is not None and answer.id == 7 and answer.delivered.message_id == "<m@x>"


async def test_a_cancelled_delivery_is_not_answered() -> None:
    done: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
    done.cancel()

    assert _answer(7, done) is None


async def test_a_delivery_that_raised_is_answered_as_a_deferral_to_retry() -> None:
    done: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
    done.set_exception(KeyError("boom"))

    answer = _answer(7, done)

    assert answer is not None and answer.id == 7
    result = answer.delivered.result
    assert result is not None and result.status == DeliveryStatus.DEFERRED and result.code == 0
    assert "KeyError" in result.text and "boom" in result.text


class RaisingCourier:
    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        raise TypeError("made nothing")


async def test_a_submit_that_raised_at_once_is_answered_as_a_deferral() -> None:
    intent = SendIntent(
        key="k", contact_id="c", email="a@example.org", template="welcome", context={}
    )

    done = _delivery(RaisingCourier(), intent)  # type: ignore[arg-type]

    answer = _answer(7, done)
    assert answer is not None and answer.delivered.result is not None
    assert answer.delivered.result.status == DeliveryStatus.DEFERRED
    assert "TypeError" in answer.delivered.result.text
