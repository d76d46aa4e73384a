"""What the JetStream tests read from a server (bench/servers.py starts the servers)."""

from __future__ import annotations

import nats


async def stream_messages(url: str, stream: str) -> int:
    """How many items a stream holds; a work queue drops the acked ones."""
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.state.messages
    finally:
        await nc.close()
