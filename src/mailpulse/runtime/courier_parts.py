"""What a courier process builds from a project: its message factory and its transport.

Kept apart from mailpulse.runtime.wiring, which builds the server's parts: a courier imports
this and nothing of the stores, the bus or the PostgreSQL client, 11 MB less in each one,
nor dnspython unless it delivers to mail hosts itself.
"""

from __future__ import annotations

from mailpulse.catalog import CatalogReader
from mailpulse.delivery import DkimSigner, SmtpRelay
from mailpulse.project import Project
from mailpulse.runtime.courier import LocalCourier, MessageFactory, SenderIdentity, Transport
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
    # Imported here: a courier that relays never looks up a mail host, and dnspython would
    # cost it 3.4 MB.
    from mailpulse.delivery.mx import MxResolver
    from mailpulse.delivery.mx_route import MxRoute, MxSettings

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
        esp_webhooks=project.webhooks.configured(),
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
