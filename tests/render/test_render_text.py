"""The text part derived from HTML: plain lines, links as `text (url)`, Jinja kept."""

from __future__ import annotations

from mailpulse.render import TemplateLibrary

FRONT = '---\nsubject: "Hi"\npreheader: "Preview {{ name }}"\n---\n'


def text_of(templates, body: str, **context: object) -> str:
    folder = templates(t__html=FRONT + body)
    return TemplateLibrary.load(folder).get("t").render(context).text


def test_blocks_lines_and_lists(templates) -> None:
    body = (
        "<html><head><title>Title</title><style>p { color: red; }</style></head><body>"
        "<h1>Your   order</h1><p>First line<br>second line</p>"
        "<ul><li>Tee</li><li>Mug</li></ul><p>Bye</p></body></html>"
    )

    assert text_of(templates, body) == (
        "Your order\n\nFirst line\nsecond line\n\n- Tee\n- Mug\n\nBye\n"
    )


def test_links_become_text_and_url(templates) -> None:
    body = (
        '<p><a href="{{ url }}">Track   parcel</a> or <a href="https://x.example/">https://x.example/</a>'
        ' <a href="#top">top</a> <a href="https://img.example/"><img src="a.png" alt="A"></a></p>'
    )

    text = text_of(templates, body, url="https://t.example/?a=1&b=2")
    assert text == "Track parcel (https://t.example/?a=1&b=2) or https://x.example/ top\n"


def test_hidden_elements_and_the_preheader_are_left_out(templates) -> None:
    body = '<div style="display: none">secret</div><p>Shown {{ name }}</p>'

    assert text_of(templates, body, name="Ada") == "Shown Ada\n"


def test_statements_keep_paragraph_spacing(templates) -> None:
    body = (
        "<p>Items:</p>{% for item in items %}<p>{{ item }}</p>{% endfor %}"
        "{% if vip %}<p>VIP</p>{% endif %}<p>End {% if vip %}gold{% else %}plain{% endif %}.</p>"
    )

    assert (
        text_of(templates, body, items=["a", "b"], vip=True)
        == "Items:\n\na\n\nb\n\nVIP\n\nEnd gold.\n"
    )
    assert text_of(templates, body, items=[], vip=False) == "Items:\n\nEnd plain.\n"


def test_table_cells_are_spaced_on_one_line(templates) -> None:
    body = "<table><tr><th>Item</th><th>Qty</th></tr><tr><td>Tee</td><td>2</td></tr></table>"

    assert text_of(templates, body) == "Item Qty\nTee 2\n"


def test_jinja_comments_are_dropped(templates) -> None:
    assert text_of(templates, "<p>A{# note #}B</p>") == "AB\n"
