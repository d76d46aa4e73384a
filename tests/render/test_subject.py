"""A subject line given apart from its template (an A/B test's variant): rendered in the same
sandbox as the template's own, in place of it, and refused early when it would not render."""

from __future__ import annotations

import pytest

from mailpulse.errors import RenderError
from mailpulse.render import TemplateLibrary
from mailpulse.render.subject import SubjectError, subject_template

SALE = """\
---
subject: "Our sale, {{ contact.first_name }}"
---
<html><body><p>Hello {{ contact.first_name }}</p></body></html>
"""


def test_a_subject_line_replaces_the_templates_own(templates) -> None:
    sale = TemplateLibrary.load(templates(sale__html=SALE)).get("sale")
    context = {"contact": {"first_name": "Ada"}}
    assert sale.render(context).subject == "Our sale, Ada"
    rendered = sale.render(context, "Last chance,\n{{ contact.first_name }}: {{ contact.x }}30%")
    assert rendered.subject == "Last chance, Ada: 30%"  # one line, a missing value empty
    assert "Hello Ada" in rendered.html


def test_compiled_once_per_line() -> None:
    assert subject_template("Hi {{ contact.id }}") is subject_template("Hi {{ contact.id }}")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("Hi {{ contact.id", "Jinja syntax error"),
        ("{{ contact.__class__ }}", "internal to Python"),
        ("{% include 'other' %}", "include, extends and import are not supported"),
    ],
)
def test_a_line_that_would_not_render_is_refused(line: str, problem: str) -> None:
    with pytest.raises(SubjectError, match=problem):
        subject_template(line)


def test_a_bad_line_fails_that_render_only(templates) -> None:
    sale = TemplateLibrary.load(templates(sale__html=SALE)).get("sale")
    with pytest.raises(RenderError, match="internal to Python"):
        sale.render({"contact": {}}, "{{ contact.items.__self__ }}")
