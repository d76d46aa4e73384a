"""Classification rules are data: the built-in file loads, a project's own file is checked
with errors that name the line, and its reasons decide before the built-in ones."""

from __future__ import annotations

import pytest

from mailpulse.errors import ProjectError
from mailpulse.feedback.classify import classify_bytes
from mailpulse.feedback.rules import BounceRules, builtin_rules, load_rules
from tests.feedback.builders import postfix_dsn

RETURNED = b"From: hello@shop.test\r\nTo: ana@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"


def test_the_built_in_rules_load_and_every_reason_has_a_decision() -> None:
    rules = builtin_rules()
    names = [r.name for r in rules.reasons]
    assert len(names) == len(set(names)) > 20
    assert {r.decision for r in rules.reasons} == {"hard", "soft"}
    assert {r.name for r in rules.reasons if r.decision == "hard"} == {
        "userunknown",
        "hostunknown",
        "hasmoved",
        "notaccept",
    }


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[[reason]]\nname = "x"\ndecision = "maybe"\ntext = ["a"]\n', 3, "decision"),
        (
            '[[reason]]\nname = "x"\ndecision = "soft"\ntext = ["a"]\n\n'
            '[[reason]]\nname = "y"\ntext = ["b"]\ncolour = "red"\n',
            9,
            "colour",
        ),
        ('[[stage]]\nreason = "blocked"\ntext = ["a"]\nyields_to_status = "yes"\n', 4, "bool"),
        (
            '[[reason]]\nname = "x"\ndecision = "soft"\nnot_status = ["5.x.1"]\ntext = ["a"]\n',
            4,
            "5.x.1",
        ),
        ("[transient]\ntext = ['(']\n", 2, "regular"),
        ('[[reason]]\nname = "x"\ndecision = "soft"\n', 2, "give the status codes or the text"),
        ('[[reason]]\nname = "x"\ndecision = "soft"\nstatus = ["5.1"]\n', 4, "'5.1'"),
        ('[[reason]]\nname = "x"\ndecision = "soft"\ntext = ["(unclosed"]\n', 4, "regular"),
        ('[[reason]]\nname = "x"\ndecision = "soft"\nany_stage = ["a", "["]\n', 4, "any_stage"),
        ('[[reason]]\nname = "x"\ndecision = "soft"\nimplies = "9.9"\ntext = ["a"]\n', 4, "9.9"),
        (
            '[[reason]]\nname = "x"\ndecision = "soft"\ntext = ["a"]\n'
            '[[reason]]\nname = "x"\ndecision = "hard"\ntext = ["b"]\n',
            2,
            "named twice",
        ),
        ('[[stage]]\nreason = "nope"\ntext = ["a"]\n', 2, "no [[reason]]"),
        ("[auto_reply]\nsubject = ['[']\n", 2, "regular"),
        ("[reason\n", 1, "not valid TOML"),
        ("\n[frobnicate]\n", 2, "frobnicate"),
    ],
)
def test_a_bad_rules_file_is_refused_with_its_line(
    text: str, line: int | None, message: str
) -> None:
    with pytest.raises(ProjectError) as caught:
        load_rules(text, "bounce_rules.toml")
    assert message in caught.value.message
    assert caught.value.line == line


def test_a_projects_own_reason_decides_before_the_built_in_ones() -> None:
    own = load_rules(
        '[[reason]]\nname = "greylisted"\ndecision = "soft"\ntext = ["greylist"]\n',
        "bounce_rules.toml",
        over=builtin_rules(),
    )
    dsn = postfix_dsn(
        RETURNED,
        to="bounces-x@shop.test",
        recipient="ana@example.com",
        diagnostic="550 5.1.1 user unknown (greylisted)",
    )
    assert classify_bytes(dsn).recipients[0].reason == "userunknown"
    assert classify_bytes(dsn, own).recipients[0].reason == "greylisted"
    # The built-in ones still stand behind it.
    other = dsn.replace(b" (greylisted)", b"")
    assert classify_bytes(other, own).recipients[0].reason == "userunknown"
    assert len(own.reasons) == len(builtin_rules().reasons) + 1


def test_a_projects_words_for_any_stage_decide_where_a_stage_would_overrule_them() -> None:
    def rules(key: str) -> BounceRules:
        text = (
            f'[[reason]]\nname = "closed"\ndecision = "hard"\n{key} = ["account closed for good"]\n'
        )
        return load_rules(text, "bounce_rules.toml", over=builtin_rules())

    dsn = postfix_dsn(
        RETURNED,
        to="bounces-x@shop.test",
        recipient="ana@example.com",
        status="5.0.0",
        diagnostic="550 account closed for good (in reply to DATA command)",
    )
    (as_text,) = classify_bytes(dsn, rules("text")).recipients
    assert (as_text.reason, as_text.decision) == ("filtered", "soft")
    (any_stage,) = classify_bytes(dsn, rules("any_stage")).recipients
    assert (any_stage.reason, any_stage.decision) == ("closed", "hard")
