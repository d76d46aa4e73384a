"""The write key of a tracking API request, from HTTP Basic auth (Segment: key as user name)."""

from __future__ import annotations

import base64
import binascii


def write_key_from_basic(authorization_header: str | None) -> str | None:
    """The user name of a `Basic` Authorization header; None when absent or malformed.

    Segment sends the write key as the user name with an empty password; a password, if any,
    is ignored, and so is a missing colon (some clients encode the bare key).
    """
    if not authorization_header:
        return None
    scheme, _, credentials = authorization_header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _colon, _password = decoded.partition(":")
    return user or None
