"""What a returned message says, read from its MIME structure: no judgement here.

Three shapes carry the facts:

- an RFC 3464 delivery status notification (`multipart/report; report-type=delivery-status`):
  per-recipient fields in a `message/delivery-status` part (also `message/global-delivery-status`,
  RFC 6533, and the `text/delivery-status` some servers write);
- an RFC 5965 feedback report (`multipart/report; report-type=feedback-report`);
- anything else, which may still be a bounce in words (qmail, old Sendmail and Exim, Gmail):
  its human-readable text and the `X-Failed-Recipients` header are kept for the classifier.

Parsing never raises for what a message contains: the stdlib parser with the compat32 policy
records defects instead of failing, and every header is read through `_header`, which turns
whatever it finds into text.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import quopri
import re
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from email.policy import compat32

import msgspec

# Human-readable text scanned for diagnostics: a bounce says what happened near its top,
# and a 10 MB message must not cost a regular-expression pass over all of it.
MAX_TEXT = 64 * 1024
MAX_FIELD = 2000  # characters kept of one field (a diagnostic, an address)
MAX_RECIPIENTS = 1000  # per-recipient groups read from one report
MAX_NAMES = 200  # distinct header names kept of the message itself
_MAX_DEPTH = 8  # MIME nesting followed: a bounce of a bounce of a bounce is deep enough

DELIVERY_STATUS_TYPES = frozenset(
    ("message/delivery-status", "message/global-delivery-status", "text/delivery-status")
)
FEEDBACK_TYPES = frozenset(("message/feedback-report",))
ORIGINAL_TYPES = frozenset(
    ("message/rfc822", "message/global", "text/rfc822-headers", "text/rfc822-header")
)
# Where the bounce's own words end and the returned message begins, as the common MTAs write it
# (qmail, Exim, Sendmail, Gmail, Exchange, Postfix's plain-text forms).
_ORIGINAL_MARKERS = re.compile(
    r"^\s*(?:"
    r"-+\s*below this line is a copy of the message"
    r"|-+\s*this is a copy of the message"
    r"|-+\s*original message\s*-*"
    r"|-+\s*the header of the original message"
    r"|-+\s*returned message\s*-*"
    r"|-+\s*original message (?:follows|headers)"
    r"|original message headers:"
    r"|-+\s*(?:un)?sent message follows\s*-*"
    r"|content-type:\s*message/rfc822"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.([0-7])\.(\d{1,3})(?![\d]|\.\d)")


class RecipientReport(msgspec.Struct, kw_only=True):
    """One recipient's per-recipient fields (RFC 3464 §2.3), as written; or, in a bounce
    without them, the recipient named in its text and the words about it."""

    final_recipient: str = ""
    original_recipient: str = ""
    action: str = ""
    status: str = ""  # RFC 3463 X.Y.Z, only when the field held one
    diagnostic: str = ""  # Diagnostic-Code without its type, unfolded
    diagnostic_type: str = ""  # "smtp", "x-unix", ...
    remote_mta: str = ""


class FeedbackReport(msgspec.Struct, kw_only=True):
    """The fields of a `message/feedback-report` part (RFC 5965 §3.5)."""

    feedback_type: str = ""
    user_agent: str = ""
    original_mail_from: str = ""
    original_rcpt_to: list[str] = msgspec.field(default_factory=list)
    arrival_date: str = ""
    source_ip: str = ""


class Report(msgspec.Struct, kw_only=True):
    """A parsed returned message. `shape` is "delivery-status", "feedback-report" or "text"."""

    shape: str
    subject: str = ""
    sender: str = ""  # the From address
    headers: dict[str, str] = msgspec.field(default_factory=dict)  # lower-cased names, first
    reporting_mta: str = ""
    recipients: list[RecipientReport] = msgspec.field(default_factory=list)
    feedback: FeedbackReport | None = None
    text: str = ""  # the human-readable part, up to where the returned message starts
    failed_recipients: list[str] = msgspec.field(default_factory=list)  # X-Failed-Recipients
    # Of the returned message, when it came back: its Message-ID and mailpulse's own key.
    original_message_id: str = ""
    original_key: str = ""
    # The returned message's header fields (lower-cased names, first of each), as far as
    # they came back: what finds its send when the return path did not (see intake).
    original_headers: dict[str, str] = msgspec.field(default_factory=dict)
    defects: int = 0  # what the MIME parser found wrong


def parse_report(data: bytes) -> Report:
    """Read a returned message. Never raises for anything in `data`."""
    message = message_from_bytes(data, policy=compat32)
    return read_report(message)


def subject_of(head: bytes) -> str:
    """The Subject of a message's header block, decoded, as one line ("" when none)."""
    return _header(BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n"), "subject")


def read_report(message: Message) -> Report:
    report_type = (_param(message, "report-type") or "").lower()
    status_part = _first(message, DELIVERY_STATUS_TYPES)
    feedback_part = _first(message, FEEDBACK_TYPES)
    if feedback_part is not None and (report_type == "feedback-report" or status_part is None):
        shape = "feedback-report"
    elif status_part is not None:
        shape = "delivery-status"
    else:
        shape = "text"
    report = Report(
        shape=shape,
        subject=_header(message, "subject"),
        sender=_address_of(_header(message, "from")),
        headers={name.lower(): _header(message, name) for name in _names(message)[:MAX_NAMES]},
        text=_human_text(message),
        failed_recipients=_addresses(_header(message, "x-failed-recipients")),
        defects=sum(len(getattr(part, "defects", ())) for part in _parts(message)),
    )
    if shape == "delivery-status" and status_part is not None:
        _read_blocks(_field_blocks(status_part), report)
    elif shape == "feedback-report" and feedback_part is not None:
        report.feedback = _read_feedback(feedback_part)
    elif (fields := _STATUS_FIELDS.search(body := _body_text(message))) is not None:
        # Delivery-status fields in the text itself: a report whose MIME structure broke.
        report.shape = "delivery-status"
        _read_blocks([_fields(_header_block(g)) for g in _groups(body[fields.start() :])], report)
    else:
        report.recipients = _text_recipients(report.text, report.failed_recipients)
    _read_original(message, report)
    return report


# -- RFC 3464 ---------------------------------------------------------------------------------


# Where RFC 3464 fields start in the text of a report whose MIME structure broke.
_STATUS_FIELDS = re.compile(r"^(?:reporting-mta|final-recipient):[^\n]*\n", re.I | re.M)


_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "action", "status")


def _read_blocks(blocks: list[dict[str, str]], report: Report) -> None:
    """The per-message group (RFC 3464 §2.2), then one group per recipient (§2.3); groups
    that hold no recipient field (a malformed report's stray text) are passed over."""
    for block in blocks:
        if "reporting-mta" in block and not report.reporting_mta:
            report.reporting_mta = _typed(_field(block, "reporting-mta"))[1]
    groups = [b for b in blocks if any(_field(b, name) for name in _RECIPIENT_FIELDS)]
    for block in groups[:MAX_RECIPIENTS]:
        diagnostic_type, diagnostic = _typed(_field(block, "diagnostic-code"))
        status = ENHANCED_STATUS.search(_field(block, "status"))
        report.recipients.append(
            RecipientReport(
                final_recipient=_address_of(_typed(_field(block, "final-recipient"))[1]),
                original_recipient=_address_of(_typed(_field(block, "original-recipient"))[1]),
                action=_field(block, "action").split("(")[0].strip().lower()[:40],
                status=".".join(status.groups()) if status else "",
                diagnostic=diagnostic,
                diagnostic_type=diagnostic_type.lower(),
                remote_mta=_typed(_field(block, "remote-mta"))[1],
            )
        )


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The header groups of a delivery-status part: the stdlib parses message/delivery-status
    into one Message per group, other spellings (and encoded bodies) arrive as text."""
    payload = part.get_payload()
    if isinstance(payload, list) and not _encoded(part):
        blocks = [_fields(block) for block in payload if isinstance(block, Message)]
    else:
        blocks = [_fields(_header_block(chunk)) for chunk in _groups(_decoded_text(part))]
    return [block for block in blocks if block]


def _undo_transfer_encoding(part: Message, text: str) -> str:
    """The text of a part the stdlib split into groups before undoing its transfer encoding
    (it does so for message/delivery-status whatever the encoding)."""
    encoding = _header(part, "content-transfer-encoding").strip().lower()
    raw = text.encode("ascii", errors="ignore")
    try:
        if encoding == "base64":
            raw = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
            data = base64.b64decode(raw + b"=" * (-len(raw) % 4))
        else:
            data = quopri.decodestring(raw)
    except (ValueError, binascii.Error):
        return text
    return data.decode("utf-8", errors="replace")


def _header_block(text: str) -> Message:
    return HeaderParser(policy=compat32).parsestr(text.strip() + "\n")


def _groups(text: str) -> list[str]:
    return [g for g in re.split(r"\r?\n[ \t]*\r?\n", text.strip()) if g.strip()]


def _fields(block: Message) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name in _names(block):
        fields.setdefault(name.lower(), _header(block, name))
    return fields


def _field(block: dict[str, str], name: str) -> str:
    return block.get(name, "")


def _typed(value: str) -> tuple[str, str]:
    """`type; value` (RFC 3464 §2.1.2): the type and the value; a value without a type is
    taken whole."""
    kind, semicolon, rest = value.partition(";")
    if not semicolon or " " in kind.strip() or "@" in kind:
        return "", _clip(value)
    return kind.strip(), _clip(rest)


# -- bounces in words --------------------------------------------------------------------------

# A line that starts with an address, as bounces in words list their recipients: `<a@b>:`
# (qmail), `a@b` alone (Exim, Gmail), `<a@b>... User unknown` (Sendmail), `<a@b> (expanded
# from <c@d>): ...` (Postfix).
_RECIPIENT_LINE = re.compile(
    r"^[ \t]*[<(\"]?[ \t]*([^\s<>()\[\],;:\"']{1,64}@[A-Za-z0-9][A-Za-z0-9.\-]{0,252})[ \t]*[>)\"]?"
    r"[ \t]*(?:\.\.\.|:|\(|$)",
    re.MULTILINE,
)


_SENT_BY = re.compile(r"\bsent by:?\s*$", re.IGNORECASE)
_SENT_BY_REACH = 200  # characters before an address searched for "sent by": not all of them


def _text_recipients(text: str, failed: list[str]) -> list[RecipientReport]:
    """The recipients a bounce in words names at the start of a line, each with the words
    up to the next one; else those of X-Failed-Recipients, each with all of the words."""
    # Not the sender a bounce names ("A message sent by\n\n  <a@b>\n\ncould not be delivered").
    # Only the words just before each address: searching all of them made a report of many
    # addresses quadratic (4,000 lines of 64 KB took 2 s).
    found = [
        m
        for m in _RECIPIENT_LINE.finditer(text)
        if not _SENT_BY.search(text, max(0, m.start() - _SENT_BY_REACH), m.start())
    ]
    if not found:
        return [RecipientReport(final_recipient=a, diagnostic=_clip(text)) for a in failed]
    said: dict[str, list[str]] = {}
    for n, match in enumerate(found):
        end = found[n + 1].start() if n + 1 < len(found) else len(text)
        address = match.group(1).rstrip(".")
        said.setdefault(address.lower(), [address]).append(text[match.end() : end])
    return [
        RecipientReport(final_recipient=words[0], diagnostic=_clip(" ".join(words[1:])))
        for words in list(said.values())[:MAX_RECIPIENTS]
    ]


# -- RFC 5965 ---------------------------------------------------------------------------------


def _read_feedback(part: Message) -> FeedbackReport:
    blocks = _field_blocks(part) if isinstance(part.get_payload(), list) else []
    if not blocks:
        blocks = [_fields(_header_block(_decoded_text(part)))]
    fields: dict[str, str] = {}
    rcpts: list[str] = []
    for block in blocks:
        for name, value in block.items():
            fields.setdefault(name, value)
    # Original-Rcpt-To may repeat (one per recipient of the reported message).
    for block_part in _feedback_messages(part):
        for value in block_part.get_all("original-rcpt-to") or []:
            rcpts += _addresses(_text(value))
    if not rcpts and fields.get("original-rcpt-to"):
        rcpts = _addresses(fields["original-rcpt-to"])
    return FeedbackReport(
        feedback_type=fields.get("feedback-type", "").strip().lower()[:40],
        user_agent=fields.get("user-agent", ""),
        original_mail_from=_address_of(fields.get("original-mail-from", "")),
        original_rcpt_to=rcpts[:MAX_RECIPIENTS],
        arrival_date=fields.get("arrival-date", ""),
        source_ip=fields.get("source-ip", ""),
    )


def _feedback_messages(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return [_header_block(_decoded_text(part))]


# -- the returned message ---------------------------------------------------------------------


def _read_original(message: Message, report: Report) -> None:
    """The returned message's Message-ID and X-Mailpulse-Key: from its MIME part, or from the
    text after the marker in a plain-text bounce."""
    original = _first(message, ORIGINAL_TYPES)
    headers: Message | None = None
    if original is not None:
        payload = original.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            headers = payload[0]
        else:
            headers = HeaderParser(policy=compat32).parsestr(_decoded_text(original)[:MAX_TEXT])
    else:
        body = _body_text(message)
        marker = _ORIGINAL_MARKERS.search(body)
        if marker is not None:
            rest = body[marker.end() :].split("\n", 1)[-1].lstrip("\r\n")
            headers = HeaderParser(policy=compat32).parsestr(rest[:MAX_TEXT])
    if headers is not None:
        report.original_message_id = _header(headers, "message-id").strip()[:400]
        report.original_key = _header(headers, "x-mailpulse-key").strip()[:400]
        report.original_headers = {
            name.lower(): _header(headers, name)[:400] for name in _names(headers)[:MAX_NAMES]
        }


# -- MIME plumbing ----------------------------------------------------------------------------


def _parts(message: Message, depth: int = 0) -> list[Message]:
    """Every part, the top one first, down to _MAX_DEPTH; not into delivery-status groups."""
    found = [message]
    if depth >= _MAX_DEPTH or message.get_content_type() in DELIVERY_STATUS_TYPES:
        return found
    payload = message.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                found += _parts(sub, depth + 1)
    return found


def _first(message: Message, types: frozenset[str]) -> Message | None:
    """The first part of one of `types` outside any returned message (a bounce of a bounce
    carries the first bounce's report inside: that is not this one's)."""
    stack = [(message, 0)]
    while stack:
        part, depth = stack.pop(0)
        kind = part.get_content_type()
        if kind in types:
            return part
        if depth >= _MAX_DEPTH or kind in ORIGINAL_TYPES or kind in DELIVERY_STATUS_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack += [(sub, depth + 1) for sub in payload if isinstance(sub, Message)]
    return None


def _human_text(message: Message) -> str:
    """The bounce's own words: its first text part outside the returned message, cut where
    the returned message starts."""
    body = _body_text(message)
    marker = _ORIGINAL_MARKERS.search(body)
    return body[: marker.start()] if marker else body


def _body_text(message: Message) -> str:
    stack = [(message, 0)]
    while stack:
        part, depth = stack.pop(0)
        kind = part.get_content_type()
        if kind in ("text/plain", "text/html") and not _is_attachment(part):
            text = _decoded_text(part)
            return _strip_html(text) if kind == "text/html" else text
        if depth >= _MAX_DEPTH or kind in ORIGINAL_TYPES or kind in DELIVERY_STATUS_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack += [(sub, depth + 1) for sub in payload if isinstance(sub, Message)]
        elif part.get_content_maintype() == "multipart" and isinstance(payload, str):
            # A multipart whose boundary never comes (the parser keeps its body as text):
            # its words are all there is.
            return _decoded_text(part)
    return ""


def _is_attachment(part: Message) -> bool:
    return _header(part, "content-disposition").lower().startswith("attachment")


def _strip_html(text: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|</tr\s*>", "\n", text)
    text = re.sub(r"<[^>]{0,2000}>", " ", text)
    return re.sub(r"&nbsp;|&#160;", " ", text).replace("&lt;", "<").replace("&gt;", ">")


def _encoded(part: Message) -> bool:
    return _header(part, "content-transfer-encoding").strip().lower() in (
        "base64",
        "quoted-printable",
    )


def _decoded_text(part: Message) -> str:
    """A leaf part's body as text: transfer encoding undone, charset decoded (an unknown one
    as UTF-8 with replacements), at most MAX_TEXT characters."""
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "\n\n".join(_as_text(sub) for sub in payload if isinstance(sub, Message))
        return (_undo_transfer_encoding(part, text) if _encoded(part) else text)[:MAX_TEXT]
    try:
        raw = part.get_payload(decode=True)
    except Exception:  # the stdlib's decoders on hostile input: take the text as it stands
        raw = None
    if not isinstance(raw, bytes):
        return str(payload)[:MAX_TEXT]
    raw = raw[: MAX_TEXT * 4]
    charset = _charset(part)
    try:
        return raw.decode(charset, errors="replace")[:MAX_TEXT]
    except (LookupError, ValueError):
        return raw.decode("utf-8", errors="replace")[:MAX_TEXT]


def _as_text(block: Message) -> str:
    fields = "\n".join(f"{name}: {_text(value)}" for name, value in block.items())
    body = block.get_payload()
    return f"{fields}\n{body}" if isinstance(body, str) and body else fields


def _charset(part: Message) -> str:
    try:
        charset = part.get_content_charset() or "utf-8"
    except Exception:
        return "utf-8"
    # us-ascii text from a server that writes UTF-8 or Latin-1 anyway: read the bytes kindly.
    return "utf-8" if charset in ("us-ascii", "ascii", "unknown-8bit", "x-unknown") else charset


def _param(message: Message, name: str) -> str:
    try:
        value = message.get_param(name)
    except Exception:
        return ""
    if isinstance(value, tuple):  # RFC 2231 (charset, language, text)
        value = value[2]
    return value if isinstance(value, str) else ""


def _names(message: Message) -> list[str]:
    try:
        return list(dict.fromkeys(message.keys()))
    except Exception:
        return []


def _header(message: Message, name: str) -> str:
    """A header as one line of text, whatever it holds: RFC 2047 words decoded, folding
    undone, undecodable bytes replaced."""
    try:
        value = message.get(name)
    except Exception:
        return ""
    return _text(value) if value is not None else ""


def _text(value: object) -> str:
    text = str(value)
    if "=?" in text:
        with contextlib.suppress(Exception):  # a broken encoded word stays as written
            text = str(make_header(decode_header(text)))
    text = text.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    return _clip(re.sub(r"\s+", " ", text).strip())


def _clip(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:MAX_FIELD]


_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']{1,64}@[A-Za-z0-9][A-Za-z0-9.\-]{0,252}")


def _address_of(text: str) -> str:
    """The first address in a field (`Name <a@b>`, `<a@b>`, `a@b`), lower-cased domain."""
    found = _ADDRESS.search(text)
    return found.group(0).rstrip(".").strip() if found else ""


def _addresses(text: str) -> list[str]:
    return [m.group(0).rstrip(".") for m in _ADDRESS.finditer(text)][:MAX_RECIPIENTS]
