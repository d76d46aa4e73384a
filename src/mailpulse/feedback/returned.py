"""Which send an out-of-band report is about: one that came back without its VERP return path
(to the bare return path: a forwarder rewrote the envelope, a server answered the header
address), found by the returned message's own headers.

What the courier writes in every message (runtime/courier.py) names its send three ways:

- its Message-ID, `<hex(key digest)@domain>` (delivery.mime.message_id_of);
- `X-Mailpulse-Key`, the send's key;
- in marketing mail, `List-Unsubscribe`, whose URL and mailto subject carry a token this
  project signed (feedback.unsubscribe), naming the send's key.

The first two are plain text: whoever knows a send's key can write them. Only the signed token
proves the message is mailpulse's, so a report found by the first two alone is `signed=False`,
and the inbound intake takes less from it (see intake.py). Headers that name two different
sends name none, and so does a token of our form that this project did not sign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailpulse.delivery.mime import KEY_DIGEST, key_digest
from mailpulse.feedback.unsubscribe import UNSUBSCRIBE, UNSUBSCRIBE_PATH, read_token
from mailpulse.tokens import TokenError, TokenSigner

_MESSAGE_ID = re.compile(rf"<([0-9a-f]{{{KEY_DIGEST * 2}}})@([^<>@\s]+)>", re.IGNORECASE)
_TOKEN = r"([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)"
# The token in the one-click URL's path and in the mailto's subject (`unsubscribe%20<token>`).
_LINK_TOKENS = re.compile(
    rf"{re.escape(UNSUBSCRIBE_PATH)}{_TOKEN}|subject=unsubscribe(?:%20|\+|\s)+{_TOKEN}",
    re.IGNORECASE,
)
MAX_TOKENS = 4  # tokens tried from one List-Unsubscribe (it holds two)


@dataclass(frozen=True)
class ReturnedSend:
    digest: bytes  # the send's key digest, as a VERP return path would carry it
    signed: bool  # a token of this project's names it


def returned_send(
    headers: dict[str, str], tokens: TokenSigner, message_id_domain: str
) -> ReturnedSend | None:
    """The send the returned message's header fields (lower-cased names) name, or None when
    they name none of ours, or more than one."""
    named: set[bytes] = set()
    found = _MESSAGE_ID.fullmatch(headers.get("message-id", "").strip())
    if found is not None and found.group(2).lower().rstrip(".") == message_id_domain.lower():
        named.add(bytes.fromhex(found.group(1)))
    key = headers.get("x-mailpulse-key", "").strip()
    if key:
        named.add(key_digest(key))
    signed: set[bytes] = set()
    for match in list(_LINK_TOKENS.finditer(headers.get("list-unsubscribe", "")))[:MAX_TOKENS]:
        try:
            link = read_token(tokens, UNSUBSCRIBE, match.group(1) or match.group(2))
        except TokenError:
            return None  # a token of our form we did not sign: a forgery, whatever else it says
        signed.add(key_digest(link.key))
    every = named | signed
    if len(every) != 1:
        return None
    return ReturnedSend(every.pop(), signed=bool(signed))
