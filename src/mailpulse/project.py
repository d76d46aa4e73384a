"""The project as code: `mailpulse.toml`, `journeys/`, `templates/` in one folder.

Everything is checked at load; an error names the file, the line and what to change.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import msgspec

from mailpulse.audience.segments import Segment, SegmentSet, load_segments
from mailpulse.campaigns.abtest import Conversion
from mailpulse.campaigns.definition import AHEAD, PAGE
from mailpulse.delivery import DkimSigner
from mailpulse.delivery.limits import DAY, HOUR, Quota, SendLimits
from mailpulse.delivery.mail_hosts import nameserver
from mailpulse.delivery.shaping import (
    Shaping,
    ShapingRule,
    mx_suffix,
    rule_domain,
    with_builtin_rules,
)
from mailpulse.errors import ProjectError
from mailpulse.events.plan import load_plan
from mailpulse.feedback.machines import MachineSettings
from mailpulse.feedback.rules import BounceRules, project_rules
from mailpulse.feedback.verp import prefix_problem
from mailpulse.feedback.webhooks.settings import (
    DEFAULT_TOLERANCE,
    MIN_PASSWORD,
    TOLERANCE_RANGE,
    MailgunSettings,
    PostmarkSettings,
    SendGridSettings,
    SesSettings,
    WebhookSettings,
    sendgrid_public_key,
    topic_problem,
)
from mailpulse.journeys import JourneyDefinition, branch_segments, load_journeys
from mailpulse.observe.alerts_rules import AlertRules, load_alert_rules
from mailpulse.policy import FrequencyCap, QuietHours, SendPolicy
from mailpulse.policy.breaker import BreakerSettings, parse_percent
from mailpulse.policy.consent import BUILTIN_TEMPLATES
from mailpulse.policy.localtime import zone
from mailpulse.policy.topics import TOPIC_ID, Topic, unknown_topic
from mailpulse.render import TemplateLibrary
from mailpulse.render.tracking import Tracking, is_web_url
from mailpulse.units import parse_duration, parse_rate

CONFIG_FILE = "mailpulse.toml"
# Couriers "auto" starts one per core, up to this: past it the server, which feeds them all,
# is the narrower pipe.
MAX_AUTO_COURIERS = 4


class ProjectSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    url: str = "https://example.com"
    postal_address: str = ""
    write_keys: list[str] = msgspec.field(default_factory=list)
    # Keys kept on servers, never in a web page: they write events, and may also update
    # catalogs with `Catalog Item Updated` (see mailpulse.api.catalog_events).
    server_write_keys: list[str] = msgspec.field(default_factory=list)
    admin_key: str = ""
    # Signs unsubscribe, preference, tracking and return-path tokens (see mailpulse.tokens);
    # better given as MAILPULSE_SECRET than written here. Embedded mode makes one if unset.
    secret: str = ""
    # The clock of contacts without a `timezone` trait (an IANA name).
    timezone: str = "UTC"


class SenderSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    from_: str = msgspec.field(name="from")
    return_path: str = ""
    feedback_id: str = ""


class DkimSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    domain: str
    selector: str
    private_key: str  # path relative to the project folder


class SmtpSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool | None = None
    implicit_tls: bool = False
    username: str | None = None
    password: str | None = None
    # Check the server's certificate: by default yes for the relay, no for MX hosts (as MTAs
    # do with opportunistic STARTTLS).
    tls_verify: bool | None = None
    max_connections: int = 10
    max_messages_per_connection: int = 100
    timeout: str = "30s"
    # "relay": everything through host:port; "mx": to each recipient domain's mail hosts.
    route: str = "relay"
    # The port of mail hosts under route = "mx": 25, but for tests against local servers.
    mx_port: int = 25


class ShapingSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # One of: a recipient domain (its subdomains too), or "*" for each other domain; or a
    # suffix of mail host names ("google.com": every domain whose MX is Google's).
    domain: str = ""
    mx: str = ""
    rate: str = ""  # "100/s", "6000/m", "50000/h"
    connections: int | None = None  # transactions at once, per sending process
    messages_per_connection: int | None = None  # direct-MX delivery


class LimitsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # A relay's or ESP's send limits, over every destination: "14/s", and quotas per UTC
    # hour and day (sends over them wait for the next window).
    rate: str = ""
    hourly: int | None = None
    daily: int | None = None


class DeliverySection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    retry_schedule: list[str] = msgspec.field(
        default_factory=lambda: ["5m", "15m", "30m", "1h", "2h", "4h", "8h"]
    )
    max_age: str = "4d"
    # Deliveries in flight, across the couriers. A courier makes what it is handed at once and
    # keeps it until one of its connections is free, so this is how much work the couriers
    # hold while the server is busy elsewhere: each page of a campaign keeps the server's
    # loop for 50-100 ms at a time (reading the page, appending it, folding it), and with
    # 128 the couriers ran dry each time (a sixth of the 2 cores idle during a broadcast).
    # 512: 0.06-0.10 idle, and ahead in each of nine interleaved pairs at 40,000 recipients
    # (medians 1,588 against 1,504 messages/s), for ~13 MB more (made messages waiting in
    # the couriers). 1,024: no faster, 35 MB more.
    # Messages that can come twice after a crash are only those in an SMTP transaction,
    # which the connections bound, not this.
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 512  # 0 would hold every send
    # Processes that render, sign and send, each on a core of its own and with its own SMTP
    # connections: "auto" is one per core (up to MAX_AUTO_COURIERS), or a number.
    couriers: int | Literal["auto"] = "auto"
    shaping: list[ShapingSection] = msgspec.field(default_factory=list)
    # DNS resolvers for mail host look-ups ("127.0.0.1:5353"); the system's by default.
    nameservers: list[str] = msgspec.field(default_factory=list)
    limits: LimitsSection = msgspec.field(default_factory=LimitsSection)
    # Shaping for Gmail, Yahoo, Outlook and Apple (see delivery/builtin_shaping.toml): by
    # default under [smtp] route = "mx" only, where mailpulse speaks to them itself.
    builtin_shaping: bool | None = None


class IngestSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    dedup_window: str = "24h"


class PolicySection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Marketing only, on each contact's clock: "21:00-08:00"; held, then sent when they end.
    quiet_hours: str = ""
    # Or the other way round, the hours marketing may go out: "09:00-20:00".
    send_window: str = ""
    # Marketing per contact across all journeys: "3/1d"; over it, a message is not sent.
    frequency_cap: str = ""
    # Per topic (a journey's or send step's `topic`), on top of frequency_cap:
    # {promotions = "1/1d"}.
    topic_caps: dict[str, str] = msgspec.field(default_factory=dict)
    # Soft bounces of one address (full mailbox, blocks, expiry) within a period that put it on
    # the suppression list (soft_bounce); "" never does.
    soft_bounce_limit: str = "5/7d"


class InboundSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Where the inbound SMTP listener takes bounces, complaints and mailto unsubscribes (see
    # mailpulse.feedback.inbound): the return path domain's MX, or a relay, hands mail to it.
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 2525
    # Bytes a message may have: advertised in EHLO (SIZE, RFC 1870), larger ones refused (552).
    max_size: Annotated[int, msgspec.Meta(ge=1024)] = 10 * 1024 * 1024


class CampaignsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Contacts read at a time, and messages (or unfolded events) that may wait for delivery
    # before a campaign reads on: what bounds memory, and how soon a pause takes hold.
    page: Annotated[int, msgspec.Meta(ge=1)] = PAGE
    ahead: Annotated[int, msgspec.Meta(ge=1)] = AHEAD


class TrackingSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # An open pixel and click redirects in marketing messages (see mailpulse.render.tracking).
    opens: bool = True
    clicks: bool = True
    # Where tracked links and the pixel point, a URL mailpulse answers /o/ and /c/ at
    # ("https://t.shop.example"); [project] url by default.
    domain: str = ""
    transactional: bool = False  # receipts and other transactional mail too
    # A click this soon after its message was made is a link scanner's (see
    # mailpulse.feedback.machines).
    scanner_window: str = "10s"
    # Apple's iCloud Private Relay egress ranges (the CSV Apple publishes), relative to the
    # project: opens from them are Apple Mail Privacy Protection's.
    apple_proxy_ranges: str = ""


class ConversionsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The event that is a conversion ("Order Completed"), attributed to the contact's last
    # message clicked (by a person) `within` before it; none: conversions are not attributed.
    event: str = ""
    revenue: str = "revenue"  # its property holding the amount
    within: str = "5d"


class TopicSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # `[topics.<id>]`: a kind of marketing contacts subscribe to (see mailpulse.policy.topics).
    name: str = ""  # shown on the preference page; the id by default
    description: str = ""
    opt_in: bool | None = None  # only with consent; false (opt-out) by default
    double_opt_in: bool = False  # consent confirmed from a mailed link; implies opt_in


class PublicSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Requests per client address to the pages and links mail carries (unsubscribe, preferences,
    # confirmation, tracking): a token bucket refilled at `rate` that holds `burst`; past it,
    # 429 with Retry-After (see mailpulse.api.public_limits).
    rate: str = "20/s"
    burst: Annotated[int, msgspec.Meta(ge=1)] = 100


class PrivacySection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Raw events older than this leave the log once folded (see mailpulse.privacy.retention).
    event_retention: str = "400d"


class BreakerSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The protective breaker (see mailpulse.policy.breaker): the complaint rate of marketing
    # over `window` that raises an alert, and the one that pauses marketing until an operator
    # resumes it; not judged below `min_sends` marketing messages sent in the window.
    # Percentages ("0.3%"); a bare number is taken in so as to be refused with the reason (is
    # 0.3 a share or a percentage?).
    alert: str | float = "0.1%"
    pause: str | float = "0.3%"
    window: str = "24h"
    min_sends: int = 2000


class SesWebhookSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The SNS topics SES publishes to whose messages are taken, by ARN (see
    # mailpulse.feedback.webhooks.ses).
    topics: list[str] = msgspec.field(default_factory=list)


class SendGridWebhookSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    public_key: str  # the Signed Event Webhook's verification key, as SendGrid shows it
    tolerance: str = DEFAULT_TOLERANCE  # how old a signed timestamp may be


class MailgunWebhookSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    signing_key: str  # the HTTP webhook signing key
    tolerance: str = DEFAULT_TOLERANCE


class PostmarkWebhookSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The Basic auth credentials written into the webhook's URL at Postmark.
    username: str
    password: str


class WebhooksSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # `[webhooks.<provider>]`: the ESPs that may report to POST /webhooks/<provider>; one
    # without its table answers 404 (see mailpulse.feedback.webhooks).
    ses: SesWebhookSection | None = None
    sendgrid: SendGridWebhookSection | None = None
    mailgun: MailgunWebhookSection | None = None
    postmark: PostmarkWebhookSection | None = None


class ProjectConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    project: ProjectSection
    sender: SenderSection
    dkim: DkimSection | None = None
    smtp: SmtpSection = msgspec.field(default_factory=SmtpSection)
    delivery: DeliverySection = msgspec.field(default_factory=DeliverySection)
    ingest: IngestSection = msgspec.field(default_factory=IngestSection)
    policy: PolicySection = msgspec.field(default_factory=PolicySection)
    inbound: InboundSection | None = None  # no listener unless the table is there
    campaigns: CampaignsSection = msgspec.field(default_factory=CampaignsSection)
    tracking: TrackingSection = msgspec.field(default_factory=TrackingSection)
    conversions: ConversionsSection = msgspec.field(default_factory=ConversionsSection)
    public: PublicSection = msgspec.field(default_factory=PublicSection)
    privacy: PrivacySection = msgspec.field(default_factory=PrivacySection)
    breaker: BreakerSection = msgspec.field(default_factory=BreakerSection)
    webhooks: WebhooksSection = msgspec.field(default_factory=WebhooksSection)
    # Topic id → its `[topics.<id>]` table, a TopicSection (checked one by one, see _topics,
    # so that an error can name the table: msgspec does not say which key of a dict it was).
    topics: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


_KNOWN_KEYS = {
    "": ProjectConfig,
    "project": ProjectSection,
    "sender": SenderSection,
    "dkim": DkimSection,
    "smtp": SmtpSection,
    "delivery": DeliverySection,
    "delivery.shaping": ShapingSection,
    "delivery.limits": LimitsSection,
    "ingest": IngestSection,
    "policy": PolicySection,
    "inbound": InboundSection,
    "campaigns": CampaignsSection,
    "tracking": TrackingSection,
    "conversions": ConversionsSection,
    "public": PublicSection,
    "privacy": PrivacySection,
    "breaker": BreakerSection,
    "webhooks": WebhooksSection,
    "webhooks.ses": SesWebhookSection,
    "webhooks.sendgrid": SendGridWebhookSection,
    "webhooks.mailgun": MailgunWebhookSection,
    "webhooks.postmark": PostmarkWebhookSection,
}
# Tables whose names the project chooses (`[topics.<id>]`), by the kind of all of them.
_NAMED_TABLES = {"topics": TopicSection}


@dataclass(frozen=True)
class Durations:
    retry_schedule: tuple[float, ...]
    max_age: float
    dedup_window: float
    smtp_timeout: float
    event_retention: float


@dataclass(frozen=True)
class PublicLimit:
    """What one client address may ask of the public pages and links: `rate` requests a
    second, `burst` at once."""

    rate: float
    burst: int


_HEADER = re.compile(r"^\s*\[\[?\s*([\w.-]+)\s*\]\]?")


def _line_of(text: str, section: str, key: str | None, index: int | None = None) -> int | None:
    """The line where `key` is set inside `[section]` (or the section header itself); for an
    array of tables, inside the `index`-th `[[section]]`. A table written inline
    (`shaping = [{...}]`) is found by its key in the parent section."""
    current, seen = "", -1
    for n, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            current = m.group(1)
            seen += current == section
            if key is None and current == section and index in (None, seen):
                return n
            continue
        if (
            key is not None
            and current == section
            and index in (None, seen)
            and re.match(rf"^\s*{re.escape(key)}\s*=", line)
        ):
            return n
    parent, dot, name = section.rpartition(".")
    return _line_of(text, parent, name) if dot else None


def _table_name(section: str, index: int | None) -> str:
    return f"[[{section}]]" if index is not None else f"[{section}]"


def _explain(exc: msgspec.ValidationError, text: str, path: Path, within: str = "") -> ProjectError:
    """`exc` as an error naming the line; `within`: the table (`topics.news`) converted on
    its own, which the path in `exc` starts from."""
    message = str(exc)
    m = re.search(r"at `\$([^`]*)`", message)
    where_in = m.group(1).lstrip(".") if m else ""
    steps = re.findall(r"\.?(\w+)|\[(\d+)\]", where_in)  # (name, "") or ("", index)
    names = [name for name, _ in steps if name]
    # The deepest table the path goes through (`delivery.shaping`), then the key inside it;
    # an index right after the table's name says which of an array of tables.
    depth = max(d for d in range(len(names) + 1) if ".".join(names[:d]) in _KNOWN_KEYS)
    if within:
        depth = 0  # a table of its own holds no tables
    section = within or ".".join(names[:depth])
    after = [n for n, (name, _) in enumerate(steps) if name][depth - 1] + 1 if depth else 0
    index = int(steps[after][1]) if after < len(steps) and steps[after][1] else None
    unknown = re.match(r"Object contains unknown field `(\w+)`", message)
    missing = re.match(r"Object missing required field `(\w+)`", message)
    if unknown:
        key = unknown.group(1)
        kind = _NAMED_TABLES[within.partition(".")[0]] if within else _KNOWN_KEYS[section]
        options = sorted(f.encode_name for f in msgspec.structs.fields(kind))
        close = difflib.get_close_matches(key, options, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(options)})"
        where = f"{_table_name(section, index)} " if section else ""
        line = _line_of(text, section, key, index) if section else _line_of(text, key, None)
        return ProjectError(path, f"unknown key {where}{key!r}{hint}", line)
    if missing:
        key = missing.group(1)
        where = _table_name(section, index) if section else "the top level"
        line = _line_of(text, section, None, index) if section else None
        return ProjectError(path, f"{where} needs {key!r}", line)
    key = names[depth] if len(names) > depth else None
    detail = message.split(" - at ")[0]
    shown = f"[{within}] {where_in}" if within else where_in
    return ProjectError(path, f"{shown}: {detail}", _line_of(text, section, key, index))


def _shaping(config: ProjectConfig, path: Path, text: str) -> Shaping:
    def error(index: int, key: str | None, why: object) -> ProjectError:
        line = _line_of(text, "delivery.shaping", key, index)
        where = f"[[delivery.shaping]] {key}" if key else "[[delivery.shaping]]"
        return ProjectError(path, f"{where}: {why}", line)

    rules: list[ShapingRule] = []
    for index, section in enumerate(config.delivery.shaping):
        if section.domain and section.mx:
            raise error(index, "mx", "give domain or mx, not both")
        if not section.domain and not section.mx:
            raise error(index, None, "give the domain (or '*') or the mx suffix it limits")
        key = "domain" if section.domain else "mx"
        try:
            domain = rule_domain(section.domain) if section.domain else ""
            mx = mx_suffix(section.mx) if section.mx else ""
        except ValueError as exc:
            raise error(index, key, exc) from exc
        try:
            rate = parse_rate(section.rate) if section.rate else None
        except ValueError as exc:
            raise error(index, "rate", exc) from exc
        for limit in ("connections", "messages_per_connection"):
            value = getattr(section, limit)
            if value is not None and value < 1:
                raise error(index, limit, f"must be at least 1, not {value}")
        if rate is None and section.connections is None and section.messages_per_connection is None:
            raise error(index, None, "give a rate, connections or messages_per_connection")
        first = next(
            (n for n, rule in enumerate(rules) if (rule.domain, rule.mx) == (domain, mx)), None
        )
        if first is not None:
            line = _line_of(text, "delivery.shaping", key, first)
            raise error(index, key, f"{domain or mx!r} has a rule already (line {line}); keep one")
        rules.append(
            ShapingRule(
                domain,
                rate,
                mx=mx,
                connections=section.connections,
                messages_per_connection=section.messages_per_connection,
            )
        )
    builtin = config.delivery.builtin_shaping
    if builtin or (builtin is None and config.smtp.route == "mx"):
        return Shaping(with_builtin_rules(rules))
    return Shaping(rules)


def _limits(config: ProjectConfig, path: Path, text: str) -> SendLimits:
    section = config.delivery.limits

    def error(key: str, why: object) -> ProjectError:
        line = _line_of(text, "delivery.limits", key)
        return ProjectError(path, f"[delivery.limits] {key}: {why}", line)

    try:
        rate = parse_rate(section.rate) if section.rate else None
    except ValueError as exc:
        raise error("rate", exc) from exc
    quotas = []
    for key, period in (("daily", DAY), ("hourly", HOUR)):
        limit = getattr(section, key)
        if limit is None:
            continue
        if limit < 1:
            raise error(key, f"a quota is a number of sends, at least 1, not {limit}")
        quotas.append(Quota(key, limit, period))
    return SendLimits(rate, tuple(quotas))


def _nameservers(config: ProjectConfig, path: Path, text: str) -> tuple[tuple[str, int], ...]:
    try:
        return tuple(nameserver(written) for written in config.delivery.nameservers)
    except ValueError as exc:
        line = _line_of(text, "delivery", "nameservers")
        raise ProjectError(path, f"[delivery] nameservers: {exc}", line) from exc


def load_config(project_dir: Path) -> tuple[ProjectConfig, Durations, Shaping]:
    path = project_dir / CONFIG_FILE
    if not path.is_file():
        raise ProjectError(path, f"no {CONFIG_FILE} here: is {project_dir} a mailpulse project?")
    text = path.read_text(encoding="utf-8")
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ProjectError(path, f"not valid TOML: {exc}", int(m.group(1)) if m else None) from exc
    try:
        config = msgspec.convert(raw, ProjectConfig)
    except msgspec.ValidationError as exc:
        raise _explain(exc, text, path) from exc

    smtp = config.smtp
    if smtp.username is not None and smtp.starttls is False and not smtp.implicit_tls:
        raise ProjectError(
            path,
            "[smtp] username: AUTH would send the password in clear; "
            "set starttls = true (or implicit_tls = true)",
            _line_of(text, "smtp", "starttls"),
        )
    if smtp.route not in ("relay", "mx"):
        raise ProjectError(
            path,
            f"[smtp] route: {smtp.route!r} is not a route: write 'relay' (through host) or "
            "'mx' (to each recipient domain's mail hosts)",
            _line_of(text, "smtp", "route"),
        )
    for key in ("max_connections", "max_messages_per_connection"):
        if getattr(smtp, key) < 1:
            raise ProjectError(
                path, f"[smtp] {key} must be at least 1", _line_of(text, "smtp", key)
            )
    couriers = config.delivery.couriers
    if couriers != "auto" and couriers < 1:
        raise ProjectError(
            path,
            f'[delivery] couriers must be at least 1 (or "auto", one per core), not {couriers}',
            _line_of(text, "delivery", "couriers"),
        )

    def duration(value: str, section: str, key: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ProjectError(
                path, f"[{section}] {key}: {exc}", _line_of(text, section, key)
            ) from exc

    durations = Durations(
        retry_schedule=tuple(
            duration(v, "delivery", "retry_schedule") for v in config.delivery.retry_schedule
        ),
        max_age=duration(config.delivery.max_age, "delivery", "max_age"),
        dedup_window=duration(config.ingest.dedup_window, "ingest", "dedup_window"),
        smtp_timeout=duration(config.smtp.timeout, "smtp", "timeout"),
        event_retention=duration(config.privacy.event_retention, "privacy", "event_retention"),
    )
    if not durations.event_retention:
        raise ProjectError(
            path,
            "[privacy] event_retention: events must be kept a while (say '400d')",
            _line_of(text, "privacy", "event_retention"),
        )
    return config, durations, _shaping(config, path, text)


@dataclass(frozen=True)
class Project:
    """A loaded, checked project: everything the pipeline needs, compiled once."""

    root: Path
    config: ProjectConfig
    durations: Durations
    shaping: Shaping
    nameservers: tuple[tuple[str, int], ...]
    limits: SendLimits
    templates: TemplateLibrary
    journeys: dict[str, JourneyDefinition]
    segments: dict[str, Segment]
    topics: dict[str, Topic]
    send_policy: SendPolicy
    dkim_private_key: bytes | None
    tracking: Tracking
    machines: MachineSettings
    # The conversion events ([conversions]) attributed to messages; also what an A/B test
    # counts as one when it names none.
    conversion: Conversion | None
    public_limit: PublicLimit
    breaker: BreakerSettings
    webhooks: WebhookSettings
    # alerts.yaml over the built-in rules (see mailpulse.observe.alerts_rules)
    alerts: AlertRules
    # bounce_rules.toml before the built-in bounce rules (see mailpulse.feedback.rules)
    bounce_rules: BounceRules

    def segment_set(self) -> SegmentSet:
        """What the fold keeps current: the project's segments and its journeys' branch
        conditions."""
        branches = branch_segments(self.journeys.values())
        return SegmentSet([*self.segments.values(), *branches])

    @property
    def sender_domain(self) -> str:
        from email.utils import parseaddr

        addr = parseaddr(self.config.sender.from_)[1]
        return addr.rpartition("@")[2] or "localhost"

    @property
    def couriers(self) -> int:
        """How many courier processes to run: as configured, or one per core this process
        may use."""
        configured = self.config.delivery.couriers
        if configured != "auto":
            return configured
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        return max(1, min(cores or os.cpu_count() or 1, MAX_AUTO_COURIERS))


def _load_dkim_key(project_dir: Path, config: ProjectConfig, text: str) -> bytes | None:
    if config.dkim is None:
        return None
    path = project_dir / config.dkim.private_key
    config_path = project_dir / CONFIG_FILE
    if not path.is_file():
        raise ProjectError(
            config_path,
            f"[dkim] private_key: no file at {path} (create one with `mailpulse dkim keygen`)",
            _line_of(text, "dkim", "private_key"),
        )
    pem = path.read_bytes()
    try:
        DkimSigner(config.dkim.domain, config.dkim.selector, pem)
    except ValueError as exc:
        raise ProjectError(
            config_path, f"[dkim] private_key {path}: {exc}", _line_of(text, "dkim", "private_key")
        ) from exc
    return pem


def load_project(project_dir: Path) -> Project:
    """Load and check a whole project; the first problem raises ProjectError."""
    project_dir = project_dir.resolve()
    config, durations, shaping = load_config(project_dir)
    text = (project_dir / CONFIG_FILE).read_text(encoding="utf-8")
    _check_sender(config, project_dir / CONFIG_FILE, text)
    topics = _topics(config, project_dir / CONFIG_FILE, text)
    send_policy = _send_policy(config, project_dir / CONFIG_FILE, text, topics)
    nameservers = _nameservers(config, project_dir / CONFIG_FILE, text)
    limits = _limits(config, project_dir / CONFIG_FILE, text)
    templates = TemplateLibrary.load(project_dir / "templates", BUILTIN_TEMPLATES)
    segments = load_segments(project_dir / "segments")
    journeys = load_journeys(
        project_dir / "journeys", templates.names(), [seg.id for seg in segments], topics
    )
    _check_against_plan(project_dir)
    breaker = _breaker(config, project_dir / CONFIG_FILE, text)
    return Project(
        root=project_dir,
        config=config,
        durations=durations,
        shaping=shaping,
        nameservers=nameservers,
        limits=limits,
        templates=templates,
        journeys={j.id: j for j in journeys},
        segments={seg.id: seg for seg in segments},
        topics=topics,
        send_policy=send_policy,
        dkim_private_key=_load_dkim_key(project_dir, config, text),
        **_tracking(config, project_dir, text),
        public_limit=_public_limit(config, project_dir / CONFIG_FILE, text),
        breaker=breaker,
        webhooks=_webhooks(config, project_dir / CONFIG_FILE, text),
        alerts=load_alert_rules(project_dir, breaker),
        bounce_rules=project_rules(project_dir),
    )


# The breaker's window: at least an hour (its counts are kept per ten minutes, and a rate over
# less says little: the providers judge a day), at most 30 days.
_BREAKER_WINDOW = (3600.0, 30 * 86400.0)


def _breaker(config: ProjectConfig, path: Path, text: str) -> BreakerSettings:
    section = config.breaker

    def fail(key: str, why: object) -> NoReturn:
        raise ProjectError(path, f"[breaker] {key}: {why}", _line_of(text, "breaker", key))

    shares = {}
    for key in ("alert", "pause"):
        try:
            shares[key] = parse_percent(getattr(section, key))
        except ValueError as exc:
            fail(key, exc)
    if shares["alert"] > shares["pause"]:
        fail("alert", f"{section.alert} is above pause ({section.pause}): alert at the lower rate")
    try:
        window = parse_duration(section.window)
    except ValueError as exc:
        fail("window", exc)
    if not _BREAKER_WINDOW[0] <= window <= _BREAKER_WINDOW[1]:
        fail("window", f"{section.window!r}: give from '1h' to '30d' (the providers judge '24h')")
    if section.min_sends < 1:
        fail("min_sends", f"a number of sends, at least 1, not {section.min_sends}")
    return BreakerSettings(
        alert=shares["alert"], pause=shares["pause"], window=window, min_sends=section.min_sends
    )


def _webhooks(config: ProjectConfig, path: Path, text: str) -> WebhookSettings:
    section = config.webhooks

    def fail(provider: str, key: str | None, why: object) -> NoReturn:
        table = f"webhooks.{provider}"
        where = f"[{table}] {key}" if key else f"[{table}]"
        raise ProjectError(path, f"{where}: {why}", _line_of(text, table, key))

    def tolerance(provider: str, written: str) -> float:
        try:
            seconds = parse_duration(written)
        except ValueError as exc:
            fail(provider, "tolerance", exc)
        low, high = TOLERANCE_RANGE
        if not low <= seconds <= high:
            fail(provider, "tolerance", f"{written!r}: give from '30s' to '1h' (say '5m')")
        return seconds

    ses = sendgrid = mailgun = postmark = None
    if section.ses is not None:
        if not section.ses.topics:
            fail("ses", "topics", "name the SNS topics SES publishes to, by ARN")
        for arn in section.ses.topics:
            if (problem := topic_problem(arn)) is not None:
                fail("ses", "topics", problem)
        ses = SesSettings(frozenset(section.ses.topics))
    if section.sendgrid is not None:
        try:
            key = sendgrid_public_key(section.sendgrid.public_key)
        except ValueError as exc:
            fail("sendgrid", "public_key", exc)
        sendgrid = SendGridSettings(key, tolerance("sendgrid", section.sendgrid.tolerance))
    if section.mailgun is not None:
        signing_key = section.mailgun.signing_key.strip()
        if not signing_key:
            fail("mailgun", "signing_key", "give Mailgun's HTTP webhook signing key")
        mailgun = MailgunSettings(
            signing_key.encode("utf-8"), tolerance("mailgun", section.mailgun.tolerance)
        )
    if section.postmark is not None:
        written = section.postmark
        if not written.username or ":" in written.username:
            fail("postmark", "username", "give a user name, without ':'")
        if len(written.password) < MIN_PASSWORD:
            fail(
                "postmark",
                "password",
                f"at least {MIN_PASSWORD} characters: it is all that proves a request Postmark's",
            )
        postmark = PostmarkSettings(written.username, written.password)
    return WebhookSettings(ses=ses, sendgrid=sendgrid, mailgun=mailgun, postmark=postmark)


def _public_limit(config: ProjectConfig, path: Path, text: str) -> PublicLimit:
    try:
        rate = parse_rate(config.public.rate)
    except ValueError as exc:
        raise ProjectError(path, f"[public] rate: {exc}", _line_of(text, "public", "rate")) from exc
    return PublicLimit(rate, config.public.burst)


def _check_against_plan(project_dir: Path) -> None:
    """With a tracking plan (`events.yaml`), the filters of every journey and segment."""
    plan = load_plan(project_dir)
    if plan is None:
        return
    for folder in ("journeys", "segments"):
        for path in sorted((project_dir / folder).glob("*.y*ml")):
            plan.check_file(path, path.read_text(encoding="utf-8"))


_TIME_RANGE = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")
_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")


def _topics(config: ProjectConfig, path: Path, text: str) -> dict[str, Topic]:
    topics = {}
    for topic_id, table in config.topics.items():
        where = f"topics.{topic_id}"
        if not TOPIC_ID.fullmatch(topic_id):
            # A quoted name (`[topics."big offers"]`): found by itself, not as a section.
            line = next((n for n, ln in enumerate(text.splitlines(), 1) if topic_id in ln), None)
            raise ProjectError(
                path,
                f"[topics] {topic_id!r}: a topic id is 1 to 64 letters, digits, '_', '-' or '.'",
                line,
            )
        try:
            section = msgspec.convert(table, TopicSection)
        except msgspec.ValidationError as exc:
            raise _explain(exc, text, path, within=where) from exc
        if section.double_opt_in and section.opt_in is False:
            raise ProjectError(
                path,
                f"[{where}] opt_in: a double opt-in topic is opt-in; remove opt_in = false",
                _line_of(text, where, "opt_in"),
            )
        topics[topic_id] = Topic(
            id=topic_id,
            name=section.name.strip() or topic_id,
            description=section.description.strip(),
            opt_in=bool(section.opt_in) or section.double_opt_in,
            double_opt_in=section.double_opt_in,
        )
    return topics


def _send_policy(
    config: ProjectConfig, path: Path, text: str, topics: dict[str, Topic]
) -> SendPolicy:
    def fail(section: str, key: str, why: str) -> NoReturn:
        raise ProjectError(path, f"[{section}] {key}: {why}", _line_of(text, section, key))

    timezone = config.project.timezone
    if zone(timezone) is None:
        fail(
            "project",
            "timezone",
            f"{timezone!r} is not a time zone: write an IANA name such as 'Europe/Berlin'",
        )
    quiet, cap = None, None
    if config.policy.quiet_hours and config.policy.send_window:
        fail("policy", "send_window", "give quiet_hours or send_window, not both")
    for key, example in (("quiet_hours", "21:00-08:00"), ("send_window", "09:00-20:00")):
        written = getattr(config.policy, key)
        if not written:
            continue
        m = _TIME_RANGE.match(written)
        if m is None or m.group(1, 2) == m.group(3, 4):
            fail("policy", key, f"write the local times they start and end, e.g. '{example}'")
        start, end = time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))
        # A send window is the quiet hours outside it.
        quiet = QuietHours(start, end) if key == "quiet_hours" else QuietHours(end, start)
    if config.policy.frequency_cap:
        cap = _cap(config.policy.frequency_cap)
        if cap is None:
            fail("policy", "frequency_cap", "write how many per how long, e.g. '3/1d'")
    topic_caps: dict[str, FrequencyCap] = {}
    for topic, written in config.policy.topic_caps.items():
        if topic not in topics:
            fail("policy", "topic_caps", f"{topic}: {unknown_topic(topic, topics)}")
        topic_cap = _cap(written)
        if topic_cap is None:
            fail("policy", "topic_caps", f"{topic}: write how many per how long, e.g. '1/1d'")
        topic_caps[topic] = topic_cap
    soft_bounce_limit = None
    if config.policy.soft_bounce_limit:
        soft_bounce_limit = _cap(config.policy.soft_bounce_limit)
        if soft_bounce_limit is None:
            fail("policy", "soft_bounce_limit", "write how many per how long, e.g. '5/7d'")
    return SendPolicy(
        quiet_hours=quiet,
        frequency_cap=cap,
        default_timezone=timezone,
        topic_caps=topic_caps,
        topics=topics,
        soft_bounce_limit=soft_bounce_limit,
    )


def _cap(text: str) -> FrequencyCap | None:
    m = _CAP.match(text)
    try:
        period = parse_duration(m[2]) if m else 0.0
    except ValueError:
        period = 0.0
    if m is None or int(m[1]) < 1 or period <= 0:
        return None
    return FrequencyCap(int(m[1]), period)


def _check_sender(config: ProjectConfig, path: Path, text: str) -> None:
    from email.utils import parseaddr

    from email_validator import EmailNotValidError, validate_email

    for key, value in (("from", config.sender.from_), ("return_path", config.sender.return_path)):
        if not value:
            continue
        addr = parseaddr(value)[1]
        try:
            validate_email(addr, check_deliverability=False, test_environment=True)
        except EmailNotValidError as exc:
            raise ProjectError(
                path,
                f"[sender] {key}: {value!r} is not an address: {exc}",
                _line_of(text, "sender", key),
            ) from exc
    # Without one, the return path is bounces@ the From domain: short enough.
    return_path = config.sender.return_path
    if return_path and (problem := prefix_problem(return_path)) is not None:
        line = _line_of(text, "sender", "return_path")
        raise ProjectError(path, f"[sender] return_path: {problem}", line)


def _tracking(config: ProjectConfig, project_dir: Path, text: str) -> dict[str, Any]:
    """`[tracking]` and `[conversions]`, checked: the Project fields they make."""
    path = project_dir / CONFIG_FILE

    def fail(section: str, key: str, why: str) -> NoReturn:
        raise ProjectError(path, f"[{section}] {key}: {why}", _line_of(text, section, key))

    def duration(section: str, key: str, written: str) -> float:
        try:
            return parse_duration(written)
        except ValueError as exc:
            fail(section, key, str(exc))

    section = config.tracking
    url = config.project.url.rstrip("/")
    base = section.domain.strip().rstrip("/") or url
    if not is_web_url(base) or any(c in base for c in "?# "):
        key, written = ("domain", section.domain) if section.domain.strip() else ("url", url)
        fail(
            "tracking" if key == "domain" else "project",
            key,
            f"{written!r} is not where tracked links can point: write an http(s) URL without "
            "a query, e.g. 'https://t.shop.example'",
        )
    ranges = None
    if section.apple_proxy_ranges:
        ranges = project_dir / section.apple_proxy_ranges
        if not ranges.is_file():
            fail("tracking", "apple_proxy_ranges", f"no file at {ranges}")
    conversion = None
    wanted = config.conversions
    if wanted.event.strip():
        within = duration("conversions", "within", wanted.within)
        if within <= 0:
            fail("conversions", "within", "a conversion window is longer than 0, e.g. '5d'")
        if not wanted.revenue.strip():
            fail("conversions", "revenue", "name the property holding the amount, e.g. 'revenue'")
        conversion = Conversion(
            event=wanted.event.strip(), within=within, revenue=wanted.revenue.strip()
        )
    return {
        "tracking": Tracking(
            base=base,
            opens=section.opens,
            clicks=section.clicks,
            transactional=section.transactional,
            own=tuple(dict.fromkeys((base, url))),
        ),
        "machines": MachineSettings(
            scanner_window=duration("tracking", "scanner_window", section.scanner_window),
            apple_ranges=ranges,
        ),
        "conversion": conversion,
    }
