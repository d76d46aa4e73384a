"""Alert rules: the built-in ones (`builtin_alerts.yaml`) and a project's `alerts.yaml`.

    notifiers:
      ops:
        webhook: https://hooks.example.com/mailpulse   # POST JSON; timeout and retries optional
        timeout: 5s
        retries: 3
      oncall:
        email: [oncall@example.com]                      # through the project's [smtp] relay
    notify: [log, ops]           # the targets of every rule that names none (default: [log])
    rules:
      bounce_rate:               # a built-in rule: only the keys given change
        threshold: 2%
      backlog_age:
        enabled: false           # turned off
      fold_errors:               # a rule of the project's own
        expr: rate(mailpulse_errors_total{stage="fold"})
        window: 5m
        op: ">"
        threshold: 0
        for: 1m
        severity: critical
        notify: [ops, oncall]

A rule holds when `expr` over the last `window` (value(): now) compares with `threshold` by
`op`; after it has held for `for` (default 0) it fires, once, and resolves, once, when it
holds no more.
`min_count` (ratio, quantile) leaves a rule unjudged while the window holds fewer of what its
figure is made of (sends for a ratio, observations for a quantile): five bounces of ten sends
say little. Thresholds are numbers, percentages (`5%`) or durations (`500ms`, `30m`).
Every problem is a ProjectError naming the file, the line and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from yaml.nodes import MappingNode, Node, ScalarNode

from mailpulse.delivery.address import parse_address
from mailpulse.observe.alerts_expr import Expr, ExprError, parse_expr
from mailpulse.policy.breaker import BreakerSettings
from mailpulse.units import parse_duration
from mailpulse.yamlnodes import NodeReader, compose, is_null, suggest

ALERTS_FILE = "alerts.yaml"
BUILTIN_FILE = Path(__file__).with_name("builtin_alerts.yaml")
LOG = "log"  # the notifier every project has: mailpulse's own log
SAMPLER_SPAN = 900.0  # seconds of history the metric sampler keeps: the longest window
OPS = (">", ">=", "<", "<=")
SEVERITIES = ("info", "warning", "critical")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_RULE_KEYS = (
    "summary",
    "expr",
    "window",
    "op",
    "threshold",
    "for",
    "min_count",
    "severity",
    "notify",
    "enabled",
)
_COUNTED = ("ratio", "quantile")  # the figures min_count applies to


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    timeout: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class EmailTarget:
    to: tuple[str, ...]
    retries: int = 3


Target = WebhookTarget | EmailTarget


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: Expr
    op: str
    threshold: float
    window: float
    severity: str = "warning"
    for_: float = 0.0
    min_count: float = 0.0
    summary: str = ""
    notify: tuple[str, ...] = (LOG,)
    # How people read the threshold, and so the value: 0.05 as "5%", 0.5 as "500ms".
    shown_as: Literal["percent", "duration", "number"] = "number"


@dataclass(frozen=True)
class AlertRules:
    rules: tuple[AlertRule, ...] = ()
    notifiers: Mapping[str, Target] = field(default_factory=dict)


def load_alert_rules(project_dir: Path, breaker: BreakerSettings) -> AlertRules:
    """The built-in rules changed by the project's alerts.yaml (when it has one), checked."""
    builtin = _File.read(BUILTIN_FILE)
    path = project_dir / ALERTS_FILE
    own = _File.read(path) if path.is_file() else None
    top = own.reader.mapping(own.root, ALERTS_FILE, ("notifiers", "notify", "rules")) if own else {}
    notifiers: dict[str, Target] = {}
    if own is not None and (node := own.reader.optional(top, "notifiers")) is not None:
        for key, value in own.reader.pairs(node, "notifiers"):
            notifiers[_name(own.reader, key, "a notifier")] = _target(own.reader, key, value)
    default_notify: tuple[str, ...] = (LOG,)
    if own is not None and (node := own.reader.optional(top, "notify")) is not None:
        default_notify = _notify(own.reader, node, notifiers)
    # Each key of each rule, with the file it was written in.
    written: dict[str, dict[str, tuple[_File, Node]]] = {}
    lines: dict[str, tuple[_File, Node]] = {}
    for file in (builtin, own):
        if file is None:
            continue
        entries = file.reader.mapping(file.root, file.path.name, ("notifiers", "notify", "rules"))
        node = file.reader.optional(entries, "rules")
        if node is None:
            continue
        for key, value in file.reader.pairs(node, "rules"):
            name = _name(file.reader, key, "a rule")
            lines.setdefault(name, (file, key))  # where a missing key is reported
            keys = file.reader.mapping(value, f"rule {name!r}", _RULE_KEYS, _EXAMPLE)
            written.setdefault(name, {}).update((k, (file, v)) for k, v in keys.items())
    rules = []
    for name, keys in written.items():
        rule = _rule(name, keys, lines[name], breaker, default_notify, notifiers)
        if rule is not None:
            rules.append(rule)
    return AlertRules(tuple(rules), notifiers)


_EXAMPLE = """  bounce_rate:
    threshold: 2%"""


@dataclass(frozen=True)
class _File:
    path: Path
    root: Node
    reader: NodeReader

    @classmethod
    def read(cls, path: Path) -> _File:
        root, reader = compose(path.read_text(encoding="utf-8"), path)
        # An empty file changes nothing.
        return cls(path, root or MappingNode("tag:yaml.org,2002:map", []), reader)


def _name(reader: NodeReader, node: Node, what: str) -> str:
    name = reader.text(node, f"the name of {what}")
    if not _NAME.match(name):
        reader.fail(node, f"{name!r}: name {what} with lower-case letters, digits, _ and -")
    if what == "a notifier" and name == LOG:
        reader.fail(node, f"{LOG!r} is mailpulse's own log, always there: name this one else")
    return name


def _target(reader: NodeReader, key: Node, node: Node) -> Target:
    name = key.value
    entries = reader.mapping(
        node,
        f"notifier {name!r}",
        ("webhook", "email", "timeout", "retries"),
        "  ops:\n    webhook: https://hooks.example.com/mailpulse",
    )
    kinds = [k for k in ("webhook", "email") if k in entries]
    if len(kinds) != 1:
        reader.fail(node, f"notifier {name!r} takes one of `webhook: <url>` or `email: <address>`")
    retries = 3
    if (retries_node := reader.optional(entries, "retries")) is not None:
        retries = reader.value(retries_node)
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
            reader.fail(retries_node, f"retries: a whole number from 0 to 10, not {retries!r}")
    if kinds == ["email"]:
        if "timeout" in entries:
            reader.fail(entries["timeout"], "timeout is a webhook's: mail takes [smtp] timeout")
        return EmailTarget(_addresses(reader, entries["email"]), retries)
    url_node = entries["webhook"]
    url = reader.text(url_node, "webhook")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        reader.fail(url_node, f"webhook: an http:// or https:// URL, not {url!r}")
    timeout = 5.0
    if (timeout_node := reader.optional(entries, "timeout")) is not None:
        timeout = _duration(reader, timeout_node, "timeout")
        if not 0 < timeout <= 60:
            reader.fail(timeout_node, "timeout: from '100ms' to '60s' (say '5s')")
    return WebhookTarget(url, timeout, retries)


def _addresses(reader: NodeReader, node: Node) -> tuple[str, ...]:
    nodes = [node] if isinstance(node, ScalarNode) else reader.sequence(node, "email", "[a@b.c]")
    if not nodes:
        reader.fail(node, "email: give at least one address")
    addresses = []
    for item in nodes:
        written = reader.text(item, "an email address")
        try:
            address = parse_address(written)[1]
        except ValueError:
            reader.fail(item, f"not an email address: {written!r} (write e.g. ops@example.com)")
        addresses.append(address)
    return tuple(addresses)


def _notify(reader: NodeReader, node: Node, notifiers: Mapping[str, Target]) -> tuple[str, ...]:
    names = []
    for item in reader.sequence(node, "notify", "[log, ops]"):
        name = reader.text(item, "a notifier's name")
        if name != LOG and name not in notifiers:
            reader.fail(item, f"no notifier {name!r}: {suggest(name, [LOG, *notifiers])}")
        if name in names:
            reader.fail(item, f"{name!r} is named twice: keep one")
        names.append(name)
    return tuple(names)


def _duration(reader: NodeReader, node: Node, key: str) -> float:
    try:
        return parse_duration(reader.value(node))
    except ValueError as exc:
        reader.fail(node, f"{key}: {exc}")


def _threshold(
    reader: NodeReader, node: Node
) -> tuple[float, Literal["percent", "duration", "number"]]:
    value = reader.value(node)
    if isinstance(value, bool):
        reader.fail(node, f"threshold: a number, a percentage or a duration, not {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            reader.fail(node, f"threshold: a finite number, not {value!r}")
        return float(value), "number"
    if isinstance(value, str):
        if m := _PERCENT.match(value):
            return float(m.group(1)) / 100, "percent"
        try:
            return parse_duration(value), "duration"
        except ValueError:
            pass
    reader.fail(
        node, f"threshold: a number, a percentage ('5%') or a duration ('500ms'), not {value!r}"
    )


def _rule(
    name: str,
    keys: Mapping[str, tuple[_File, Node]],
    at: tuple[_File, Node],
    breaker: BreakerSettings,
    default_notify: tuple[str, ...],
    notifiers: Mapping[str, Target],
) -> AlertRule | None:
    def get(key: str) -> tuple[NodeReader, Node] | None:
        found = keys.get(key)
        if found is None or is_null(found[1]):
            return None
        return found[0].reader, found[1]

    if (enabled := get("enabled")) is not None:
        on = enabled[0].value(enabled[1])
        if not isinstance(on, bool):
            enabled[0].fail(enabled[1], f"enabled: true or false, not {on!r}")
        if not on:
            return None
    file, key_node = at
    if (expr_at := get("expr")) is None:
        file.reader.fail(
            key_node,
            f"rule {name!r} has no `expr`: say what it measures, e.g. "
            'ratio(mailpulse_emails_total{status="bounced"}, '
            'mailpulse_emails_total{status=~"sent|bounced"})',
        )
    reader, node = expr_at
    try:
        expr = parse_expr(reader.text(node, "expr"))
    except ExprError as exc:
        reader.fail(node, f"expr: {exc}")
    is_breaker = expr.function == "breaker"
    window = breaker.window if is_breaker else 0.0
    # A gauge's value() is read as it is now: how long it must hold is `for`.
    windowless = is_breaker or expr.function == "value"
    if (window_at := get("window")) is not None:
        if is_breaker:
            window_at[0].fail(window_at[1], "window: breaker() judges [breaker] window")
        if windowless:
            window_at[0].fail(
                window_at[1], "window: value() reads the gauge as it is now; hold it with `for`"
            )
        window = _duration(*window_at, "window")
        if not 2 <= window <= SAMPLER_SPAN:
            window_at[0].fail(
                window_at[1], "window: from '2s' to '15m' (the metric sampler keeps 15 minutes)"
            )
    elif not windowless:
        file.reader.fail(key_node, f"rule {name!r} has no `window`: say how far back, e.g. 5m")
    op = ">"
    if (op_at := get("op")) is not None:
        op = op_at[0].value(op_at[1])
        if op not in OPS:
            op_at[0].fail(op_at[1], f"op: one of {', '.join(OPS)} (quoted), not {op!r}")
    threshold_at = get("threshold")
    shown_as: Literal["percent", "duration", "number"]
    if threshold_at is not None:
        threshold, shown_as = _threshold(*threshold_at)
    elif is_breaker:
        threshold, shown_as = float(breaker.alert), "percent"
    else:
        file.reader.fail(key_node, f"rule {name!r} has no `threshold`: e.g. 5%, 500ms or 10")
    for_ = 0.0
    if (for_at := get("for")) is not None:
        for_ = _duration(*for_at, "for")
        if for_ > 86400:
            for_at[0].fail(for_at[1], "for: at most a day ('1d')")
    min_count = float(breaker.min_sends) if is_breaker else 0.0
    if (count_at := get("min_count")) is not None:
        count = count_at[0].value(count_at[1])
        if expr.function not in _COUNTED:
            count_at[0].fail(
                count_at[1], f"min_count: only ratio and quantile have one, not {expr.function}"
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            count_at[0].fail(count_at[1], f"min_count: a whole number, 0 or more, not {count!r}")
        min_count = float(count)
    severity = "warning"
    if (severity_at := get("severity")) is not None:
        severity = severity_at[0].value(severity_at[1])
        if severity not in SEVERITIES:
            severity_at[0].fail(
                severity_at[1], f"severity: one of {', '.join(SEVERITIES)}, not {severity!r}"
            )
    summary = ""
    if (summary_at := get("summary")) is not None:
        summary = summary_at[0].text(summary_at[1], "summary")
    notify = default_notify
    if (notify_at := get("notify")) is not None:
        notify = _notify(*notify_at, notifiers)
    return AlertRule(
        name=name,
        expr=expr,
        op=op,
        threshold=threshold,
        window=window,
        severity=severity,
        for_=for_,
        min_count=min_count,
        summary=summary,
        notify=notify,
        shown_as=shown_as,
    )
