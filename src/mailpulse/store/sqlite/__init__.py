"""SQLite implementation of the store seam (embedded mode)."""

from mailpulse.store.sqlite.log import SqliteEventLog
from mailpulse.store.sqlite.state import SqliteStateStore

__all__ = ["SqliteEventLog", "SqliteStateStore"]
