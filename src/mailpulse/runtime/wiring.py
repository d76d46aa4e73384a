"""Builders that turn a loaded project into the parts of the send leg."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mailpulse.access import AccessStore, PostgresAccessStore, SqliteAccessStore
from mailpulse.catalog import CatalogReader, CatalogStore
from mailpulse.catalog.postgres import PostgresCatalogStore
from mailpulse.catalog.sqlite import SqliteCatalogStore
from mailpulse.delivery import DkimSigner, SmtpRelay
from mailpulse.delivery.limits import GLOBAL_RATE, Quotas
from mailpulse.delivery.mx import MxResolver
from mailpulse.delivery.mx_route import MxRoute, MxSettings
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
from mailpulse.runtime.courier import (
    Courier,
    LocalCourier,
    MessageFactory,
    SenderIdentity,
    Transport,
)
from mailpulse.runtime.courier_pool import CourierPool
from mailpulse.runtime.courier_process import CourierProcess
from mailpulse.runtime.traffic import Traffic
from mailpulse.store import StateStore
from mailpulse.store.postgres import PostgresStateStore
from mailpulse.store.sqlite import SqliteStateStore
from mailpulse.tokens import TokenSigner


def relay_for(project: Project, smtp: tuple[str, int] | None = None) -> SmtpRelay:
    """The project's relay; `smtp` points it at a local sink instead (demo, tests)."""
    cfg = project.config.smtp
    if smtp is not None:
        return SmtpRelay(smtp[0], smtp[1], starttls=False, max_connections=cfg.max_connections)
    return SmtpRelay(
        cfg.host,
        cfg.port,
        starttls=cfg.starttls,
        implicit_tls=cfg.implicit_tls,
        username=cfg.username,
        password=cfg.password,
        tls_verify=cfg.tls_verify is not False,
        max_connections=cfg.max_connections,
        max_messages_per_connection=cfg.max_messages_per_connection,
        timeout=project.durations.smtp_timeout,
    )


def transport_for(project: Project, smtp: tuple[str, int] | None = None) -> Transport:
    """How the project's mail leaves: through its relay, or to each domain's mail hosts
    (`[smtp] route`); `smtp` sends everything to a local sink instead (demo, tests)."""
    cfg = project.config.smtp
    if smtp is not None or cfg.route == "relay":
        return relay_for(project, smtp)
    settings = MxSettings(
        port=cfg.mx_port,
        max_connections=cfg.max_connections,
        max_messages_per_connection=cfg.max_messages_per_connection,
        tls_verify=bool(cfg.tls_verify),
        timeout=project.durations.smtp_timeout,
    )
    return MxRoute(MxResolver(project.nameservers), project.shaping, settings)


def sender_identity(project: Project) -> SenderIdentity:
    cfg = project.config
    domain = project.sender_domain
    return SenderIdentity(
        from_addr=cfg.sender.from_,
        return_path=cfg.sender.return_path or f"bounces@{domain}",
        message_id_domain=domain,
        feedback_id=cfg.sender.feedback_id,
        project={
            "name": cfg.project.name,
            "url": cfg.project.url,
            "postal_address": cfg.project.postal_address,
        },
    )


def message_factory(
    project: Project, catalog: CatalogReader | None = None, tokens: TokenSigner | None = None
) -> MessageFactory:
    dkim = project.config.dkim
    signer = None
    if dkim is not None and project.dkim_private_key is not None:
        signer = DkimSigner(dkim.domain, dkim.selector, project.dkim_private_key)
    return MessageFactory(
        project.templates,
        signer,
        sender_identity(project),
        catalog=catalog,
        tokens=tokens,
        tracking=project.tracking,
    )


def local_courier(
    project: Project,
    smtp: tuple[str, int] | None = None,
    catalog: CatalogReader | None = None,
    tokens: TokenSigner | None = None,
) -> LocalCourier:
    return LocalCourier(message_factory(project, catalog, tokens), transport_for(project, smtp))


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
