"""What a message carries for the ESP relaying it, so that the ESP's webhooks name the message
back (mailpulse.feedback.webhooks reads them).

Amazon SES and Mailgun echo the message's own headers (its Message-ID) in every event; two do
not:

- SendGrid leaves the Message-ID (`smtp-id`) out of opens and clicks, but echoes custom
  arguments in every event: the SMTP API header `X-SMTPAPI: {"unique_args": {...}}`;
- Postmark echoes no header at all, only metadata, which mail handed over by SMTP sets with
  `X-PM-Metadata-<name>` headers.

Both ESPs take those headers off the message before it goes on; they are added only for the
ESPs that `[webhooks]` configures, and are not covered by the DKIM signature.
"""

from __future__ import annotations

import json
from collections.abc import Collection

ECHO_ARGUMENT = "mailpulse_key"  # SendGrid's custom argument: the message's idempotency key
POSTMARK_METADATA = "mailpulse-key"  # Postmark's metadata field: the same


def echo_headers(providers: Collection[str], key: str) -> dict[str, str]:
    """The header fields that make the ESPs among `providers` echo the message's `key`."""
    headers = {}
    if "sendgrid" in providers:
        echoed = {"unique_args": {ECHO_ARGUMENT: key}}
        headers["X-SMTPAPI"] = json.dumps(echoed, ensure_ascii=True, separators=(",", ":"))
    if "postmark" in providers:
        headers[f"X-PM-Metadata-{POSTMARK_METADATA}"] = key
    return headers
