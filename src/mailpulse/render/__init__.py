"""Templates compiled once per version (MJML, inlined CSS, text part) and rendered per recipient."""

from mailpulse.render.library import TemplateLibrary
from mailpulse.render.template import CompiledTemplate

__all__ = ["CompiledTemplate", "TemplateLibrary"]
