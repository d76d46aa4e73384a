"""Definitions read the same way from a YAML file and from admin API data.

A `Located` is a value together with where it stands: a line of a file, or a JSON Pointer
(RFC 6901) into data. The parser asks it for mappings, lists, texts, counts and durations,
and each check fails with `ProjectError` saying where, so the two sources share every rule and
differ only in how they name a place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from typing import Any, NoReturn

from yaml.nodes import MappingNode, Node

from mailpulse.errors import ProjectError
from mailpulse.units import parse_duration
from mailpulse.yamlnodes import NodeReader, is_null, suggest


class DefinitionError(ProjectError):
    """A bad definition given as data: `pointer` says where in it, `reason` what to fix."""

    def __init__(self, source: str, pointer: str, reason: str) -> None:
        super().__init__(source, f"at {pointer or '/'}: {reason}")
        self.pointer = pointer
        self.reason = reason


class Located(ABC):
    """A value of a definition and the place it stands."""

    @abstractmethod
    def fail(self, message: str) -> NoReturn: ...

    @property
    @abstractmethod
    def is_null(self) -> bool: ...

    @abstractmethod
    def plain(self) -> Any:
        """The value as plain data: dicts, lists, texts, numbers, booleans or None."""

    @abstractmethod
    def pairs(self, what: str, example: str) -> list[tuple[str, Located, Located]]:
        """(key, the key's place, the value) of each entry of a mapping, each key once."""

    @abstractmethod
    def items(self, what: str, example: str) -> list[Located]:
        """The items of a list."""

    def mapping(self, what: str, allowed: Collection[str], example: str) -> dict[str, Located]:
        entries: dict[str, Located] = {}
        for key, key_at, value in self.pairs(what, example):
            if key not in allowed:
                key_at.fail(f"unknown key {key!r} in {what}: {suggest(key, allowed)}")
            entries[key] = value
        return entries

    def text(self, what: str) -> str:
        value = self.plain()
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{what} must be a text, not {value!r}")
        return value

    def choice(self, what: str, choices: Collection[str]) -> str:
        value = self.text(what)
        if value not in choices:
            self.fail(f"unknown {what} {value!r}: {suggest(value, choices)}")
        return value

    def count(self, what: str) -> int:
        value = self.plain()
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{what} must be a whole number, e.g. {what}: 2, not {value!r}")
        if value < 0:
            self.fail(f"{what} cannot be negative ({value})")
        return value

    def duration(self, what: str, *, positive: bool) -> float:
        try:
            seconds = parse_duration(self.plain())
        except ValueError as error:
            self.fail(f"{what}: {error}")
        if positive and seconds <= 0:
            self.fail(f"{what} must be longer than 0s")
        return seconds


class YamlLocated(Located):
    """A node of a YAML file; its place is its line."""

    def __init__(self, reader: NodeReader, node: Node) -> None:
        self._reader = reader
        self._node = node

    def fail(self, message: str) -> NoReturn:
        self._reader.fail(self._node, message)

    @property
    def is_null(self) -> bool:
        return is_null(self._node)

    def plain(self) -> Any:
        return self._reader.value(self._node)

    def pairs(self, what: str, example: str) -> list[tuple[str, Located, Located]]:
        if not isinstance(self._node, MappingNode):
            self.fail(f"{what} must be a mapping of `key: value` lines, e.g. {example}")
        return [
            (key.value, YamlLocated(self._reader, key), YamlLocated(self._reader, value))
            for key, value in self._reader.pairs(self._node, what)
        ]

    def items(self, what: str, example: str) -> list[Located]:
        return [
            YamlLocated(self._reader, item)
            for item in self._reader.sequence(self._node, what, example)
        ]


def _pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class DataLocated(Located):
    """A value in data from the admin API (decoded JSON); its place is a JSON Pointer."""

    def __init__(self, value: Any, source: str, pointer: str = "") -> None:
        self._value = value
        self._source = source
        self._pointer = pointer

    def fail(self, message: str) -> NoReturn:
        raise DefinitionError(self._source, self._pointer, message)

    @property
    def is_null(self) -> bool:
        return self._value is None

    def plain(self) -> Any:
        return self._value

    def _at(self, value: Any, token: str) -> DataLocated:
        return DataLocated(value, self._source, f"{self._pointer}/{token}")

    def pairs(self, what: str, example: str) -> list[tuple[str, Located, Located]]:
        if not isinstance(self._value, Mapping):
            self.fail(f"{what} must be an object, e.g. {example}")
        out: list[tuple[str, Located, Located]] = []
        for key, value in self._value.items():
            if not isinstance(key, str):
                self.fail(f"a key in {what} must be a text, not {key!r}")
            place = self._at(value, _pointer_token(key))
            out.append((key, place, place))
        return out

    def items(self, what: str, example: str) -> list[Located]:
        if not isinstance(self._value, list):
            self.fail(f"{what} must be a list, e.g. {example}")
        return [self._at(item, str(index)) for index, item in enumerate(self._value)]
