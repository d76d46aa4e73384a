"""Builders that turn a loaded project into the parts of the send leg."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mailpulse.access import AccessStore, SqliteAccessStore
from mailpulse.catalog import CatalogStore
from mailpulse.catalog.sqlite import SqliteCatalogStore
from mailpulse.delivery.limits import GLOBAL_RATE, Quotas
from mailpulse.delivery.mime import message_id_of
from mailpulse.delivery.shaping import (
    ConnectionLimits,
    Destination,
    Destinations,
    LocalTimeline,
    RateLimiter,
    ShapingRule,
    Timeline,
)
from mailpulse.feedback.inbound import InboundListener
from mailpulse.feedback.intake import Append, Intake
from mailpulse.feedback.verp import ReturnPath
from mailpulse.observe import Metrics
from mailpulse.project import Project
from mailpulse.runtime.courier import Courier
from mailpulse.runtime.courier_parts import sender_identity
from mailpulse.runtime.courier_pool import CourierPool
from mailpulse.runtime.courier_process import CourierProcess
from mailpulse.runtime.traffic import Traffic
from mailpulse.store import StateStore
from mailpulse.store.sqlite import SqliteStateStore
from mailpulse.tokens import TokenSigner
from mailpulse.types import SendIntent

if TYPE_CHECKING:
    from mailpulse.delivery.mx import MxResolver


def embedded_catalog(data_dir: Path) -> SqliteCatalogStore:
    return SqliteCatalogStore(data_dir / "catalog.db")


def _postgres_dsn(state: StateStore) -> str | None:
    """The database of a PostgreSQL state store; None for any other. The PostgreSQL modules
    are imported here, on the scale-out path only: embedded mode never loads asyncpg (3.7 MB)."""
    from mailpulse.store.postgres import PostgresStateStore

    return state.dsn if isinstance(state, PostgresStateStore) else None


def catalog_for(state: StateStore) -> CatalogStore | None:
    """The catalog that goes with a state store: a file beside the SQLite state (of its own,
    see mailpulse.catalog.sqlite for why), or tables in the PostgreSQL state's database. None
    for any other store (a test's stand-in): no catalog then."""
    if isinstance(state, SqliteStateStore):
        return embedded_catalog(state.path.parent)
    if (dsn := _postgres_dsn(state)) is not None:
        from mailpulse.catalog.postgres import PostgresCatalogStore

        return PostgresCatalogStore(dsn)
    return None


def access_for(state: StateStore) -> AccessStore:
    """The keys and audit log that go with a state store: a file beside the SQLite state (of
    its own, see mailpulse.access.sqlite), or tables in the PostgreSQL state's database."""
    if isinstance(state, SqliteStateStore):
        return SqliteAccessStore(state.path.parent / "access.db")
    if (dsn := _postgres_dsn(state)) is not None:
        from mailpulse.access.postgres import PostgresAccessStore

        return PostgresAccessStore(dsn)
    raise TypeError(f"no access store goes with a {type(state).__name__}: give one")


def rate_limiter_for(state: StateStore) -> RateLimiter:
    """Shaping turns are kept where every process that sends sees them: in a store that can
    keep them (PostgreSQL, shared by all workers), else in this process, the only one."""
    return RateLimiter(state if isinstance(state, Timeline) else LocalTimeline())


def _resolver_for(project: Project) -> MxResolver | None:
    """A resolver of mail hosts where shaping needs one: only MX rules look at them, and
    without them dnspython (5 MB) stays unloaded."""
    if not project.shaping.has_mx_rules:
        return None
    from mailpulse.delivery.mx import MxResolver

    return MxResolver(project.nameservers)


def traffic_for(
    project: Project, state: StateStore, clock: Callable[[], float] = time.time
) -> Traffic:
    """The shaping of one process's sends: its own resolver cache and connection counts; turns
    kept where `rate_limiter_for` keeps them, quotas counted in the state store. `clock`
    tells which quota window a send falls in."""
    limits = project.limits
    global_rate = None
    if limits.rate is not None:
        rule = ShapingRule(rate=limits.rate, provider=GLOBAL_RATE)
        global_rate = Destination(GLOBAL_RATE, rule)
    return Traffic(
        destinations=Destinations(project.shaping, _resolver_for(project)),
        limiter=rate_limiter_for(state),
        connections=ConnectionLimits(),
        quotas=Quotas(state, limits.quotas, clock),
        global_rate=global_rate,
    )


def inbound_for(
    project: Project,
    state: StateStore,
    tokens: TokenSigner,
    append: Append,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
) -> InboundListener | None:
    """The inbound SMTP listener of a project with an `[inbound]` table, None without one:
    it finds each bounce's send by the Message-ID its return path names, in `state`."""
    settings = project.config.inbound
    if settings is None:
        return None
    identity = sender_identity(project)
    return_path = ReturnPath(tokens, identity.return_path)

    async def find_send(digest: bytes) -> SendIntent | None:
        row = await state.outbox_by_message_id(message_id_of(digest, identity.message_id_domain))
        return row.intent if row is not None else None

    intake = Intake(
        return_path,
        tokens,
        find_send,
        append,
        metrics,
        rules=project.bounce_rules,
        clock=clock,
        message_id_domain=identity.message_id_domain,
    )
    return InboundListener(
        intake,
        host=settings.host,
        port=settings.port,
        max_size=settings.max_size,
        hostname=return_path.domain,
    )


def courier_processes(
    project: Project,
    secret: str,
    smtp: tuple[str, int] | None = None,
    catalog: str | None = None,
) -> Courier:
    """The project's couriers, each a child process (`[delivery] couriers`)."""
    count = project.couriers
    couriers = [CourierProcess(project.root, smtp, catalog, secret) for _ in range(count)]
    return couriers[0] if count == 1 else CourierPool(couriers)
