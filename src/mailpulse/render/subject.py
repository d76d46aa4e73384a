"""A subject line given apart from its template (a variant of an A/B test): compiled once, in
the sandbox the templates' own subjects run in, and checked by the same rules."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Template, TemplateSyntaxError

from mailpulse.render.sandbox import TEXT_ENV, sandbox_violations, template_of


class SubjectError(ValueError):
    """A subject line that would not render: what is wrong with it."""


@lru_cache(maxsize=256)
def subject_template(source: str) -> Template:
    """The compiled subject line; SubjectError when it is not valid Jinja or breaks the
    sandbox's rules. Cached: every recipient of a variant shares one."""
    try:
        tree = TEXT_ENV.parse(source)
    except TemplateSyntaxError as error:
        raise SubjectError(f"Jinja syntax error: {error.message}") from error
    for _, problem in sandbox_violations(tree):
        raise SubjectError(problem)
    return template_of(TEXT_ENV, source)
