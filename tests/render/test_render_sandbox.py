"""Templates cannot reach Python internals, mutate data, or exhaust memory, and never leak."""

from __future__ import annotations

import pytest

from mailpulse.errors import ProjectError, RenderError
from mailpulse.render import TemplateLibrary
from mailpulse.render.sandbox import HTML_ENV, template_of

FRONT = '---\nsubject: "Hello"\n---\n'


def html_template(templates, body: str, subject: str = "Hello"):
    folder = templates(t__html=f'---\nsubject: "{subject}"\n---\n<p>{body}</p>\n')
    return TemplateLibrary.load(folder).get("t")


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ contact['__class__'] }}",
        "{{ contact | attr('__dict__') }}",
        "{{ lipsum._private }}",
    ],
)
def test_private_attributes_are_refused_at_load(templates, expression: str) -> None:
    folder = templates(t__html=FRONT + "<p>fine</p>\n<p>" + expression + "</p>\n")

    with pytest.raises(ProjectError) as caught:
        TemplateLibrary.load(folder)
    assert caught.value.line == 5
    assert "starting with '_'" in caught.value.message


def test_private_attribute_in_subject_is_refused_at_load(templates) -> None:
    with pytest.raises(ProjectError) as caught:
        TemplateLibrary.load(templates(t__html='---\nsubject: "{{ x.__class__ }}"\n---\n<p></p>'))
    assert caught.value.line == 2


def test_include_is_refused_at_load(templates) -> None:
    with pytest.raises(ProjectError, match="include, extends and import are not supported"):
        TemplateLibrary.load(templates(t__html=FRONT + "{% include 'footer.html' %}"))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ ''|attr(contact.key) }}", "'__class__'"),
        ("{{ contact.tags.append('x') }}", "'append'"),
        ("{{ 'x' * 100000000 }}", "'*'"),
        ("{{ 10 ** 100000 }}", "'**'"),
        ("{{ (contact.key).format(contact) }}", "sandbox"),
    ],
)
def test_sandbox_violations_at_render_are_render_errors(templates, body: str, reason: str) -> None:
    template = html_template(templates, body)
    contact = {"key": "__class__", "tags": ["a"]}
    if "format" in body:
        contact["key"] = "{0.__class__.__mro__}"

    with pytest.raises(RenderError) as caught:
        template.render({"contact": contact})
    assert "broke the sandbox" in str(caught.value)
    assert reason in str(caught.value)
    assert "<class" not in str(caught.value)
    assert contact.get("tags", ["a"]) == ["a"]


@pytest.mark.parametrize(
    "body",
    [
        "{{ missing() }}",
        "{{ range(10000000) | list }}",
        "{{ 1 / 0 }}",
        "{{ contact.x | round(2) }}",
    ],
)
def test_any_render_failure_is_a_render_error(templates, body: str) -> None:
    with pytest.raises(RenderError, match="template 't' failed"):
        html_template(templates, body).render({"contact": {}})


def test_missing_values_render_empty(templates) -> None:
    template = html_template(
        templates,
        "[{{ contact.first_name }}][{{ nothing.at.all }}][{{ contact.none }}]"
        "{% for p in event.properties.products %}x{% endfor %}",
        subject="Hi {{ contact.first_name }}!",
    )

    rendered = template.render({"contact": {"none": None}})
    assert "<p>[][][]</p>" in rendered.html
    assert rendered.subject == "Hi !"


def test_dict_keys_win_over_dict_methods(templates) -> None:
    template = html_template(templates, "{% for i in order.items %}{{ i }};{% endfor %}")

    assert "<p>a;b;</p>" in template.render({"order": {"items": ["a", "b"]}}).html


def test_html_is_autoescaped_and_subject_and_text_are_not(templates) -> None:
    folder = templates(
        t__html='---\nsubject: "Hi {{ contact.first_name }}"\n---\n'
        '<p>Hi {{ contact.first_name }}</p><a href="{{ contact.site }}">site</a>',
    )
    rendered = (
        TemplateLibrary.load(folder)
        .get("t")
        .render(
            {"contact": {"first_name": "<script>alert(1)</script>", "site": 'x" onclick="evil()'}}
        )
    )

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert 'href="x&#34; onclick=&#34;evil()"' in rendered.html
    assert rendered.subject == "Hi <script>alert(1)</script>"
    assert "Hi <script>alert(1)</script>" in rendered.text


def test_globals_are_one_plain_dict_and_values_given_win_over_them() -> None:
    # Jinja's ChainMap of globals is copied key by key on every render; ours are flattened
    # once (render.sandbox.template_of), and must stay what the environment provides.
    template = template_of(HTML_ENV, "{{ range(2) | list }}|{{ catalog('shop', 'x') }}")

    assert type(template.globals) is dict
    assert template.globals["range"] is HTML_ENV.globals["range"]
    assert template.render() == "[0, 1]|{}"
    assert template.render(catalog=lambda *_: "given") == "[0, 1]|given"
