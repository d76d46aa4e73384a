"""Template sources to a CompiledTemplate: everything that is the same for every recipient.

MJML becomes HTML, CSS is inlined, the preheader goes in, links are rewritten for tracking
(see mailpulse.render.links), the text part is derived, an unsubscribe footer goes in where the
template has no unsubscribe link (see mailpulse.render.footer), and the Jinja templates are
compiled; all of it once per version, so rendering is Jinja only.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import css_inline
from jinja2 import Environment, Template, TemplateSyntaxError
from mjml import mjml2html

from mailpulse.errors import ProjectError
from mailpulse.render.footer import shows_unsubscribe, with_html_footer, with_text_footer
from mailpulse.render.frontmatter import split_front_matter
from mailpulse.render.links import track_links
from mailpulse.render.placeholders import Protected, protect
from mailpulse.render.sandbox import HTML_ENV, TEXT_ENV, sandbox_violations, template_of
from mailpulse.render.template import PREHEADER_VARIABLE, CompiledTemplate
from mailpulse.render.text import html_to_text_template

_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_MJML_POSITION = re.compile(r"at position (\d+):\d+")
# Where blanks are content, and the style that makes them so anywhere.
_KEEPS_BLANKS = re.compile(r"(<(pre|textarea)\b.*?</\2\s*>)", re.IGNORECASE | re.DOTALL)
_PRE_STYLE = re.compile(r"white-space\s*:\s*pre", re.IGNORECASE)
_LINE_END_BLANKS = re.compile(r"[ \t]+(?=\n)|[ \t]+\Z")
_BLANK_RUN = re.compile(r"\t[ \t]*| [ \t]+")
# Where a character reference is not read as one.
_RAW_TEXT = re.compile(r"(<(style|script)\b.*?</\2\s*>)", re.IGNORECASE | re.DOTALL)
_RAW_TEXT_TAG = re.compile(r"</?(style|script)\b", re.IGNORECASE)
_TAG_OR_TEXT = re.compile(r"<(?:[^>\"']|\"[^\"]*\"|'[^']*')*>?|[^<]+")
_UNQUOTED_BLANK = re.compile(r"\"[^\"]*\"?|'[^']*'?|( )")
# RFC 5322 §2.1.1 allows 998 characters a line; what a recipient's values add has room left.
_WRAP_AT = 800
# The usual hidden preview text, padded so clients do not pull body text into the preview.
_PREHEADER_DIV = (
    '<div style="display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;'
    'max-width:0px;opacity:0;overflow:hidden;mso-hide:all;">{slot}'
    + "&#847;&zwnj;&nbsp;" * 20
    + "</div>"
)


def compile_template(name: str, main_path: Path, text_path: Path | None) -> CompiledTemplate:
    source = _read(main_path)
    text_source = _read(text_path) if text_path is not None else None
    front = split_front_matter(main_path, source)
    subject = _jinja(TEXT_ENV, front.subject, main_path, front.subject_line)
    preheader = (
        _jinja(TEXT_ENV, front.preheader, main_path, front.preheader_line)
        if front.preheader
        else None
    )
    _jinja(HTML_ENV, front.body, main_path, front.body_line)

    protected = protect(front.body)
    markup = protected.text
    if main_path.suffix == ".mjml":
        markup = _mjml_to_html(markup, protected, main_path, front.body_line)
    try:
        markup = _INLINER.inline(markup)
    except (css_inline.InlineError, ValueError) as exc:
        raise ProjectError(main_path, f"CSS could not be inlined: {exc}") from exc
    markup = _collapse_blanks(markup)
    if front.preheader:
        markup = _BODY_OPEN.sub(
            lambda m: m.group() + _PREHEADER_DIV.format(slot=protected.slot("preheader")),
            markup,
            count=1,
        )

    plain, tracked, marks = track_links(_seven_bit(markup), protected)
    html, tracked_html = (
        _compiled_html(protected, version, main_path, front.body, front.body_line)
        for version in (plain, tracked)
    )

    if text_path is not None and text_source is not None:
        text = _jinja(TEXT_ENV, text_source, text_path, 1)  # its errors name its own lines
        if not shows_unsubscribe(text_source):
            footed = with_text_footer(text_source, text_source)
            text = _compiled(TEXT_ENV, footed, text_path, "the text part with its footer")
    else:
        derived, _ = protected.restore(
            html_to_text_template(markup, protected.bare_token_pattern())
        )
        if not shows_unsubscribe(front.body):
            derived = with_text_footer(derived, front.body)
        text = _compiled(
            TEXT_ENV,
            derived,
            main_path,
            f"the text part derived from the HTML (write a {name}.txt)",
        )

    digest = hashlib.sha256(source.encode())
    digest.update(b"\0" + (text_source or "").encode())
    return CompiledTemplate(
        name=name,
        version=digest.hexdigest()[:12],
        subject=subject,
        preheader=preheader,
        html=html,
        text=text,
        tracked_html=tracked_html,
        marks=marks,
    )


def _compiled_html(
    protected: Protected, markup: str, path: Path, body: str, body_line: int
) -> Template:
    """The HTML template of `markup` (compiled, its Jinja tags still tokens)."""
    html_source, counts = protected.restore(markup)
    _check_tags_survived(protected, counts, path, body_line)
    html_source = html_source.replace(
        protected.slot("preheader"), "{{ " + PREHEADER_VARIABLE + " }}"
    )
    if not shows_unsubscribe(body):
        html_source = with_html_footer(html_source, body)
    return _compiled(HTML_ENV, html_source, path, "the compiled HTML")


def _collapse_blanks(markup: str) -> str:
    """Runs of blanks as one space and none at line ends, as an HTML renderer shows them
    anyway. DKIM's relaxed body canonicalization (RFC 6376 §3.4.4) then has nothing to
    change in most messages, and it is checked for, instead of done, on every send. Jinja tags
    are tokens here, so their expressions keep their blanks."""
    if _PRE_STYLE.search(markup):
        return markup
    return _outside(
        _KEEPS_BLANKS, markup, lambda text: _BLANK_RUN.sub(" ", _LINE_END_BLANKS.sub("", text))
    )


def _seven_bit(markup: str) -> str:
    """The HTML in ASCII lines that SMTP carries as they are (7bit, RFC 2045), so that a
    message goes without a quoted-printable pass: other characters as references, and long
    lines broken at a blank (see _wrapped), one blank to HTML wherever blanks were collapsed.
    <style> and <script> are left as they are (references are not read there, and a break
    could fall in a string). A message whose values bring back other characters or long
    lines goes quoted-printable (see mailpulse.delivery.mime).

    Nor does a line start with a dot (where blanks are not content): SMTP would have to
    double it (RFC 5321 §4.5.2), a copy of the whole message on every send (MJML's Outlook
    style block has one such line). A blank before it is one HTML and CSS read as none."""
    markup = _outside(
        _RAW_TEXT, markup, lambda text: text.encode("ascii", "xmlcharrefreplace").decode("ascii")
    )
    if _PRE_STYLE.search(markup) or _KEEPS_BLANKS.search(markup):
        return markup
    # The inliner always writes the document from <html>: only a later line can start so.
    return "\n".join(map(_wrapped, markup.split("\n"))).replace("\n.", "\n .")


def _outside(elements: re.Pattern[str], markup: str, change: Callable[[str], str]) -> str:
    """`markup` with `change` made to all of it but the elements `elements` finds (a pattern
    of two groups, the element and its tag name, as split() returns them)."""
    pieces = elements.split(markup)
    return "".join(
        change(piece) if i % 3 == 0 else piece for i, piece in enumerate(pieces) if i % 3 != 2
    )


def _wrapped(line: str) -> str:
    """`line` broken before `_WRAP_AT` where it can be: between a tag's attributes (outside
    their quotes, never in a comment), else at a blank between words."""
    if len(line) <= _WRAP_AT:
        return line
    between_attributes, between_words = _blanks_to_break_at(line)
    lines, start = [], 0
    while len(line) - start > _WRAP_AT:
        limit = start + _WRAP_AT
        cut = _last_before(between_attributes, start, limit)
        if cut < 0:
            cut = _last_before(between_words, start, limit)
        if cut < 0:
            break  # nowhere to break: the message goes quoted-printable
        lines.append(line[start:cut])
        start = cut + 1
    lines.append(line[start:])
    return "\n".join(lines)


def _last_before(blanks: list[int], start: int, limit: int) -> int:
    """The last of the sorted `blanks` after `start` and before `limit`, or -1."""
    at = bisect.bisect_left(blanks, limit) - 1
    return blanks[at] if at >= 0 and blanks[at] > start else -1


def _blanks_to_break_at(line: str) -> tuple[list[int], list[int]]:
    between_attributes: list[int] = []
    between_words: list[int] = []
    raw_text = False  # in a <style> or <script>, where a break could fall in a string
    for run in _TAG_OR_TEXT.finditer(line):
        text = run.group()
        if _RAW_TEXT_TAG.match(text):
            raw_text = not text.startswith("</")
        if raw_text:
            continue
        if not text.startswith("<"):
            at = run.start() - 1
            while (at := line.find(" ", at + 1, run.end())) >= 0:
                between_words.append(at)
        elif not text.startswith("<!"):
            between_attributes += (
                run.start() + blank.start(1)
                for blank in _UNQUOTED_BLANK.finditer(text)
                if blank.group(1)
            )
    return between_attributes, between_words


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProjectError(path, f"not UTF-8 text: save the file as UTF-8 ({exc.reason})") from exc


def _jinja(env: Environment, source: str, path: Path, first_line: int) -> Template:
    """Compile a Jinja source that starts at `first_line` of `path`, checking the sandbox rules."""
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise ProjectError(
            path, f"Jinja syntax error: {exc.message}", first_line + exc.lineno - 1
        ) from exc
    for line, problem in sandbox_violations(tree):
        raise ProjectError(path, problem, first_line + line - 1)
    return template_of(env, source)


def _compiled(env: Environment, source: str, path: Path, what: str) -> Template:
    try:
        return template_of(env, source)
    except TemplateSyntaxError as exc:
        raise ProjectError(
            path,
            f"{what} is not valid Jinja: {exc.message}; keep {{% %}} tags around whole elements",
        ) from exc


def _mjml_to_html(markup: str, protected: Protected, path: Path, body_line: int) -> str:
    try:
        return mjml2html(markup)
    except ValueError as exc:
        message = str(exc)
        line = None
        position = _MJML_POSITION.search(message)
        if position:
            # mrml counts bytes.
            chars = len(markup.encode()[: int(position.group(1))].decode(errors="ignore"))
            line = body_line + protected.original_line(chars)
        raise ProjectError(
            path,
            f"MJML does not compile: {message}; check that every tag is closed and that text "
            "writes '<' as '&lt;'",
            line,
        ) from exc


def _check_tags_survived(
    protected: Protected, counts: list[int], path: Path, body_line: int
) -> None:
    for tag, count in zip(protected.tags, counts, strict=True):
        if count == 0 or (tag.is_statement and count > 1):
            fate = "was dropped" if count == 0 else f"came out {count} times"
            line = body_line + protected.original.count("\n", 0, tag.offset)
            raise ProjectError(
                path,
                f"the Jinja tag {tag.source} {fate} when compiling MJML and inlining CSS: "
                "keep Jinja tags in text, attribute values, or around whole components",
                line,
            )
