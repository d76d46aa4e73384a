from __future__ import annotations

import re
from pathlib import Path

import pytest

import mailpulse.render.compile as compile_module
from mailpulse.render import TemplateLibrary

CART = """---
subject: "{{ contact.first_name | default('Hi') }}, your cart at {{ project.name }}"
preheader: "{{ event.properties.products | length }} items are waiting"
---
<mjml>
  <mj-head>
    <mj-attributes><mj-all font-family="Helvetica, Arial, sans-serif" /></mj-attributes>
    <mj-style>.lead { color: #2f5d50; } .footer a { color: #6b7280; }</mj-style>
  </mj-head>
  <mj-body width="600px">
    <mj-section>
      <mj-column>
        <mj-text css-class="lead">
          <h1>Hello {{ contact.first_name | default('friend') }}!</h1>
          {% if event.properties.products | length < 3 %}<p>Just a few things left.</p>{% endif %}
        </mj-text>
      </mj-column>
    </mj-section>
    {% for item in event.properties.products %}
    <mj-section>
      <mj-column width="30%">
        <mj-image src="{{ item.image_url }}" alt="{{ item.name }}" href="{{ item.url }}" />
      </mj-column>
      <mj-column width="70%">
        <mj-text><a href="{{ item.url }}">{{ item.name }}</a></mj-text>
        <mj-text>Qty {{ item.quantity }} &middot; {{ "%.2f" | format(item.price) }}</mj-text>
      </mj-column>
    </mj-section>
    {% endfor %}
    <mj-section>
      <mj-column>
        <mj-button href="{{ project.url }}/cart?step=checkout&amp;c={{ contact.id }}">
          Check out
        </mj-button>
        <mj-text css-class="footer"><a href="{{ unsubscribe_url }}">Unsubscribe</a><br />
          {{ project.postal_address }}</mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""


def test_two_contacts_get_their_own_html_and_text(templates, shop_context) -> None:
    cart = TemplateLibrary.load(templates(cart__mjml=CART)).get("cart")

    ada = cart.render(shop_context(first_name="Ada"))
    bruno = cart.render(shop_context(first_name="Bruno", id="user_2"))

    assert ada.subject == "Ada, your cart at Northwind Goods"
    assert bruno.subject == "Bruno, your cart at Northwind Goods"
    assert "Hello Ada!" in ada.html and "Hello Bruno!" not in ada.html
    assert "Hello Bruno!" in bruno.html
    assert "c=user_2" in bruno.html and "c=user_1" in ada.html
    assert ada.html != bruno.html


def test_jinja_in_attributes_and_loops_survives_mjml_and_inlining(templates, shop_context) -> None:
    rendered = TemplateLibrary.load(templates(cart__mjml=CART)).get("cart").render(shop_context())

    html = rendered.html
    assert 'src="https://shop.example.com/images/merino.jpg"' in html
    assert 'alt="Ceramic Pour-Over Set"' in html
    assert 'href="https://shop.example.com/products/merino?ref=mail&amp;size=m"' in html
    assert 'href="https://shop.example.com/cart?step=checkout&amp;c=user_1"' in html
    # As ASCII, a long line broken at a blank: see the test on 7bit HTML below.
    assert "Qty 2 &#183; 48.50" in " ".join(html.split())
    assert html.count('alt="') == 2
    assert "Just a few things left." in html
    assert "{{" not in html and "{%" not in html and "mpj" not in html


def test_css_is_inlined_and_classes_rules_leave_the_head(templates, shop_context) -> None:
    html = TemplateLibrary.load(templates(cart__mjml=CART)).get("cart").render(shop_context()).html

    lead_cell = re.search(r'<td[^>]*class="lead"[^>]*>', html)
    assert lead_cell is not None and "color: #2f5d50" in lead_cell.group()
    assert ".lead" not in html
    # The responsive column widths stay in a <style>: media queries cannot be inlined.
    assert "@media only screen" in html


def test_derived_text_part_keeps_links_loops_and_footer(templates, shop_context) -> None:
    text = TemplateLibrary.load(templates(cart__mjml=CART)).get("cart").render(shop_context()).text

    assert text == (
        "Hello friend!\n"
        "\n"
        "Just a few things left.\n"
        "\n"
        "Merino Crew Sweater (https://shop.example.com/products/merino?ref=mail&size=m)\n"
        "\n"
        "Qty 1 · 89.00\n"
        "\n"
        "Ceramic Pour-Over Set (https://shop.example.com/products/pour-over)\n"
        "\n"
        "Qty 2 · 48.50\n"
        "\n"
        "Check out (https://shop.example.com/cart?step=checkout&c=user_1)\n"
        "\n"
        "Unsubscribe (https://mail.example.com/u/tok123)\n"
        "12 Harbour St, Portland, ME 04101, USA\n"
    )


def test_an_empty_loop_leaves_no_gap_in_the_text(templates, shop_context) -> None:
    cart = TemplateLibrary.load(templates(cart__mjml=CART)).get("cart")
    context = shop_context(first_name="Ada")
    context["event"]["properties"]["products"] = []

    assert "Just a few things left.\n\nCheck out (" in cart.render(context).text


def test_preheader_is_the_hidden_first_element_of_the_body(templates, shop_context) -> None:
    rendered = TemplateLibrary.load(templates(cart__mjml=CART)).get("cart").render(shop_context())

    assert rendered.preheader == "2 items are waiting"
    body = rendered.html[rendered.html.index("<body") :]
    first_div = re.search(r">\s*<div([^>]*)>([^<&]*)", body)
    assert first_div is not None
    assert "display:none" in first_div.group(1)
    assert first_div.group(2) == "2 items are waiting"
    assert "items are waiting" not in rendered.text


def test_compiles_once_however_many_renders(
    templates, shop_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_mjml2html = compile_module.mjml2html

    def counting_mjml2html(markup: str) -> str:
        calls.append(markup)
        return real_mjml2html(markup)

    monkeypatch.setattr(compile_module, "mjml2html", counting_mjml2html)
    cart = TemplateLibrary.load(templates(cart__mjml=CART)).get("cart")
    for n in range(200):
        cart.render(shop_context(first_name=f"Contact {n}"))

    assert len(calls) == 1


def test_version_changes_with_any_source_file(templates, shop_context) -> None:
    folder: Path = templates(cart__mjml=CART)
    first = TemplateLibrary.load(folder).get("cart").version
    again = TemplateLibrary.load(folder).get("cart").version
    (folder / "cart.txt").write_text("Hi {{ contact.first_name }}\n")
    with_text = TemplateLibrary.load(folder).get("cart").version
    (folder / "cart.mjml").write_text(CART.replace("Check out", "Pay now"))
    edited = TemplateLibrary.load(folder).get("cart").version

    assert first == again
    assert len({first, with_text, edited}) == 3
    assert re.fullmatch(r"[0-9a-f]{12}", first)


def test_hand_written_text_part_replaces_the_derived_one(templates, shop_context) -> None:
    folder = templates(
        cart__mjml=CART,
        cart__txt="Hi {{ contact.first_name }},\n\nYour cart: {{ project.url }}/cart & more\n",
    )
    rendered = TemplateLibrary.load(folder).get("cart").render(shop_context(first_name="Ada"))

    assert rendered.text == "Hi Ada,\n\nYour cart: https://shop.example.com/cart & more\n"


def test_braces_written_as_entities_stay_literal(templates, shop_context) -> None:
    # The HTML serializer turns &#123; into "{", which Jinja must then not read as a tag.
    source = CART.replace("Just a few things left.", "Type &#123;&#123; name &#125;&#125; here.")
    rendered = TemplateLibrary.load(templates(cart__mjml=source)).get("cart").render(shop_context())

    assert "Type {{ name }} here." in rendered.html
    assert "Type {{ name }} here." in rendered.text


def test_blanks_collapse_except_where_they_are_content(templates, shop_context) -> None:
    """Runs of blanks become one space and none end a line, so that DKIM's relaxed body
    canonicalization finds nothing to change; <pre>, <textarea> and Jinja keep theirs."""
    page = (
        "---\nsubject: Hi\n---\n<html><body>\n  <table>   <tr><td>a\t\tb   </td></tr></table>\n"
        "<pre>  kept   as is  </pre><textarea>two  spaces</textarea>\n"
        "<p>{{ 'x  y' }}  and {{ contact.first_name }}</p>   \n</body></html>\n"
    )
    page_template = TemplateLibrary.load(templates(page__html=page)).get("page")
    html = page_template.render(shop_context(first_name="Ada")).html
    outside = re.sub(r"<(pre|textarea)>.*?</\1>", "", html, flags=re.DOTALL)
    assert "  " not in outside.replace("x  y", "")
    assert "\t" not in outside
    assert not re.search(r" \n", outside)
    assert "<pre>  kept   as is  </pre>" in html
    assert "<textarea>two  spaces</textarea>" in html
    assert "x  y and Ada" in html


def test_a_white_space_pre_style_keeps_every_blank(templates, shop_context) -> None:
    page = '---\nsubject: Hi\n---\n<p style="white-space: pre">a   b</p>\n'
    html = TemplateLibrary.load(templates(page__html=page)).get("page").render(shop_context()).html
    assert "a   b" in html


def test_compiled_html_is_ascii_lines_smtp_carries_as_they_are(templates, shop_context) -> None:
    """Other characters become references (not in <style>, where none are read), lines are
    broken at blanks between words or attributes, never inside a quoted value; a value with
    other characters stays as it is (that message goes quoted-printable)."""
    words = " ".join(f"wörd{n}" for n in range(400))
    cells = "".join(
        f'<td class="c" style="font-family: \'Helvetica Neue\', Arial">{n}</td>' for n in range(60)
    )
    page = (
        "---\nsubject: Hi\n---\n<html><head>"
        '<style>@media screen { p::before { content: "→"; } }</style></head>'
        f"<body><p>{words}</p><table><tr>{cells}</tr></table>"
        "<p>{{ contact.first_name }}</p></body></html>\n"
    )
    page_template = TemplateLibrary.load(templates(page__html=page)).get("page")
    html = page_template.render(shop_context(first_name="Zoë")).html
    assert max(len(line) for line in html.split("\n")) <= 800
    assert 'content: "→"' in html  # the style as written
    assert "w&#246;rd399" in html and "wörd" not in html
    assert html.count("font-family: 'Helvetica Neue', Arial") == 60  # no break in a value
    assert "<p>Zoë</p>" in html
    plain = html.replace("Zoë", "").replace("→", "")
    assert plain.isascii()


def test_no_line_of_the_html_starts_with_a_dot(templates, shop_context) -> None:
    """SMTP doubles a dot that starts a line (a copy of the whole message on every send):
    MJML's Outlook style block writes one (`.mj-outlook-group-fix`), and so may a line broken
    at a blank or written so; each gets a blank before it, which HTML and CSS read as none."""
    words = " ".join(["see", ".NET"] * 300)
    page = f"---\nsubject: Hi\n---\n<html><body><p>{words}</p>\n.loose line</body></html>\n"
    library = TemplateLibrary.load(templates(cart__mjml=CART, page__html=page))
    context = shop_context(first_name="Ada")
    for name in ("cart", "page"):
        html = library.get(name).render(context).html
        assert not re.search(r"^\.", html, flags=re.MULTILINE), name
    cart = library.get("cart").render(context).html
    assert "\n .mj-outlook-group-fix" in cart
    page_html = library.get("page").render(context).html
    assert "\n .loose line" in page_html and page_html.count(".NET") == 300
