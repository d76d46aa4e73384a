"""Stages that fail are restarted, not left dead with work piling up behind them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mailpulse.observe import Metrics

log = logging.getLogger("mailpulse")

RESTART_AFTER = 1.0  # seconds between a stage's failure and its restart


async def supervise(name: str, stage: Callable[[], Awaitable[None]], metrics: Metrics) -> None:
    """Run `stage` for ever: a failure (a full disk, a lost database connection, a bug) is
    logged, counted and the stage started again. Each stage resumes from what the store
    holds, so nothing accepted is left unprocessed."""
    while True:
        try:
            await stage()
        except Exception:
            metrics.errors.labels(name).inc()
            log.exception("stage %s failed; restarting it in %s s", name, RESTART_AFTER)
            await asyncio.sleep(RESTART_AFTER)


def start_stages(
    stages: list[tuple[str, Callable[[], Awaitable[None]]]], metrics: Metrics, prefix: str
) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(supervise(name, stage, metrics), name=f"{prefix}-{name}")
        for name, stage in stages
    ]


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()
