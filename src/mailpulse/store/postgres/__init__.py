"""PostgreSQL implementation of the store seam (scale-out): one log and one state shared by
every API node and worker."""

from mailpulse.store.postgres.log import PostgresEventLog
from mailpulse.store.postgres.schema import migrate
from mailpulse.store.postgres.state import PostgresStateStore

__all__ = ["PostgresEventLog", "PostgresStateStore", "migrate"]
