from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from mailpulse.policy.consent import BUILTIN_TEMPLATES, CONFIRM_TEMPLATE
from mailpulse.render import CompiledTemplate, TemplateLibrary

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "shop" / "templates"
MARKETING = (
    "back_in_stock",
    "welcome",
    "browse_reminder",
    "cart_reminder",
    "review_request",
    "win_back",
    "win_back_last_chance",
    "vip_welcome",
)


def test_html_template_with_style_is_inlined(templates) -> None:
    folder = templates(
        receipt__html='---\nsubject: "Receipt {{ order.id }}"\n---\n<html><head><style>'
        ".total { font-weight: bold; color: #111111; } h1 { font-size: 20px; }</style></head>"
        "<body><h1>Receipt</h1>{% for line in order.lines %}<p>{{ line }}</p>{% endfor %}"
        '<p class="total">Total {{ order.total }}</p></body></html>'
    )
    rendered = (
        TemplateLibrary.load(folder)
        .get("receipt")
        .render({"order": {"id": "A1", "lines": ["Tee", "Mug"], "total": "$40"}})
    )

    assert '<h1 style="font-size: 20px;">Receipt</h1>' in rendered.html
    assert (
        '<p class="total" style="font-weight: bold;color: #111111;">Total $40</p>' in rendered.html
    )
    assert "<style>" not in rendered.html
    assert rendered.text == "Receipt\n\nTee\n\nMug\n\nTotal $40\n"
    assert rendered.preheader == ""


def test_get_names_and_contains(templates) -> None:
    front = '---\nsubject: "Hi"\n---\n'
    library = TemplateLibrary.load(
        templates(welcome__html=front + "<p>a</p>", cart_reminder__html=front + "<p>b</p>")
    )

    assert library.names() == ["cart_reminder", "welcome"]
    assert "welcome" in library and "nope" not in library
    assert isinstance(library.get("welcome"), CompiledTemplate)
    with pytest.raises(KeyError, match=r"no template 'welcom'.*cart_reminder, welcome.*'welcome'"):
        library.get("welcom")


def test_empty_folder_is_an_empty_library(templates) -> None:
    assert TemplateLibrary.load(templates()).names() == []


@pytest.fixture(scope="module")
def examples() -> TemplateLibrary:
    return TemplateLibrary.load(EXAMPLES)


def test_example_shop_templates_load(examples: TemplateLibrary) -> None:
    assert examples.names() == [
        "back_in_stock",
        "browse_reminder",
        "cart_reminder",
        "order_confirmation",
        "review_request",
        "vip_welcome",
        "welcome",
        "win_back",
        "win_back_last_chance",
    ]


@pytest.mark.parametrize("name", MARKETING)
def test_example_marketing_mail_shows_unsubscribe_and_postal_address(
    examples: TemplateLibrary, shop_context, name: str
) -> None:
    rendered = examples.get(name).render(shop_context(first_name="Ada"))

    for part in (rendered.html, rendered.text):
        assert "https://mail.example.com/u/tok123" in part
        assert "12 Harbour St, Portland, ME 04101, USA" in part
    assert "Ada" in rendered.subject
    assert rendered.preheader


@pytest.mark.parametrize("name", ["cart_reminder", "order_confirmation", "review_request"])
def test_example_mail_lists_the_products(
    examples: TemplateLibrary, shop_context, name: str
) -> None:
    rendered = examples.get(name).render(shop_context(first_name="Ada"))

    for part in (rendered.html, rendered.text):
        assert "Merino Crew Sweater" in part and "Ceramic Pour-Over Set" in part


def test_order_confirmation_shows_order_and_total(examples: TemplateLibrary, shop_context) -> None:
    rendered = examples.get("order_confirmation").render(shop_context(first_name="Ada"))

    assert "order_00042" in rendered.subject
    assert "186.00 USD" in rendered.text
    assert "97.00" in rendered.text  # 2 x 48.50


def test_examples_render_for_a_contact_with_no_traits(examples: TemplateLibrary) -> None:
    for name in examples.names():
        rendered = examples.get(name).render({"contact": {"id": "u", "email": "x@example.com"}})
        assert rendered.subject and rendered.html and rendered.text


trait_text = st.text(st.characters(codec="utf-8"), max_size=80)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first_name=trait_text, city=st.one_of(trait_text, st.none(), st.integers()))
def test_any_trait_renders_and_stays_out_of_headers(
    examples: TemplateLibrary, shop_context, first_name: str, city: object
) -> None:
    context = shop_context(first_name=first_name, city=city)
    for name in examples.names():
        rendered = examples.get(name).render(context)

        assert not re.search(r"[\r\n\x00-\x1f\x7f\u0085\u2028\u2029]", rendered.subject)
        assert not re.search(r"[\r\n]", rendered.preheader)
        assert str(escape(first_name)) in rendered.html


def test_built_in_templates_fill_in_and_a_project_template_replaces_one(
    templates, tmp_path: Path
) -> None:
    folder = templates(sale__html='---\nsubject: "Sale"\n---\n<p>Sale</p>\n')
    library = TemplateLibrary.load(folder, BUILTIN_TEMPLATES)
    assert library.names() == [CONFIRM_TEMPLATE, "sale"]
    context = {
        "contact": {"first_name": "Ann"},
        "topic": {"name": "News", "description": "Weekly"},
        "project": {"name": "Shop", "postal_address": "1 Test Street"},
        "confirm_url": "https://shop.test/p/confirm/abc.def",
    }
    built_in = library.get(CONFIRM_TEMPLATE).render(context)
    assert built_in.subject == "Please confirm: News from Shop"
    assert 'href="https://shop.test/p/confirm/abc.def"' in built_in.html
    assert "Yes, subscribe me (https://shop.test/p/confirm/abc.def)" in built_in.text
    own = '---\nsubject: "Confirm {{ topic.name }}"\n---\n<a href="{{ confirm_url }}">Yes</a>\n'
    (folder / f"{CONFIRM_TEMPLATE}.html").write_text(own)
    replaced = TemplateLibrary.load(folder, BUILTIN_TEMPLATES).get(CONFIRM_TEMPLATE)
    assert replaced.render(context).subject == "Confirm News"
