"""Bounce classification rules: data, compiled once, with built-in defaults.

The rules live in a TOML file (`bounce_rules.toml` beside this module is the default; its
header says how they read). Mechanism here, policy in the file: which words mean "no such
user" and which statuses mean "mailbox full" change without a change of code. A file with
a mistake is refused whole, with the line of what is wrong.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from mailpulse.errors import ProjectError

HARD, SOFT = "hard", "soft"
PROJECT_FILE = "bounce_rules.toml"  # a project's own rules, beside its mailpulse.toml
_STATUS_PATTERN = re.compile(r"^([245X])\.(\d{1,3}|\*)\.(\d{1,3}|\*)$")
_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


class _ReasonEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    decision: Literal["hard", "soft"]
    implies: str = ""
    status: list[str] = msgspec.field(default_factory=list)
    text: list[str] = msgspec.field(default_factory=list)
    not_status: list[str] = msgspec.field(default_factory=list)
    any_stage: list[str] = msgspec.field(default_factory=list)


class _Patterns(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    headers: list[str] = msgspec.field(default_factory=list)
    sender: list[str] = msgspec.field(default_factory=list)
    subject: list[str] = msgspec.field(default_factory=list)
    text: list[str] = msgspec.field(default_factory=list)


class _StageEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: str
    text: list[str]
    yields_to_status: bool = False


class _RulesFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: list[_ReasonEntry] = msgspec.field(default_factory=list)
    stage: list[_StageEntry] = msgspec.field(default_factory=list)
    auto_reply: _Patterns = msgspec.field(default_factory=_Patterns)
    bounce: _Patterns = msgspec.field(default_factory=_Patterns)
    delay: _Patterns = msgspec.field(default_factory=_Patterns)
    transient: _Patterns = msgspec.field(default_factory=_Patterns)


@dataclass(frozen=True)
class Stage:
    """A stage of the SMTP conversation a server's words place a refusal at."""

    reason: str
    yields_to_status: bool
    text: re.Pattern[str]


@dataclass(frozen=True)
class Reason:
    name: str
    decision: str
    implies: str
    status: re.Pattern[str] | None
    text: re.Pattern[str] | None
    not_status: re.Pattern[str] | None = None
    any_stage: re.Pattern[str] | None = None

    def decides_at_any_stage(self, *texts: str) -> bool:
        """Whether `texts` hold words of this reason that a `[[stage]]` does not overrule."""
        return self.any_stage is not None and any(self.any_stage.search(t) for t in texts)


def _status_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = []
    for pattern in patterns:
        m = _STATUS_PATTERN.match(pattern)
        assert m is not None  # checked at load
        klass, subject, detail = m.groups()
        parts.append(
            r"\.".join(
                (
                    "[245]" if klass == "X" else klass,
                    r"\d{1,3}" if subject == "*" else subject,
                    r"\d{1,3}" if detail == "*" else detail,
                )
            )
        )
    return re.compile(rf"^(?:{'|'.join(parts)})$") if parts else None


def _any(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.MULTILINE)


class BounceRules:
    """Compiled rules: `reason_for` picks a bounce's reason; `auto_reply` and `looks_bounced`
    say what a message without a report is."""

    def __init__(
        self,
        reasons: Sequence[Reason],
        stages: Sequence[Stage],
        source: _RulesFile,
    ) -> None:
        self.source = source  # as written: what a project's own rules are put before
        auto_reply, bounce, delay = source.auto_reply, source.bounce, source.delay
        self._transient_text = _any(source.transient.text)
        self.reasons = tuple(reasons)
        self._stages = tuple(stages)
        self._by_name = {r.name: r for r in reasons}
        self._by_text = [r for r in reasons if r.text is not None]
        self._by_status = [r for r in reasons if r.status is not None]
        self._auto_headers = _any(auto_reply.headers)
        self._auto_subject = _any(auto_reply.subject)
        self._bounce_sender = _any(bounce.sender)
        self._bounce_subject = _any(bounce.subject)
        self._delay_subject = _any(delay.subject)
        self._delay_text = _any(delay.text)

    def reason_for(self, status: str, *texts: str) -> Reason | None:
        """The first reason whose words are in the first of `texts` (the server's reply, then
        the report's words around it); else the first whose status pattern `status` matches;
        else None."""
        for text in texts:
            for reason in self._by_text:
                assert reason.text is not None
                if reason.not_status is not None and reason.not_status.match(status):
                    continue
                if reason.text.search(text):
                    return reason
        if status:
            for reason in self._by_status:
                assert reason.status is not None
                if reason.status.match(status):
                    return reason
        return None

    def named(self, name: str) -> Reason:
        """The reason called `name` (a stage's: checked to exist when the rules load)."""
        return self._by_name[name]

    def stage(self, *texts: str) -> Stage | None:
        """The stage a refusal before the recipient was heard, or after it was taken, was
        made at (see `[[stage]]` in the rules file); None when the words do not say."""
        for stage in self._stages:
            if any(stage.text.search(text) for text in texts):
                return stage
        return None

    def auto_reply(self, headers: dict[str, str], subject: str) -> bool:
        """Whether headers (lower-cased names) or subject mark an automatic reply."""
        if self._auto_headers is not None:
            lines = "\n".join(f"{name}: {value}" for name, value in headers.items())
            if self._auto_headers.search(lines):
                return True
        return self._auto_subject is not None and bool(self._auto_subject.search(subject))

    def looks_bounced(self, sender: str, subject: str) -> bool:
        """Whether a message with no delivery-status part reads as a bounce in words."""
        local = sender.rpartition("@")[0] or sender
        if self._bounce_sender is not None and self._bounce_sender.search(local):
            return True
        return self._bounce_subject is not None and bool(self._bounce_subject.search(subject))

    def said_transient(self, *texts: str) -> bool:
        """Whether the words say the failures were temporary, though the sender gave up."""
        pattern = self._transient_text
        return pattern is not None and any(pattern.search(text) for text in texts)

    def only_delayed(self, subject: str, text: str) -> bool:
        """Whether a bounce in words says the message is late, not lost."""
        return any(
            pattern is not None and pattern.search(where)
            for pattern, where in ((self._delay_subject, subject), (self._delay_text, text))
        )


def load_rules(text: str, path: Path | str, over: BounceRules | None = None) -> BounceRules:
    """Rules from TOML text; ProjectError naming the line of the first problem. With `over`
    (the built-in rules), the file's reasons and patterns come first and its reasons replace
    those of the same name: a project extends the defaults without restating them."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ProjectError(path, f"not valid TOML: {exc}", int(m.group(1)) if m else None) from exc
    try:
        parsed = msgspec.convert(raw, _RulesFile)
    except msgspec.ValidationError as exc:
        raise ProjectError(path, f"bounce rules: {exc}", _line_of_error(text, str(exc))) from exc
    reasons: list[Reason] = []
    for entry in parsed.reason:
        reasons.append(_reason(entry, {r.name for r in reasons}, text, path))
    if over is not None:
        parsed = _before(parsed, over.source)
        own = {r.name for r in reasons}
        reasons += [r for r in over.reasons if r.name not in own]
    seen = {r.name for r in reasons}
    stages = []
    for stage in parsed.stage:
        for pattern in stage.text:
            if problem := _regex_problem(pattern):
                raise ProjectError(path, f"[[stage]] {pattern!r}: {problem}", _line(text, pattern))
        if stage.reason not in seen:
            where = _assignment_line(text, "reason", stage.reason)
            raise ProjectError(path, f"[[stage]] reason {stage.reason!r} is no [[reason]]", where)
        compiled = _any(stage.text)
        if compiled is not None:
            stages.append(Stage(stage.reason, stage.yields_to_status, compiled))
    sections = {
        "auto_reply": parsed.auto_reply,
        "bounce": parsed.bounce,
        "delay": parsed.delay,
        "transient": parsed.transient,
    }
    for section, patterns in sections.items():
        for pattern in (*patterns.headers, *patterns.sender, *patterns.subject, *patterns.text):
            if problem := _regex_problem(pattern):
                raise ProjectError(
                    path, f"[{section}] {pattern!r}: {problem}", _line(text, pattern)
                )
    return BounceRules(reasons, stages, parsed)


def _before(own: _RulesFile, base: _RulesFile) -> _RulesFile:
    names = {r.name for r in own.reason}

    def joined(mine: _Patterns, theirs: _Patterns) -> _Patterns:
        return _Patterns(
            headers=mine.headers + theirs.headers,
            sender=mine.sender + theirs.sender,
            subject=mine.subject + theirs.subject,
            text=mine.text + theirs.text,
        )

    return _RulesFile(
        reason=own.reason + [r for r in base.reason if r.name not in names],
        stage=own.stage + base.stage,
        auto_reply=joined(own.auto_reply, base.auto_reply),
        bounce=joined(own.bounce, base.bounce),
        delay=joined(own.delay, base.delay),
        transient=joined(own.transient, base.transient),
    )


def _reason(entry: _ReasonEntry, seen: set[str], text: str, path: Path | str) -> Reason:
    where = _assignment_line(text, "name", entry.name)

    def fail(why: str, near: str | None = None) -> ProjectError:
        line = _line(text, near, after=where) if near else where
        return ProjectError(path, f"[[reason]] {entry.name!r}: {why}", line)

    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", entry.name):
        raise fail("a name is lower-case letters, digits, - and _")
    if entry.name in seen:
        raise fail("named twice; give each reason one entry")
    if not entry.status and not entry.text and not entry.any_stage:
        raise fail("give the status codes or the text it matches")
    if entry.implies and not _STATUS.match(entry.implies):
        raise fail(f"implies {entry.implies!r} is not a status like 5.1.1", entry.implies)
    for pattern in (*entry.status, *entry.not_status):
        if not _STATUS_PATTERN.match(pattern):
            raise fail(f"status {pattern!r}: write e.g. 5.1.1, X.2.2 or 5.7.*", pattern)
    for key, patterns in (("text", entry.text), ("any_stage", entry.any_stage)):
        for pattern in patterns:
            if problem := _regex_problem(pattern):
                raise fail(f"{key} {pattern!r}: {problem}", pattern)
    # Words that decide at any stage are the reason's words at every other time too.
    status, words = _status_regex(entry.status), _any(entry.any_stage + entry.text)
    unless = _status_regex(entry.not_status)
    anywhere = _any(entry.any_stage)
    return Reason(entry.name, entry.decision, entry.implies, status, words, unless, anywhere)


def _regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    return None


def _line_of_error(text: str, message: str) -> int | None:
    """The line a msgspec error's path (`$.reason[2].decision`, `$.bounce.subject[0]`)
    points at: the table (the n-th of an array of tables), then its key."""
    found = re.search(r"at `\$\.(\w+)(?:\[(\d+)\])?(?:\.(\w+))?", message)
    unknown = re.search(r"unknown field `(\w+)`", message)
    if found is None:  # at the top level: an unknown table
        table, index, key = (unknown.group(1) if unknown else ""), 0, None
    else:
        table, index, key = found.group(1), int(found.group(2) or 0), found.group(3)
        key = key or (unknown.group(1) if unknown else None)
    if not table:
        return None
    header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(?:#.*)?$")
    starts = [n for n, line in enumerate(text.splitlines(), start=1) if header.match(line)]
    if index >= len(starts):
        return starts[0] if starts else None
    start = starts[index]
    if key is not None:
        for n, line in enumerate(text.splitlines()[start:], start=start + 1):
            if re.match(r"^\s*\[", line):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", line):
                return n
    return start


def _assignment_line(text: str, key: str, value: str) -> int | None:
    """The first line that sets `key` to the string `value`, however it is spaced or quoted
    (`name = "x"`, `name="x"`, `name = 'x'`)."""
    assigned = re.compile(rf"""^\s*{re.escape(key)}\s*=\s*(["']){re.escape(value)}\1""")
    for n, line in enumerate(text.splitlines(), start=1):
        if assigned.match(line):
            return n
    return None


def _line(text: str, needle: str | None, after: int | None = None) -> int | None:
    """The line (from `after` on) where `needle` is written, quoted if it is so anywhere."""
    if not needle:
        return None
    lines = list(enumerate(text.splitlines(), start=1))[(after or 1) - 1 :]
    for wanted in (f"'{needle}'", f'"{needle}"', needle):
        for n, line in lines:
            if wanted in line:
                return n
    return after


def project_rules(project_dir: Path) -> BounceRules:
    """The rules of a project: its `bounce_rules.toml` put before the built-in rules, or the
    built-in rules alone when it has none. ProjectError (file, line, why) for a bad file."""
    path = project_dir / PROJECT_FILE
    return rules_file(path) if path.is_file() else builtin_rules()


def rules_file(path: Path) -> BounceRules:
    """The rules file at `path` put before the built-in rules. ProjectError (file, line,
    why) for a bad file, or one that cannot be read (missing, not UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(path, f"cannot read the bounce rules: {exc}") from exc
    return load_rules(text, path, over=builtin_rules())


@cache
def builtin_rules() -> BounceRules:
    source = resources.files("mailpulse.feedback").joinpath("bounce_rules.toml")
    return load_rules(source.read_text(encoding="utf-8"), str(source))
