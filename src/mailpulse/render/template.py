"""A template compiled once per version and rendered per recipient with Jinja alone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import Template
from jinja2.sandbox import SecurityError

from mailpulse.errors import RenderError
from mailpulse.render.subject import subject_template
from mailpulse.render.tracking import NO_TRACKING, Marks, Tracker
from mailpulse.types import RenderedContent

PREHEADER_VARIABLE = "_preheader"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")


class CompiledTemplate:
    """One template version: `version` changes whenever any of its source files changes.
    `tracked_html` is `html` with its links and open pixel marked (`marks`), for a tracked
    message (see mailpulse.render.links)."""

    __slots__ = (
        "_html",
        "_marks",
        "_preheader",
        "_subject",
        "_text",
        "_tracked_html",
        "name",
        "version",
    )

    def __init__(
        self,
        *,
        name: str,
        version: str,
        subject: Template,
        preheader: Template | None,
        html: Template,
        text: Template,
        tracked_html: Template | None = None,
        marks: Marks | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self._subject = subject
        self._preheader = preheader
        self._html = html
        self._text = text
        self._tracked_html = tracked_html
        self._marks = marks

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.name!r}, version={self.version!r})"

    def render(
        self,
        context: Mapping[str, Any],
        subject: str | None = None,
        tracker: Tracker = NO_TRACKING,
    ) -> RenderedContent:
        """Subject, preheader, HTML and text for one recipient; any failure is a RenderError.
        `subject`: a subject line (Jinja) instead of the template's own; `tracker`: what its
        links and open pixel become (by default they stay as written, and no pixel)."""
        try:
            lines = self._subject if subject is None else subject_template(subject)
            subject = _one_line(lines.render(context))
            preheader = _one_line(self._preheader.render(context)) if self._preheader else ""
            if tracker.tracks and self._tracked_html is not None and self._marks is not None:
                html = self._tracked_html.render(context, **{PREHEADER_VARIABLE: preheader})
                html = tracker.fill(html, self._marks)
            else:
                html = self._html.render(context, **{PREHEADER_VARIABLE: preheader})
            text = _EXTRA_BLANK_LINES.sub("\n\n", self._text.render(context)).strip() + "\n"
        except SecurityError as exc:
            raise RenderError(f"template '{self.name}' broke the sandbox: {exc}") from exc
        except Exception as exc:
            raise RenderError(
                f"template '{self.name}' failed: {type(exc).__name__}: {exc}"
            ) from exc
        return RenderedContent(subject=subject, html=html, text=text, preheader=preheader)


def _one_line(text: str) -> str:
    """Header-safe: every run of whitespace, line breaks included, becomes one space."""
    return _CONTROL.sub("", " ".join(text.split()))
