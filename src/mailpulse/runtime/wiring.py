"""Builders that turn a loaded project into the parts of the send leg."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mailpulse.access import AccessStore, PostgresAccessStore, SqliteAccessStore
from mailpulse.catalog import CatalogStore
from mailpulse.catalog.postgres import PostgresCatalogStore
from mailpulse.catalog.sqlite import SqliteCatalogStore
from mailpulse.delivery.limits import GLOBAL_RATE, Quotas
from mailpulse.delivery.mx import MxResolver
from mailpulse.delivery.shaping import (
    ConnectionLimits,
    Destination,
    Destinations,
    LocalTimeline,
    RateLimiter,
    ShapingRule,
    Timeline,
)
from mailpulse.project import Project
from mailpulse.runtime.courier import Courier
from mailpulse.runtime.courier_pool import CourierPool
from mailpulse.runtime.courier_process import CourierProcess
from mailpulse.runtime.traffic import Traffic
from mailpulse.store import StateStore
from mailpulse.store.postgres import PostgresStateStore
from mailpulse.store.sqlite import SqliteStateStore


def embedded_catalog(data_dir: Path) -> SqliteCatalogStore:
    return SqliteCatalogStore(data_dir / "catalog.db")


def catalog_for(state: StateStore) -> CatalogStore | None:
    """The catalog that goes with a state store: a file beside the SQLite state (of its own,
    see mailpulse.catalog.sqlite for why), or tables in the PostgreSQL state's database. None
    for any other store (a test's stand-in): no catalog then."""
    if isinstance(state, SqliteStateStore):
        return embedded_catalog(state.path.parent)
    if isinstance(state, PostgresStateStore):
        return PostgresCatalogStore(state.dsn)
    return None


def access_for(state: StateStore) -> AccessStore:
    """The keys and audit log that go with a state store: a file beside the SQLite state (of
    its own, see mailpulse.access.sqlite), or tables in the PostgreSQL state's database."""
    if isinstance(state, PostgresStateStore):
        return PostgresAccessStore(state.dsn)
    if isinstance(state, SqliteStateStore):
        return SqliteAccessStore(state.path.parent / "access.db")
    raise TypeError(f"no access store goes with a {type(state).__name__}: give one")


def rate_limiter_for(state: StateStore) -> RateLimiter:
    """Shaping turns are kept where every process that sends sees them: in a store that can
    keep them (PostgreSQL, shared by all workers), else in this process, the only one."""
    return RateLimiter(state if isinstance(state, Timeline) else LocalTimeline())


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
        destinations=Destinations(project.shaping, MxResolver(project.nameservers)),
        limiter=rate_limiter_for(state),
        connections=ConnectionLimits(),
        quotas=Quotas(state, limits.quotas, clock),
        global_rate=global_rate,
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
