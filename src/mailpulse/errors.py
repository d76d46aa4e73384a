"""Errors that reach a person: each says what is wrong and where."""

from __future__ import annotations

from pathlib import Path


class MailpulseError(Exception):
    """Base for every error mailpulse raises on purpose."""


class ProjectError(MailpulseError):
    """A problem in a project file, named by path and (when known) line: `file:line: message`."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class RenderError(MailpulseError):
    """A template failed for one recipient (undefined call, sandbox violation, ...)."""
