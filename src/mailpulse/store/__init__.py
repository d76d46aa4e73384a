"""Event log and derived state behind one seam, with a SQLite implementation."""

from mailpulse.store.interface import (
    EventLog,
    FoldCommit,
    InstanceRecord,
    LogRolledBack,
    LogUnavailable,
    OutboxRow,
    OutboxStatus,
    OutboxUpdate,
    StateStore,
)

__all__ = [
    "EventLog",
    "FoldCommit",
    "InstanceRecord",
    "LogRolledBack",
    "LogUnavailable",
    "OutboxRow",
    "OutboxStatus",
    "OutboxUpdate",
    "StateStore",
]
