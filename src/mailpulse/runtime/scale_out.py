"""The scale-out parts named on the command line: PostgreSQL for log and state, NATS
JetStream for the bus, both with the same number of partitions."""

from __future__ import annotations

from mailpulse.bus.jetstream import JetStreamBus
from mailpulse.runtime.fold import EVENTS, SENDS
from mailpulse.store.postgres import PostgresEventLog, PostgresStateStore
from mailpulse.types import Event, SendIntent


def is_store_url(value: str) -> bool:
    return value.startswith(("postgres://", "postgresql://"))


def scale_out_parts(
    store: str, bus: str, partitions: int, *, bus_prefix: str = "mailpulse", bus_replicas: int = 1
) -> tuple[PostgresEventLog, PostgresStateStore, JetStreamBus]:
    if not is_store_url(store):
        raise ValueError(f"--store {store!r}: a postgresql:// URL is needed in scale-out mode")
    if not bus.startswith(("nats://", "tls://")):
        raise ValueError(f"--bus {bus!r}: a nats:// URL is needed in scale-out mode")
    return (
        PostgresEventLog(store, partitions),
        PostgresStateStore(store),
        JetStreamBus(
            bus.split(","),
            partitions=partitions,
            item_types={EVENTS: Event, SENDS: SendIntent},
            prefix=bus_prefix,
            replicas=bus_replicas,
        ),
    )
