"""alerts.yaml: the built-in rules, a project changing, turning off and adding rules, and each
mistake refused with its file, line and reason (at load, so by `mailpulse validate` and at
start); the expression language round-trips and refuses anything else with a reason."""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mailpulse.cli import app
from mailpulse.errors import ProjectError
from mailpulse.observe.alerts_expr import Expr, ExprError, Selector, parse_expr
from mailpulse.observe.alerts_rules import (
    BUILTIN_FILE,
    AlertRules,
    EmailTarget,
    WebhookTarget,
    load_alert_rules,
)
from mailpulse.policy.breaker import BreakerSettings
from tests.e2e.conftest import write_project

DEFAULTS = BreakerSettings()
BUILTIN = ["event_to_smtp_p99", "bounce_rate", "complaint_rate", "smtp_error_rate", "backlog_age"]


def rules_of(tmp_path: Path, text: str | None, breaker: BreakerSettings = DEFAULTS) -> AlertRules:
    if text is not None:
        (tmp_path / "alerts.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return load_alert_rules(tmp_path, breaker)


def test_without_alerts_yaml_the_builtin_rules_tell_the_log(tmp_path: Path) -> None:
    loaded = rules_of(tmp_path, None)
    assert [r.name for r in loaded.rules] == BUILTIN
    assert all(r.notify == ("log",) for r in loaded.rules)
    bounce = loaded.rules[1]
    assert (bounce.op, bounce.threshold, bounce.window, bounce.min_count) == (">=", 0.05, 900, 50)
    assert str(bounce.expr) == (
        'ratio(mailpulse_emails_total{status="bounced"}, '
        'mailpulse_emails_total{status=~"sent|bounced"})'
    )


def test_the_complaint_rule_is_the_breakers_judgement(tmp_path: Path) -> None:
    breaker = BreakerSettings(alert=Fraction(1, 2000), window=7200.0, min_sends=500)
    complaint = next(
        r for r in rules_of(tmp_path, None, breaker).rules if r.name == "complaint_rate"
    )
    assert (complaint.threshold, complaint.window, complaint.min_count) == (0.0005, 7200.0, 500)
    assert (complaint.op, complaint.shown_as, str(complaint.expr)) == (">=", "percent", "breaker()")
    changed = rules_of(tmp_path, "rules:\n  complaint_rate:\n    threshold: 0.08%\n", breaker)
    assert next(r for r in changed.rules if r.name == "complaint_rate").threshold == 0.0008


def test_a_project_changes_turns_off_and_adds_rules(tmp_path: Path) -> None:
    loaded = rules_of(
        tmp_path,
        """\
        notifiers:
          ops:
            webhook: https://hooks.example.com/mailpulse
            timeout: 2s
            retries: 5
          oncall:
            email: [oncall@example.com, "Night Desk <night@example.com>"]
        notify: [log, ops]
        rules:
          bounce_rate:
            threshold: 2%
            window: 5m
          backlog_age:
            enabled: false
          fold_errors:
            expr: rate(mailpulse_errors_total{stage="fold"})
            window: 1m
            threshold: 0
            for: 30s
            severity: critical
            notify: [oncall]
        """,
    )
    by_name = {r.name: r for r in loaded.rules}
    assert list(by_name) == [*BUILTIN[:4], "fold_errors"]
    bounce = by_name["bounce_rate"]
    assert (bounce.threshold, bounce.window, bounce.min_count) == (0.02, 300, 50)  # rest kept
    assert bounce.notify == ("log", "ops")  # the file's default
    errors = by_name["fold_errors"]
    assert (errors.op, errors.for_, errors.severity, errors.notify) == (
        ">",
        30,
        "critical",
        ("oncall",),
    )
    assert loaded.notifiers == {
        "ops": WebhookTarget("https://hooks.example.com/mailpulse", 2.0, 5),
        "oncall": EmailTarget(("oncall@example.com", "night@example.com")),
    }


def test_an_empty_alerts_yaml_changes_nothing(tmp_path: Path) -> None:
    assert [r.name for r in rules_of(tmp_path, "").rules] == BUILTIN


BAD = [
    ("rules: [bounce_rate]\n", 1, "rules must be a mapping"),
    ("rulez: {}\n", 1, "unknown key 'rulez' in alerts.yaml: did you mean 'rules'?"),
    ("rules:\n  bounce_rate:\n    treshold: 2%\n", 3, "unknown key 'treshold'"),
    ("rules:\n  bounce_rate:\n    threshold: lots\n", 3, "threshold: a number, a percentage"),
    ("rules:\n  bounce_rate:\n    threshold: true\n", 3, "threshold: a number"),
    ("rules:\n  bounce_rate:\n    threshold: .inf\n", 3, "a finite number"),
    ("rules:\n  bounce_rate:\n    op: '=>'\n", 3, "op: one of >, >=, <, <="),
    ("rules:\n  bounce_rate:\n    window: 1h\n", 3, "from '2s' to '15m'"),
    ("rules:\n  bounce_rate:\n    window: 1s\n", 3, "from '2s' to '15m'"),
    ("rules:\n  bounce_rate:\n    window: soon\n", 3, "window: not a duration"),
    ("rules:\n  bounce_rate:\n    for: 2d\n", 3, "for: at most a day"),
    ("rules:\n  bounce_rate:\n    severity: page\n", 3, "severity: one of info, warning, critical"),
    ("rules:\n  bounce_rate:\n    min_count: -1\n", 3, "min_count: a whole number"),
    ("rules:\n  bounce_rate:\n    enabled: no\n", 3, "enabled: true or false"),
    ("rules:\n  bounce_rate:\n    notify: [pager]\n", 3, "no notifier 'pager'"),
    ("rules:\n  bounce_rate:\n    notify: [log, log]\n", 3, "'log' is named twice"),
    ("rules:\n  bounce_rate:\n    notify: log\n", 3, "notify must be a list"),
    ("rules:\n  complaint_rate:\n    window: 5m\n", 3, "breaker() judges [breaker] window"),
    ("rules:\n  backlog_age:\n    min_count: 5\n", 3, "only ratio and quantile have one"),
    ("rules:\n  backlog_age:\n    window: 5m\n", 3, "value() reads the gauge as it is now"),
    (
        "rules:\n  bounce_rate:\n    expr: rate(mailpulse_email_total)\n",
        3,
        "expr: no metric 'mailpulse_email_total': did you mean 'mailpulse_emails_total'?",
    ),
    ("rules:\n  mine:\n    window: 1m\n    threshold: 1\n", 2, "rule 'mine' has no `expr`"),
    (
        "rules:\n  mine:\n    expr: rate(mailpulse_errors_total)\n    threshold: 1\n",
        2,
        "rule 'mine' has no `window`",
    ),
    (
        "rules:\n  mine:\n    expr: rate(mailpulse_errors_total)\n    window: 1m\n",
        2,
        "rule 'mine' has no `threshold`",
    ),
    ("rules:\n  Bounce Rate:\n    enabled: false\n", 2, "name a rule with lower-case letters"),
    ("rules:\n  bounce_rate:\n    threshold: 1%\n  bounce_rate: {}\n", 4, "appears twice"),
    ("notifiers:\n  ops:\n    webhook: ftp://x\n", 3, "an http:// or https:// URL"),
    ("notifiers:\n  ops:\n    timeout: 5s\n", 3, "takes one of `webhook: <url>` or `email"),
    (
        "notifiers:\n  ops:\n    webhook: http://a.test\n    email: a@b.test\n",
        3,
        "takes one of",
    ),
    ("notifiers:\n  ops:\n    webhook: http://a.test\n    timeout: 5m\n", 4, "from '100ms'"),
    ("notifiers:\n  ops:\n    webhook: http://a.test\n    retries: 99\n", 4, "from 0 to 10"),
    ("notifiers:\n  ops:\n    email: [not-an-address]\n", 3, "not an email address"),
    ("notifiers:\n  ops:\n    email: []\n", 3, "at least one address"),
    ("notifiers:\n  ops:\n    email: a@b.test\n    timeout: 5s\n", 4, "timeout is a webhook's"),
    ("notifiers:\n  log:\n    webhook: http://a.test\n", 2, "mailpulse's own log"),
    ("notify: [ops]\n", 1, "no notifier 'ops'"),
    ("rules:\n  bounce_rate:\n    threshold: [2%\n", 4, "YAML syntax error"),
]


@pytest.mark.parametrize(("text", "line", "reason"), BAD)
def test_a_mistake_is_refused_with_file_line_and_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    with pytest.raises(ProjectError) as caught:
        rules_of(tmp_path, text)
    assert caught.value.path == tmp_path / "alerts.yaml"
    assert caught.value.line == line, caught.value
    assert reason in caught.value.message


def test_validate_and_start_refuse_a_bad_alerts_yaml(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", 2525)
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(project)])
    assert ok.exit_code == 0 and "5 alert rules" in ok.output
    (project / "alerts.yaml").write_text("rules:\n  bounce_rate:\n    op: '=='\n")
    result = runner.invoke(app, ["validate", str(project)])
    assert result.exit_code != 0
    assert f"{project.resolve() / 'alerts.yaml'}:3" in result.output.replace("\n", "")
    assert "op: one of" in result.output


def test_the_builtin_rules_read_without_a_mistake() -> None:
    assert BUILTIN_FILE.is_file()  # shipped as package data (pyproject: **/*.yaml)


# The expression language: what it writes, it reads back.

names = st.sampled_from(["mailpulse_emails_total", "mailpulse_errors_total"])
values = st.text("abcdefghijklmnopqrstuvwxyz_ 0123456789-", min_size=1, max_size=8)


@st.composite
def selectors(draw: st.DrawFn, counter: bool = True) -> Selector:
    name = draw(names)
    label = "status" if name == "mailpulse_emails_total" else "stage"
    if draw(st.booleans()):
        return Selector(name)
    alternatives = tuple(draw(st.lists(values, min_size=1, max_size=3, unique=True)))
    return Selector(name, ((label, alternatives),))


exprs = st.one_of(
    st.builds(lambda s: Expr("rate", (s,)), selectors()),
    st.builds(lambda s: Expr("increase", (s,)), selectors()),
    st.builds(lambda a, b: Expr("ratio", (a, b)), selectors(), selectors()),
    st.builds(
        lambda q: Expr("quantile", (Selector("mailpulse_event_to_smtp_seconds"),), q),
        st.floats(0, 1),
    ),
    st.just(Expr("breaker")),
    st.just(Expr("value", (Selector("mailpulse_outbox_backlog_seconds"),))),
)


@settings(max_examples=300, deadline=None)
@given(exprs)
def test_an_expression_reads_back_as_written(expr: Expr) -> None:
    assert parse_expr(str(expr)) == expr


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from('ratioquanle(){}=~,"|. 0123_mailpus\n\\x'), max_size=60))
def test_any_text_is_read_or_refused_with_a_reason(text: str) -> None:
    try:
        parse_expr(text)
    except ExprError as exc:
        assert str(exc)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "rate(mailpulse_queue_depth)",
            "rate needs a counter, and mailpulse_queue_depth is a gauge",
        ),
        (
            "rate(mailpulse_event_to_smtp_seconds)",
            "count is mailpulse_event_to_smtp_seconds_count",
        ),
        ("quantile(0.99, mailpulse_emails_total)", "quantile needs a histogram"),
        ("quantile(1.5, mailpulse_event_to_smtp_seconds)", "a quantile is from 0 to 1"),
        ('quantile(0.5, mailpulse_stage_seconds{stage=~"a|b"})', "exact labels"),
        ("value(mailpulse_event_to_smtp_seconds)", "use quantile"),
        ("ratio(mailpulse_emails_total)", "ratio takes ratio(<counter>, <counter>)"),
        ("breaker(mailpulse_emails_total)", "breaker takes breaker()"),
        (
            'rate(mailpulse_emails_total{stauts="sent"})',
            "no label 'stauts': did you mean 'status'?",
        ),
        ('rate(mailpulse_emails_total{status=~"se.t"})', "not a regular expression"),
        ('rate(mailpulse_emails_total{status="a", status="b"})', "label 'status' twice"),
        ("rate(mailpulse_emails_total{status=sent})", 'a quoted value, "like this"'),
        ("rate(mailpulse_emails_total) + 1", "unexpected '+' at character 30"),
        ("avg(mailpulse_emails_total)", "unknown function 'avg'"),
        ("rate(mailpulse_emails_total", "expected ')' at character 28, not the end"),
    ],
)
def test_a_bad_expression_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ExprError) as caught:
        parse_expr(text)
    assert reason in str(caught.value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10_000),
    st.floats(allow_nan=True),
    st.sampled_from(["5%", "500ms", "1m", ">=", "log", "ops", "http://a.test/h", "x@y.test"]),
    st.text(max_size=12),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "rules",
                    "notifiers",
                    "notify",
                    "bounce_rate",
                    "mine",
                    "ops",
                    "expr",
                    "window",
                    "threshold",
                    "op",
                    "for",
                    "webhook",
                    "email",
                    "enabled",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_any_yaml_is_loaded_or_refused_with_a_line(
    tmp_path_factory: object, document: object
) -> None:
    folder = tmp_path_factory.mktemp("alerts")  # type: ignore[attr-defined]
    (folder / "alerts.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        load_alert_rules(folder, DEFAULTS)
    except ProjectError as refused:
        assert refused.path == folder / "alerts.yaml" and refused.message
