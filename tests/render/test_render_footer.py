"""The unsubscribe footer: a template without an unsubscribe link gets one in both parts, for
marketing only; one that shows its own link (in either variable) is left as it is; the postal
address is added unless the template shows it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailpulse.render import TemplateLibrary
from mailpulse.render.footer import FOOTER_VARIABLE

BARE = """---
subject: "Hello"
---
<html><body><p>Hi {{ contact.first_name }}, our sale starts now.</p></body></html>
"""
OWN_LINK = """---
subject: "Hello"
---
<mjml><mj-body><mj-section><mj-column>
  <mj-text>Sale! {{ project.postal_address }} <a href="{{ preferences_url }}">Manage</a></mj-text>
</mj-column></mj-section></mj-body></mjml>
"""
UNSUB = "https://shop.test/u/abc.def"
PREFS = "https://shop.test/p/abc.def"


def context(marketing: bool, postal: str = "1 Test Street") -> dict[str, Any]:
    return {
        "contact": {"first_name": "Ada"},
        "project": {"name": "Shop", "url": "https://shop.test", "postal_address": postal},
        "unsubscribe_url": UNSUB,
        "preferences_url": PREFS,
        FOOTER_VARIABLE: marketing,
    }


def test_a_template_without_a_link_gets_the_footer_in_marketing_only(
    templates: Callable[..., Path],
) -> None:
    library = TemplateLibrary.load(templates(sale__html=BARE))
    sale = library.get("sale")
    marketing = sale.render(context(True))
    assert f'<a href="{UNSUB}" style="color:#666666;">Unsubscribe</a>' in marketing.html
    assert f'<a href="{PREFS}"' in marketing.html
    assert "1 Test Street<br>" in marketing.html
    # Inside the body, so that every client shows it.
    assert marketing.html.index("Unsubscribe") < marketing.html.index("</body>")
    assert marketing.text.endswith(
        f"1 Test Street\nUnsubscribe: {UNSUB}\nEmail preferences: {PREFS}\n"
    )
    assert marketing.html.isascii() and marketing.text.isascii()
    receipt = sale.render(context(False))
    assert UNSUB not in receipt.html and UNSUB not in receipt.text
    assert "Unsubscribe" not in receipt.html + receipt.text
    # No postal address configured: no empty line for it.
    bare = sale.render(context(True, postal=""))
    assert "<br>" not in bare.html and bare.text.endswith(
        f"our sale starts now.\n\nUnsubscribe: {UNSUB}\nEmail preferences: {PREFS}\n"
    )


@pytest.mark.parametrize("text", [None, "Sale! {{ preferences_url }}\n"])
def test_a_template_with_its_own_link_is_left_as_written(
    templates: Callable[..., Path], text: str | None
) -> None:
    files = {"sale__mjml": OWN_LINK}
    if text is not None:
        files["sale__txt"] = text
    sale = TemplateLibrary.load(templates(**files)).get("sale")
    rendered = sale.render(context(True))
    assert "Unsubscribe" not in rendered.html and "Unsubscribe" not in rendered.text
    assert rendered.html.count(PREFS) == 1


def test_a_text_part_without_a_link_gets_the_footer_on_its_own(
    templates: Callable[..., Path],
) -> None:
    sale = TemplateLibrary.load(
        templates(sale__mjml=OWN_LINK, sale__txt="Sale! {{ project.postal_address }}\n")
    ).get("sale")
    rendered = sale.render(context(True))
    assert rendered.text == (
        f"Sale! 1 Test Street\n\nUnsubscribe: {UNSUB}\nEmail preferences: {PREFS}\n"
    )
    assert "Unsubscribe" not in rendered.html
