"""Every bad template names its file and line, and says what to fix."""

from __future__ import annotations

import pytest

from mailpulse.errors import ProjectError
from mailpulse.render import TemplateLibrary

BODY = "<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-text></mj-column></mj-section></mj-body></mjml>\n"  # noqa: E501
FRONT = '---\nsubject: "Hello"\n---\n'


def load_error(templates, **files: str) -> ProjectError:
    with pytest.raises(ProjectError) as caught:
        TemplateLibrary.load(templates(**files))
    return caught.value


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        (BODY, 1, "missing front matter"),
        ("---\nsubject: Hi\n" + BODY, 1, "not closed"),
        ("---\n---\n" + BODY, 1, "empty"),
        ('---\npreheader: "p"\n---\n' + BODY, 1, "no subject"),
        ('---\nsubject: ""\n---\n' + BODY, 2, "subject is empty"),
        ('---\nsubject: "Hi"\nsubjet: "typo"\n---\n' + BODY, 3, "did you mean 'subject'"),
        ('---\nsubject: "Hi"\npre_header: "p"\n---\n' + BODY, 3, "did you mean 'preheader'"),
        ('---\nsubject: "Hi"\nsender: "x"\n---\n' + BODY, 3, "known keys: subject, preheader"),
        ('---\nsubject: "Hi"\n  bad: [\n---\n' + BODY, 3, "not valid YAML"),
        ("---\nsubject: {{ contact.name }}\n---\n" + BODY, 2, "must be text, in quotes"),
        ('---\nsubject: "Hi"\nsubject: "Again"\n---\n' + BODY, 3, "given twice"),
        ('---\n- "Hi"\n---\n' + BODY, 2, "key: value"),
        ('---\nsubject: "Hi {{ contact.name"\n---\n' + BODY, 2, "Jinja syntax error"),
        ('---\nsubject: "Hi"\npreheader: "{% if %}"\n---\n' + BODY, 3, "Jinja syntax error"),
        (
            FRONT + "<mjml>\n<mj-body>\n{% for x in y %}\n</mj-body></mjml>\n",
            6,
            "Jinja syntax error",
        ),
        (
            FRONT + "<mjml>\n<mj-body>\n{{ contact.name }\n</mj-body></mjml>\n",
            6,
            "Jinja syntax error",
        ),
        (FRONT + "\n\n<mjml><mj-body>{% endif %}</mj-body></mjml>\n", 6, "Jinja syntax error"),
        (FRONT + "<mjml>\n<mj-head></mj-head><foo>\n</mjml>\n", 5, "MJML does not compile"),
    ],
)
def test_bad_main_file_names_file_and_line(
    templates, source: str, line: int, fragment: str
) -> None:
    error = load_error(templates, welcome__mjml=source)

    assert error.path.name == "welcome.mjml"
    assert error.line == line
    assert fragment in error.message


def test_mjml_error_without_a_position_still_names_the_file(templates) -> None:
    error = load_error(
        templates, welcome__mjml=FRONT + "<mjml><mj-body><mj-text>a < b</mj-text></mj-body></mjml>"
    )

    assert error.path.name == "welcome.mjml"
    assert "MJML does not compile" in error.message
    assert "&lt;" in error.message


def test_jinja_tag_that_mjml_drops_is_reported_at_its_line(templates) -> None:
    # An mj-class nobody uses leaves nothing in the HTML, and the Jinja tag goes with it.
    source = FRONT + "<mjml>\n<mj-head><mj-attributes>\n"
    source += '<mj-class name="brand" color="{{ contact.color }}" />\n'
    source += "</mj-attributes></mj-head>\n" + BODY.removeprefix("<mjml>")
    error = load_error(templates, welcome__mjml=source)

    assert error.line == 6
    assert "{{ contact.color }} was dropped" in error.message


def test_both_mjml_and_html_for_one_name(templates) -> None:
    error = load_error(templates, welcome__mjml=FRONT + BODY, welcome__html=FRONT + "<p>Hi</p>")

    assert error.path.name == "welcome.mjml"
    assert "keep one of them" in error.message


def test_text_part_without_a_main_file(templates) -> None:
    error = load_error(templates, welcome__mjml=FRONT + BODY, welcom__txt="Hi")

    assert error.path.name == "welcom.txt"
    assert "add welcom.mjml or welcom.html" in error.message


def test_syntax_error_in_text_part_names_its_line(templates) -> None:
    error = load_error(templates, welcome__mjml=FRONT + BODY, welcome__txt="Hi\n\n{% if x %}\n")

    assert error.path.name == "welcome.txt"
    assert error.line == 3


def test_unexpected_file_in_templates(templates) -> None:
    error = load_error(templates, welcome__mjml=FRONT + BODY, welcome__mjm="typo")

    assert error.path.name == "welcome.mjm"
    assert "NAME.mjml or NAME.html" in error.message


def test_missing_folder(tmp_path) -> None:
    with pytest.raises(ProjectError, match="templates folder not found"):
        TemplateLibrary.load(tmp_path / "nope")


def test_not_utf8(templates) -> None:
    folder = templates()
    (folder / "welcome.html").write_bytes(FRONT.encode() + b"<p>caf\xe9</p>")

    with pytest.raises(ProjectError, match="not UTF-8"):
        TemplateLibrary.load(folder)
