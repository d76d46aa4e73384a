"""[tracking] and [conversions] in mailpulse.toml: defaults, and mistakes named with their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpulse.audience.segments import DefinitionError
from mailpulse.campaigns import campaign_from_data
from mailpulse.errors import ProjectError
from mailpulse.project import load_project
from tests.e2e.conftest import write_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", smtp_port=2525)


def add(project: Path, toml: str) -> None:
    path = project / "mailpulse.toml"
    path.write_text(path.read_text() + "\n" + toml)


def last_line_of(project: Path, needle: str) -> int:
    lines = (project / "mailpulse.toml").read_text().splitlines()
    return max(n for n, line in enumerate(lines, 1) if needle in line)


def test_tracking_is_on_by_default_at_the_project_url_and_conversions_are_off(
    project: Path,
) -> None:
    loaded = load_project(project)
    assert loaded.tracking.base == "https://shop.test"
    assert loaded.tracking.opens and loaded.tracking.clicks
    assert not loaded.tracking.transactional
    assert loaded.machines.scanner_window == 10.0 and loaded.machines.apple_ranges is None
    assert loaded.conversion is None


def test_tracking_and_conversions_as_configured(project: Path) -> None:
    (project / "apple.csv").write_text("172.224.224.0/27,GB,GB-EN,London,\n")
    add(
        project,
        '[tracking]\nopens = false\ndomain = "https://t.shop.test/"\ntransactional = true\n'
        'scanner_window = "3s"\napple_proxy_ranges = "apple.csv"\n\n'
        '[conversions]\nevent = "Order Completed"\nrevenue = "total"\nwithin = "2d"\n',
    )
    loaded = load_project(project)
    assert loaded.tracking.base == "https://t.shop.test"
    assert loaded.tracking.own == ("https://t.shop.test", "https://shop.test")
    assert not loaded.tracking.opens and loaded.tracking.transactional
    assert loaded.machines.scanner_window == 3.0
    assert loaded.machines.apple_ranges == project / "apple.csv"
    assert loaded.conversion is not None
    assert (loaded.conversion.event, loaded.conversion.revenue) == ("Order Completed", "total")
    assert loaded.conversion.within == 2 * 86400


@pytest.mark.parametrize(
    ("toml", "needle", "message"),
    [
        ('[tracking]\ndomain = "t.shop.test"\n', "domain =", "not where tracked links"),
        ('[tracking]\ndomain = "https://t.shop.test/?x=1"\n', "domain =", "without"),
        ('[tracking]\nscanner_window = "soon"\n', "scanner_window", "not a duration"),
        ('[tracking]\napple_proxy_ranges = "none.csv"\n', "apple_proxy_ranges", "no file"),
        ("[tracking]\nopen = true\n", "open =", "did you mean 'opens'"),
        ('[conversions]\nevent = "Order Completed"\nwithin = "x"\n', "within", "not a duration"),
        ('[conversions]\nevent = "Order Completed"\nrevenue = " "\n', "revenue", "property"),
    ],
)
def test_mistakes_name_their_line(project: Path, toml: str, needle: str, message: str) -> None:
    add(project, toml)
    with pytest.raises(ProjectError) as err:
        load_project(project)
    assert message in str(err.value)
    assert err.value.line == last_line_of(project, needle)


def test_an_ab_test_counts_the_projects_conversion_when_it_names_none(project: Path) -> None:
    add(project, '[conversions]\nevent = "Order Completed"\nwithin = "2d"\n')
    loaded = load_project(project)
    data = {
        "id": "sale",
        "template": "welcome",
        "audience": "all",
        "ab_test": {
            "variants": [{"id": "a"}, {"id": "b", "subject": "B"}],
            "test_share": 0.5,
            "wait": "1h",
            "winner_by": "conversions",
        },
    }
    made = campaign_from_data(
        data, templates=["welcome"], segments=(), now=1.0, conversion=loaded.conversion
    )
    assert made.ab_test is not None and made.ab_test.conversion == loaded.conversion
    with pytest.raises(DefinitionError, match=r"\[conversions\]"):
        campaign_from_data(data, templates=["welcome"], segments=(), now=1.0)
