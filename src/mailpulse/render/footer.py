"""The unsubscribe footer of a marketing message whose template shows no unsubscribe link.

Every marketing body must show a visible unsubscribe link and the sender's postal address
(RFC 8058 leaves the body to the sender; CAN-SPAM and Gmail's bulk-sender rules do not). A
template that names neither `unsubscribe_url` nor `preferences_url` gets a small footer with
both, in its HTML (before `</body>`) and its text part, and the postal address unless it shows
`project.postal_address` itself. It is added when the template is compiled, inside
`{% if _unsubscribe_footer %}`: whether a message is marketing is the send's to say, not the
template's, and per recipient the footer then costs one test.
"""

from __future__ import annotations

import re

FOOTER_VARIABLE = "_unsubscribe_footer"
_LINK_VARIABLES = re.compile(r"\b(unsubscribe_url|preferences_url)\b")
_POSTAL = re.compile(r"\bpostal_address\b")
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_POSTAL_HTML = "{% if project.postal_address %}{{ project.postal_address }}<br>{% endif %}"
_HTML = (
    "{% if " + FOOTER_VARIABLE + " %}"
    '<div style="margin:24px auto 0;padding:16px;max-width:600px;font-family:Arial,sans-serif;'
    'font-size:12px;line-height:18px;color:#666666;text-align:center;">'
    "{postal}"
    '<a href="{{ unsubscribe_url }}" style="color:#666666;">Unsubscribe</a> &middot; '
    '<a href="{{ preferences_url }}" style="color:#666666;">Email preferences</a>'
    "</div>{% endif %}"
)
_POSTAL_TEXT = "{% if project.postal_address %}{{ project.postal_address }}\n{% endif %}"
_TEXT = (
    "{% if " + FOOTER_VARIABLE + " %}\n\n{postal}"
    "Unsubscribe: {{ unsubscribe_url }}\nEmail preferences: {{ preferences_url }}\n{% endif %}"
)


def shows_unsubscribe(source: str) -> bool:
    """Whether a template's source puts an unsubscribe or preference link in its part."""
    return _LINK_VARIABLES.search(source) is not None


def with_html_footer(html: str, source: str) -> str:
    """`html` (compiled Jinja) with the footer before its `</body>`, or at its end; `source`,
    the template as written, tells whether it shows the postal address already."""
    footer = _HTML.replace("{postal}", "" if _POSTAL.search(source) else _POSTAL_HTML)
    closes = list(_BODY_CLOSE.finditer(html))
    if not closes:
        return html + footer
    at = closes[-1].start()
    return html[:at] + footer + html[at:]


def with_text_footer(text: str, source: str) -> str:
    footer = _TEXT.replace("{postal}", "" if _POSTAL.search(source) else _POSTAL_TEXT)
    return text.rstrip("\n") + footer
