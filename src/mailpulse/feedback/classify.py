"""What a returned message means: a bounce (hard or soft, per recipient), a complaint, an
automatic reply, or nothing mailpulse acts on.

The facts come from `report.parse_report`; the judgement from `rules.BounceRules` (data).
The inbound listener and `mailpulse bounce classify` both call `classify`.
"""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec

from mailpulse.feedback.mailed import legacy_complaint, ses_notification
from mailpulse.feedback.report import ENHANCED_STATUS, RecipientReport, Report, parse_report
from mailpulse.feedback.rules import HARD, SOFT, BounceRules, builtin_rules
from mailpulse.feedback.webhooks.model import Kind as EspKind


class Kind(StrEnum):
    BOUNCE = "bounce"  # some recipient failed or is delayed
    COMPLAINT = "complaint"  # an RFC 5965 feedback report
    AUTO_REPLY = "auto-reply"  # RFC 3834 and its kin: never a bounce
    DELIVERED = "delivered"  # a report of success (Action delivered, relayed, expanded)
    UNKNOWN = "unknown"  # none of these: a person's reply, or something unreadable


class Decision(StrEnum):
    HARD = HARD
    SOFT = SOFT
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto-reply"
    NONE = "none"  # nothing to act on for this recipient


FAILED, DELAYED = "failed", "delayed"
_SUCCESS_ACTIONS = frozenset(("delivered", "relayed", "expanded"))

_REPLY_STATUS = re.compile(
    r"(?<![\w.:/#-])[245][0-5]\d[ \-]+'?([245])\.([0-7])\.(\d{1,3})(?![\d]|\.\d)"
)
# An SMTP reply code in a server's words, most telling first: right before an enhanced status
# (`550 5.1.1`, `550-5.1.1`), after a word that introduces a reply (`said: 550`), at the start
# of a line; else any 4xx/5xx standing alone.
_REPLY_CODES = (
    re.compile(r"(?<![\w.:/#-])([245][0-5]\d)[ \-]+'?[245]\.\d{1,3}\.\d{1,3}"),
    re.compile(
        r"(?:said|reply|replied|returned|response|responded|error|code|answer)\W{0,4}"
        r"([245][0-5]\d)(?![\w.:])",
        re.IGNORECASE,
    ),
    re.compile(r"^\W{0,3}([245][0-5]\d)(?:[ \-]|$)", re.MULTILINE),
    re.compile(r"(?<![\w.:/#\[-])([45][0-5]\d)(?=[ \-])"),
)


class StatusSource(StrEnum):
    """Where a recipient's `status` was read. Only `implied` is mailpulse's own: the bounce
    stated no RFC 3463 code, and the status is the category's (its rule's `implies`), in the
    class the failure was (4 transient, 5 permanent)."""

    REPLY = "reply"  # the remote server's reply (`550 5.1.1 ...`)
    DSN = "dsn"  # the report's Status field (or an ESP's status field)
    TEXT = "text"  # a code the diagnostic mentions elsewhere
    IMPLIED = "implied"
    NONE = ""


class RecipientResult(msgspec.Struct, kw_only=True):
    address: str
    action: str
    status: str
    status_source: str = StatusSource.NONE
    smtp_code: int | None
    reason: str
    decision: str
    diagnostic: str = ""
    original_address: str = ""
    remote_mta: str = ""


class Classification(msgspec.Struct, kw_only=True):
    kind: str
    source: str  # "dsn", "text" (a bounce in words), "arf", or "" when neither
    recipients: list[RecipientResult] = msgspec.field(default_factory=list)
    feedback_type: str = ""
    user_agent: str = ""
    original_message_id: str = ""
    original_key: str = ""
    # The returned message's header fields (lower-cased names): what finds the send of a
    # report that lost its return path (feedback.returned).
    original_headers: dict[str, str] = msgspec.field(default_factory=dict)
    subject: str = ""


def classify_bytes(data: bytes, rules: BounceRules | None = None) -> Classification:
    return classify(parse_report(data), rules)


def classify(report: Report, rules: BounceRules | None = None) -> Classification:
    rules = rules or builtin_rules()
    base = Classification(
        kind=Kind.UNKNOWN,
        source="",
        original_message_id=report.original_message_id,
        original_key=report.original_key,
        original_headers=report.original_headers,
        subject=report.subject,
    )
    if report.shape == "feedback-report" and report.feedback is not None:
        return _complaint(report, base)
    if report.shape == "delivery-status":
        base.source = "dsn"
        # The report's words are about each recipient only when there is one; the session
        # transcript in them tells at which stage every recipient was refused.
        words = report.text if len(report.recipients) <= 1 else ""
        base.recipients = [
            _recipient(
                r.final_recipient,
                r.original_recipient,
                r.action,
                r.status,
                r.diagnostic,
                words,
                r.remote_mta,
                rules,
                session=report.text,
                diagnostic_type=r.diagnostic_type,
            )
            for r in report.recipients
        ]
        if not base.recipients:  # a report with no recipient group: read its words
            base.recipients = [_recipient("", "", FAILED, "", "", words, "", rules)]
        failing = any(r.decision != Decision.NONE for r in base.recipients)
        base.kind = Kind.BOUNCE if failing else Kind.DELIVERED
        return base
    if (mailed := _mailed(report, base, rules)) is not None:
        return mailed
    if report.failed_recipients or rules.looks_bounced(report.sender, report.subject):
        base.kind, base.source = Kind.BOUNCE, "text"
        action = DELAYED if rules.only_delayed(report.subject, report.text) else FAILED
        found = report.recipients or [RecipientReport(diagnostic=report.text)]
        base.recipients = [
            _recipient(r.final_recipient, "", action, "", r.diagnostic, "", "", rules)
            for r in found
        ]
        return base
    if rules.auto_reply(report.headers, report.subject):
        base.kind = Kind.AUTO_REPLY
    return base


def classify_reply(
    address: str,
    status: str,
    diagnostic: str,
    *,
    delayed: bool = False,
    transient: bool = False,
    remote_mta: str = "",
    rules: BounceRules | None = None,
) -> RecipientResult:
    """One recipient's failure as a sender's service reports it (an ESP's webhook): the
    status and the server's words, judged as a DSN's recipient is. `delayed`: it is still
    being tried. `transient`: the service calls the failure temporary; it is never hard then
    (the address may work another time). The service's "permanent" is no such evidence: a
    policy block it labels so is soft by its status and words, as it would be in a DSN."""
    found = _recipient(
        address,
        "",
        DELAYED if delayed else FAILED,
        status,
        diagnostic,
        "",
        remote_mta,
        rules or builtin_rules(),
    )
    if transient and found.decision == Decision.HARD:
        found.decision = Decision.SOFT
    return found


def _mailed(report: Report, base: Classification, rules: BounceRules) -> Classification | None:
    """A report in a provider's own mailed format (see mailed.py), or None."""
    legacy = legacy_complaint(report)
    if legacy is not None:
        feedback_type, complainers = legacy
        agent = report.headers.get("user-agent") or report.headers.get("x-mailer", "")
        return _complained(base, "mail", feedback_type, agent, complainers)
    events = ses_notification(report)
    if events is None:
        return None
    base.source = "ses"
    # The message's own headers, as SES echoes them.
    base.original_message_id = base.original_message_id or events[0].message_id
    base.original_key = base.original_key or events[0].key
    base.original_headers = {
        "message-id": base.original_message_id,
        "x-mailpulse-key": base.original_key,
    }
    complaints = [e for e in events if e.kind == EspKind.COMPLAINT]
    if complaints:
        first = complaints[0]
        addresses = [e.recipient for e in complaints]
        return _complained(base, "ses", first.feedback_type, first.user_agent, addresses)
    base.recipients = [
        classify_reply(
            e.recipient,
            e.status,
            e.diagnostic,
            delayed=e.kind == EspKind.DEFERRED,
            transient=e.transient,
            remote_mta=e.remote_mta,
            rules=rules,
        )
        for e in events
        if e.kind in (EspKind.BOUNCE, EspKind.DEFERRED, EspKind.DELIVERED)
    ]
    failing = any(r.decision != Decision.NONE for r in base.recipients)
    base.kind = Kind.BOUNCE if failing else Kind.DELIVERED
    return base


def _complaint(report: Report, base: Classification) -> Classification:
    feedback = report.feedback
    assert feedback is not None
    return _complained(
        base,
        "arf",
        feedback.feedback_type,
        feedback.user_agent,
        feedback.original_rcpt_to,
    )


def _complained(
    base: Classification,
    source: str,
    feedback_type: str,
    user_agent: str,
    addresses: list[str],
) -> Classification:
    base.kind, base.source = Kind.COMPLAINT, source
    base.feedback_type = feedback_type or "other"
    base.user_agent = user_agent
    addresses = addresses or [""]
    base.recipients = [
        RecipientResult(
            address=address,
            action="",
            status="",
            smtp_code=None,
            reason="feedback",
            decision=Decision.COMPLAINT,
        )
        for address in addresses
    ]
    return base


def _recipient(
    address: str,
    original: str,
    action: str,
    status: str,
    diagnostic: str,
    words: str,
    remote_mta: str,
    rules: BounceRules,
    *,
    session: str = "",
    diagnostic_type: str = "",
) -> RecipientResult:
    """One recipient judged: `diagnostic` is the server's reply about it, `words` the
    report's own text around it (read when the reply says too little), `session` the
    report's text where a transcript says at which stage the server refused."""
    status, source = _status(status, diagnostic)
    code = _reply_code(diagnostic)
    if not action:
        action = DELAYED if status.startswith("4") else FAILED
    result = RecipientResult(
        address=address,
        original_address=original,
        action=action,
        status=status,
        status_source=source,
        smtp_code=code,
        reason="delivered",
        decision=Decision.NONE,
        diagnostic=diagnostic,
        remote_mta=remote_mta,
    )
    if action in _SUCCESS_ACTIONS or status.startswith("2"):
        return result
    # The remote server's own reply outweighs the reporting MTA's gloss around it
    # ("5.1.0 Unknown address error 550 5.7.1 Access denied" is a policy refusal).
    # The diagnostic is matched with its type (RFC 3464 §2.3.6: `x-unix; ...` is a local
    # program's output, not the remote server's).
    typed = f"{diagnostic_type}; {diagnostic}" if diagnostic_type else diagnostic
    reason = rules.reason_for(status, _remote_reply(diagnostic), typed, words)
    transient = (
        action == DELAYED
        or status.startswith("4")
        or (code is not None and code < 500)
        or rules.said_transient(diagnostic, words)
    )
    klass = "4" if transient else "5"
    stage = rules.stage(diagnostic, words, session)
    if stage is not None and (reason is None or reason.decision == HARD):
        # A status that itself says the address is bad (5.1.1) still decides at a stage
        # that yields to it (see `[[stage]]` in the rules file); a provider's reply that it
        # gives only for an address it does not have decides at any (`any_stage`).
        by_status = rules.reason_for(status) if status.startswith("5") else None
        stated = by_status is not None and by_status.decision == HARD
        said = reason is not None and reason.decides_at_any_stage(diagnostic, words)
        if not (stage.yields_to_status and stated) and not said:
            reason = rules.named(stage.reason)
    if not status:
        # RFC 3463 §3.1: X.0.0 when only the class of the failure is known.
        implied = reason.implies if reason is not None and reason.implies else "5.0.0"
        result.status = _in_class(implied, klass)
        result.status_source = StatusSource.IMPLIED
    result.reason = reason.name if reason is not None else "undefined"
    result.decision = reason.decision if reason is not None else SOFT
    if result.decision == HARD and action == DELAYED:
        result.decision = SOFT  # still tried: the address may work another time
    return result


# The remote server's reply inside a reporting MTA's diagnostic: from its reply code on.
_REMOTE_REPLY = re.compile(r"(?<![\w.:/#-])[245][0-5]\d[ \-]+'?[245]\.\d{1,3}\.\d{1,3}.*", re.S)


def _remote_reply(diagnostic: str) -> str:
    """The part of `diagnostic` that is a remote server's reply after some words of the
    reporting MTA's own, or "" when it is all one."""
    found = _REMOTE_REPLY.search(diagnostic)
    return found.group(0) if found and found.start() > 0 else ""


def _status(field: str, diagnostic: str) -> tuple[str, str]:
    """The enhanced status to report: the remote server's own, when its reply carries one
    after its reply code (`550 5.7.1 ...`: the Status field is the reporting MTA's reading of
    it); else the Status field; else any status the reply mentions. A generic X.0.0 gives way
    to a specific one."""
    replied = _failing(_REPLY_STATUS, diagnostic)
    anywhere = _failing(ENHANCED_STATUS, diagnostic)
    candidates = [
        (".".join(replied.groups()) if replied else "", StatusSource.REPLY),
        (field, StatusSource.DSN),
        (".".join(anywhere.groups()) if anywhere else "", StatusSource.TEXT),
    ]
    found = [c for c in candidates if c[0]]
    specific = [c for c in found if not c[0].endswith(".0.0")]
    status, source = (specific or found or [("", StatusSource.NONE)])[0]
    if status[1:] == ".4.7":
        # RFC 3463 X.4.7: "the code for the actual problem found when delivery was attempted
        # should be returned rather than this code", when the words carry it.
        actual = [m for m in _REPLY_STATUS.finditer(diagnostic) if m.group(2, 3) != ("4", "7")]
        if actual:
            return ".".join(actual[-1].groups()), str(StatusSource.REPLY)
    return status, str(source)


def _in_class(status: str, klass: str) -> str:
    return status if status.startswith("2") else klass + status[1:]


def _reply_code(text: str) -> int | None:
    for pattern in _REPLY_CODES:
        found = _failing(pattern, text)
        if found:
            return int(found.group(1))
    return None


def _failing(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match of `pattern` that is a failure (4xx, 5xx; its first group starts
    the code), else the first: a transcript's 250s before the refusal are not its news."""
    first = None
    for found in pattern.finditer(text):
        if found.group(1)[0] in "45":
            return found
        first = first or found
    return first
