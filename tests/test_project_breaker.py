"""[breaker] in mailpulse.toml: the defaults, and each mistake refused with its line."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from mailpulse.errors import ProjectError
from mailpulse.policy.breaker import BreakerSettings
from mailpulse.project import load_project
from tests.test_project_tracking import add, last_line_of
from tests.test_project_tracking import project as project  # the fixture


def test_the_defaults_are_the_providers_lines(project: Path) -> None:
    assert load_project(project).breaker == BreakerSettings(
        alert=Fraction(1, 1000), pause=Fraction(3, 1000), window=86400.0, min_sends=2000
    )


def test_a_breaker_table_is_read(project: Path) -> None:
    add(project, '[breaker]\nalert = "0.05%"\npause = "0.2%"\nwindow = "12h"\nmin_sends = 500')
    assert load_project(project).breaker == BreakerSettings(
        alert=Fraction(1, 2000), pause=Fraction(1, 500), window=43200.0, min_sends=500
    )


@pytest.mark.parametrize(
    ("written", "key", "message"),
    [
        ('alert = "0.1"', "alert", "write a percentage, e.g. '0.3%'"),
        ("pause = 0.3", "pause", "write a percentage"),
        ('pause = "0%"', "pause", "more than 0 %"),
        ('pause = "120%"', "pause", "at most 100 %"),
        ('alert = "0.5%"', "alert", "0.5% is above pause (0.3%)"),
        ('window = "soon"', "window", "not a duration"),
        ('window = "10m"', "window", "give from '1h' to '30d'"),
        ('window = "60d"', "window", "give from '1h' to '30d'"),
        ("min_sends = 0", "min_sends", "at least 1"),
        ('min_sends = "many"', "min_sends", "Expected `int`"),
        ("pauze = '0.3%'", "pauze", "did you mean 'pause'?"),
    ],
)
def test_mistakes_name_their_line(project: Path, written: str, key: str, message: str) -> None:
    add(project, f"[breaker]\n{written}\n")
    with pytest.raises(ProjectError) as refused:
        load_project(project)
    assert refused.value.line == last_line_of(project, key)
    assert message in refused.value.message
