"""Reading a YAML file as nodes, so every error can name the line it is about.

Scalars follow JSON rather than YAML 1.1: only `true`/`false` are booleans (a country code
`NO` stays text) and dates stay text, because filters compare them with event properties that
arrived as JSON.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailpulse.errors import ProjectError

_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_NULL = "tag:yaml.org,2002:null"


class _JsonLikeLoader(yaml.SafeLoader):
    pass


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_JsonLikeLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def suggest(word: str, choices: Collection[str]) -> str:
    """The fix for a word that is not one of `choices`: the closest one, or the list."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"expected one of: {', '.join(sorted(choices))}" if choices else "none are defined"


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


class NodeReader:
    """One file's nodes: typed access that raises `ProjectError` at the offending line."""

    def __init__(self, path: Path, loader: yaml.SafeLoader) -> None:
        self.path = path
        self._loader = loader

    def fail(self, node: Node, message: str) -> NoReturn:
        raise ProjectError(self.path, message, line_of(node))

    def mapping(
        self, node: Node, what: str, allowed: Collection[str], example: str = ""
    ) -> dict[str, Node]:
        """`node` as {key: value node}; unknown and repeated keys are errors."""
        if not isinstance(node, MappingNode):
            fix = f", e.g.\n{example}" if example else ""
            self.fail(node, f"{what} must be a mapping of `key: value` lines{fix}")
        entries: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, f"a key in {what} must be a plain name")
            key = key_node.value
            if key in entries:
                self.fail(key_node, f"{key!r} appears twice in {what}: keep one")
            if key not in allowed:
                self.fail(key_node, f"unknown key {key!r} in {what}: {suggest(key, allowed)}")
            entries[key] = value_node
        return entries

    def pairs(self, node: Node, what: str) -> list[tuple[Node, Node]]:
        """`node` as (key node, value node) pairs with free-form keys, each key once."""
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping of `key: value` lines")
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, f"a key in {what} must be a plain name")
            if key_node.value in seen:
                self.fail(key_node, f"{key_node.value!r} appears twice in {what}: keep one")
            seen.add(key_node.value)
        return list(node.value)

    def sequence(self, node: Node, what: str, example: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{what} must be a list of `- ...` items, e.g.\n{example}")
        return list(node.value)

    def value(self, node: Node) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            self.fail(node, f"not a plain value: {getattr(error, 'problem', None) or error}")

    def text(self, node: Node, what: str) -> str:
        value = self.value(node)
        if not isinstance(value, str) or not value.strip():
            self.fail(node, f"{what} must be a text, not {value!r}")
        return value

    def optional(self, entries: Mapping[str, Node], key: str) -> Node | None:
        """The value node of `key`, or None when it is absent or left empty."""
        node = entries.get(key)
        return None if node is None or is_null(node) else node

    def required(self, entries: Mapping[str, Node], key: str, parent: Node, fix: str) -> Node:
        node = self.optional(entries, key)
        if node is None:
            self.fail(parent, f"missing `{key}`: {fix}")
        return node


def compose(text: str, path: Path) -> tuple[Node | None, NodeReader]:
    """The root node of `text` (None for an empty file) and a reader for its nodes."""
    loader = _JsonLikeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        detail = " ".join(str(part) for part in (error.context, error.problem) if part)
        start = error.context_mark
        if start and mark and start.line != mark.line:
            detail += f" (it began on line {start.line + 1})"
        raise ProjectError(
            path,
            f"YAML syntax error: {detail} (check the indentation, and quote values that "
            "contain ': ' or ' #')",
            mark.line + 1 if mark else None,
        ) from None
    except yaml.YAMLError as error:
        raise ProjectError(path, f"not readable as YAML: {error}") from None
    return root, NodeReader(path, loader)
