"""Event log and derived state behind one seam: SQLite (embedded, `store.sqlite`) and PostgreSQL
(scale-out, `store.postgres`) implement it."""

from mailpulse.store.interface import (
    CampaignRecord,
    EventLog,
    FoldCommit,
    Handover,
    InstanceRecord,
    LogRolledBack,
    LogUnavailable,
    OutboxRow,
    OutboxStatus,
    OutboxUpdate,
    SoftBounce,
    StateStore,
)

__all__ = [
    "CampaignRecord",
    "EventLog",
    "FoldCommit",
    "Handover",
    "InstanceRecord",
    "LogRolledBack",
    "LogUnavailable",
    "OutboxRow",
    "OutboxStatus",
    "OutboxUpdate",
    "SoftBounce",
    "StateStore",
]
