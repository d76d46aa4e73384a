"""The metric expressions of alert rules: a small, PromQL-like language over named metrics.

    rate(mailpulse_errors_total)                          per second, over the rule's window
    increase(mailpulse_emails_total{status="bounced"})    how much a counter grew in the window
    ratio(mailpulse_emails_total{status="bounced"},
          mailpulse_emails_total{status=~"sent|bounced"}) the growth of one over the other's
    quantile(0.99, mailpulse_event_to_smtp_seconds)       of what a histogram saw in the window
    value(mailpulse_outbox_backlog_seconds)               a gauge's latest value
    breaker()                                             the complaint rate of marketing as the
                                                          protective breaker judges it

A selector names one sample (a counter's `_total`, a gauge, a histogram's `_count`, `_sum` or
`_bucket`) and matches labels as PromQL does: `label="value"`, or `label=~"a|b"` for any of
several values (only alternatives of plain values: no other regular expression). Series that
match are summed. Names and labels are checked against the metrics mailpulse has, so a typo is
an error at load, not an alert that never fires.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

from mailpulse.observe.metrics import Metrics
from mailpulse.yamlnodes import suggest

Function = Literal["rate", "increase", "ratio", "quantile", "value", "breaker"]
_ARGUMENTS: dict[str, str] = {
    "rate": "rate(<counter>)",
    "increase": "increase(<counter>)",
    "ratio": "ratio(<counter>, <counter>)",
    "quantile": "quantile(<0 to 1>, <histogram>)",
    "value": "value(<gauge>)",
    "breaker": "breaker()",
}
_TOKEN = re.compile(
    r"(?:(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
    r'|(?P<text>"[^"\\\n]*")|(?P<op>=~|[(){},=]))'
)
_PLAIN_VALUE = re.compile(r"^[^|\\^$.*+?()\[\]{}]*$")


class ExprError(ValueError):
    """What is wrong with an expression, and at which character (from 1)."""


@dataclass(frozen=True)
class Selector:
    name: str
    # label -> the values any of which matches, in the order written
    labels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def matches(self) -> Iterator[dict[str, str]]:
        """Each exact label set to sum over (one per combination of alternatives)."""
        names = [label for label, _ in self.labels]
        for values in itertools.product(*(values for _, values in self.labels)):
            yield dict(zip(names, values, strict=True))

    def __str__(self) -> str:
        if not self.labels:
            return self.name
        shown = (
            f'{label}="{values[0]}"' if len(values) == 1 else f'{label}=~"{"|".join(values)}"'
            for label, values in self.labels
        )
        return f"{self.name}{{{', '.join(shown)}}}"


@dataclass(frozen=True)
class Expr:
    function: Function
    selectors: tuple[Selector, ...] = ()
    q: float | None = None  # quantile only

    def __str__(self) -> str:
        args = [*([] if self.q is None else [repr(self.q)]), *map(str, self.selectors)]
        return f"{self.function}({', '.join(args)})"


@dataclass(frozen=True)
class _Sample:
    kind: Literal["counter", "gauge", "histogram"]
    labels: frozenset[str] | None  # None: not known, not checked


@cache
def known_samples() -> Mapping[str, _Sample]:
    """Every sample name mailpulse's metrics have, with its kind and label names."""
    metrics = Metrics()
    metrics.watch_couriers(list)
    labelled = {
        wrapper._name: frozenset(wrapper._labelnames)
        for wrapper in vars(metrics).values()
        if hasattr(wrapper, "_labelnames") and hasattr(wrapper, "_name")
    }
    samples: dict[str, _Sample] = {}
    for family in metrics.registry.collect():
        labels = labelled.get(family.name, frozenset() if family.samples else None)
        if family.type == "counter":
            samples[family.name + "_total"] = _Sample("counter", labels)
        elif family.type == "gauge":
            samples[family.name] = _Sample("gauge", labels)
        elif family.type == "histogram":
            samples[family.name] = _Sample("histogram", labels)
            for suffix in ("_count", "_sum"):
                samples[family.name + suffix] = _Sample("counter", labels)
            samples[family.name + "_bucket"] = _Sample(
                "counter", None if labels is None else labels | {"le"}
            )
    return samples


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos == len(text):
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ExprError(f"unexpected {text[pos]!r} at character {pos + 1}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), pos + 1))
            pos = m.end()
        self.at = 0

    def peek(self) -> tuple[str, str, int]:
        if self.at < len(self.tokens):
            return self.tokens[self.at]
        return ("end", "", len(self.text) + 1)

    def take(self, kind: str, value: str | None = None, wanted: str = "") -> str:
        got_kind, got, column = self.peek()
        if got_kind != kind or (value is not None and got != value):
            shown = "the end" if got_kind == "end" else repr(got)
            raise ExprError(f"expected {wanted or repr(value)} at character {column}, not {shown}")
        self.at += 1
        return got

    def expr(self) -> Expr:
        column = self.peek()[2]
        function = self.take("name", wanted="a function (rate, ratio, quantile, ...)")
        if function not in _ARGUMENTS:
            raise ExprError(
                f"unknown function {function!r} at character {column}: expected one of "
                f"{', '.join(_ARGUMENTS)}"
            )
        self.take("op", "(")
        q = None
        if function == "quantile":
            q = float(self.take("number", wanted="the quantile, a number from 0 to 1"))
            if not 0 <= q <= 1:
                raise ExprError(f"a quantile is from 0 to 1, not {q}: 0.99 is the p99")
            self.take("op", ",")
        selectors = []
        if self.peek()[1] != ")":
            selectors.append(self.selector())
            while self.peek()[1] == ",":
                self.take("op", ",")
                selectors.append(self.selector())
        self.take("op", ")")
        if self.peek()[0] != "end":
            raise ExprError(f"unexpected {self.peek()[1]!r} at character {self.peek()[2]}")
        wanted = {"ratio": 2, "breaker": 0}.get(function, 1)
        if len(selectors) != wanted:
            raise ExprError(f"{function} takes {_ARGUMENTS[function]}")
        return Expr(function, tuple(selectors), q)  # type: ignore[arg-type]

    def selector(self) -> Selector:
        name = self.take("name", wanted="a metric name")
        labels: list[tuple[str, tuple[str, ...]]] = []
        if self.peek()[1] == "{":
            self.take("op", "{")
            while self.peek()[1] != "}":
                column = self.peek()[2]
                label = self.take("name", wanted="a label name")
                if any(label == seen for seen, _ in labels):
                    raise ExprError(f"label {label!r} twice at character {column}: keep one")
                op = self.take("op", wanted="= or =~")
                if op not in ("=", "=~"):
                    raise ExprError(f"expected = or =~ after {label!r}, not {op!r}")
                column = self.peek()[2]
                value = self.take("text", wanted='a quoted value, "like this"')[1:-1]
                values = tuple(value.split("|")) if op == "=~" else (value,)
                if op == "=~" and not all(_PLAIN_VALUE.match(v) for v in values):
                    raise ExprError(
                        f"=~ at character {column} takes plain values joined by |, like "
                        '"sent|bounced", not a regular expression'
                    )
                labels.append((label, values))
                if self.peek()[1] != "}":
                    self.take("op", ",", wanted="',' or '}'")
            self.take("op", "}")
        return Selector(name, tuple(labels))


def parse_expr(text: str) -> Expr:
    """An expression checked against mailpulse's metrics. Raises ExprError naming the fix."""
    expr = _Parser(text).expr()
    for selector in expr.selectors:
        _check(expr.function, selector)
    return expr


def _check(function: str, selector: Selector) -> None:
    samples = known_samples()
    name = selector.name
    sample = samples.get(name)
    if sample is None:
        raise ExprError(f"no metric {name!r}: {suggest(name, samples)}")
    if function == "quantile" and sample.kind != "histogram":
        raise ExprError(f"quantile needs a histogram, and {name} is not one")
    if function in ("rate", "increase", "ratio") and sample.kind != "counter":
        hint = f" (a histogram's count is {name}_count)" if sample.kind == "histogram" else ""
        raise ExprError(f"{function} needs a counter, and {name} is a {sample.kind}{hint}")
    if function == "value" and sample.kind == "histogram":
        raise ExprError(f"value needs a gauge or a counter; for {name} use quantile")
    for label, values in selector.labels:
        if sample.labels is not None and label not in sample.labels:
            raise ExprError(f"{name} has no label {label!r}: {suggest(label, sample.labels)}")
        if function == "quantile" and len(values) > 1:
            raise ExprError("quantile takes exact labels (=), not alternatives (=~)")
