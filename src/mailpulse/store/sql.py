"""Named SQL blocks, listmonk style: `-- name: get-contact` starts a block.

Queries live in one `.sql` file per backend and are loaded once at start, so a missing query
fails at boot, not in the middle of the night.
"""

from __future__ import annotations

import re
from importlib.resources import files

_NAME = re.compile(r"^--\s*name:\s*([\w-]+)\s*$", re.MULTILINE)


class Queries(dict[str, str]):
    """Query text by name; a missing name raises KeyError naming the file."""

    def __init__(self, source: str, origin: str) -> None:
        super().__init__()
        self.origin = origin
        parts = _NAME.split(source)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            self[name] = body.strip()

    def __missing__(self, name: str) -> str:
        raise KeyError(f"no query named {name!r} in {self.origin}")


def load_queries(package: str, filename: str) -> Queries:
    text = files(package).joinpath(filename).read_text(encoding="utf-8")
    return Queries(text, f"{package}/{filename}")
