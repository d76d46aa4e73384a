"""The YAML front matter at the top of a template: subject and preheader, with their lines."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import yaml

from mailpulse.errors import ProjectError

KNOWN_KEYS = ("subject", "preheader")
_FENCE = "---"


@dataclass(frozen=True, slots=True)
class FrontMatter:
    """A template file split into its front matter fields and its body.

    Lines are 1-based lines of the file, so errors in a field or the body can name them.
    """

    subject: str
    subject_line: int
    preheader: str
    preheader_line: int
    body: str
    body_line: int


def split_front_matter(path: Path, source: str) -> FrontMatter:
    lines = source.removeprefix("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].strip() != _FENCE:
        raise ProjectError(
            path,
            "missing front matter: start the file with a '---' line, then 'subject: ...', "
            "then another '---' line",
            1,
        )
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == _FENCE), None)
    if end is None:
        raise ProjectError(path, "front matter is not closed: add a '---' line after it", 1)
    fields = _parse_fields(path, "".join(lines[1:end]))
    if "subject" not in fields:
        raise ProjectError(path, "front matter has no subject: add 'subject: \"...\"'", 1)
    subject, subject_line = fields["subject"]
    if not subject.strip():
        raise ProjectError(
            path, "subject is empty: write the subject line after 'subject:'", subject_line
        )
    preheader, preheader_line = fields.get("preheader", ("", 0))
    return FrontMatter(
        subject=subject,
        subject_line=subject_line,
        preheader=preheader,
        preheader_line=preheader_line,
        body="".join(lines[end + 1 :]),
        body_line=end + 2,
    )


def _parse_fields(path: Path, text: str) -> dict[str, tuple[str, int]]:
    """Each known key's text value and file line (the front matter starts on line 2)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 2 if mark is not None else 1
        raise ProjectError(path, f"front matter is not valid YAML: {exc.problem}", line) from exc
    if root is None:
        raise ProjectError(path, "front matter is empty: add 'subject: \"...\"'", 1)
    if not isinstance(root, yaml.MappingNode):
        raise ProjectError(
            path,
            "front matter must be 'key: value' lines (subject, preheader)",
            root.start_mark.line + 2,
        )
    fields: dict[str, tuple[str, int]] = {}
    for key_node, value_node in root.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        line = key_node.start_mark.line + 2
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(key), KNOWN_KEYS, n=1)
            hint = (
                f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(KNOWN_KEYS)}"
            )
            raise ProjectError(path, f"unknown front matter key '{key}': {hint}", line)
        if key in fields:
            raise ProjectError(path, f"'{key}' is given twice", line)
        if not isinstance(value_node, yaml.ScalarNode):
            raise ProjectError(
                path, f"'{key}' must be text, in quotes if it holds ':' or '{{'", line
            )
        fields[key] = (value_node.value, value_node.start_mark.line + 2)
    return fields
