"""mailpulse.toml: every mistake names the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpulse.errors import ProjectError
from mailpulse.project import load_config, load_project
from tests.e2e.conftest import write_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", smtp_port=2525)


def edit(project: Path, old: str, new: str) -> None:
    toml = project / "mailpulse.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new))


def line_of(project: Path, needle: str) -> int:
    lines = (project / "mailpulse.toml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


def test_a_good_project_loads(project: Path) -> None:
    loaded = load_project(project)
    assert loaded.config.project.name == "Testshop"
    assert loaded.durations.retry_schedule == (1.0,)
    assert loaded.sender_domain == "shop.test"
    assert set(loaded.journeys) == {"welcome", "cart"}


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        (
            "max_connections = 8",
            "max_conections = 8",
            "max_conections",
            "did you mean 'max_connections'",
        ),
        ('max_age = "1h"', 'max_age = "1 fortnight"', "max_age", "not a duration"),
        ("port = 2525", 'port = "twenty"', "port =", "Expected `int`"),
        ('from = "Testshop <hello@shop.test>"', 'from = "nobody"', "from =", "not an address"),
        ("[smtp]", "[smtpp]", "[smtpp]", "did you mean 'smtp'"),
        (
            "max_connections = 8",
            'max_connections = 8\nusername = "u"',
            "starttls",
            "AUTH would send the password in clear",
        ),
        ("max_connections = 8", "max_connections = 0", "max_connections", "at least 1"),
    ],
)
def test_config_errors_name_the_line(
    project: Path, old: str, new: str, needle: str, message: str
) -> None:
    edit(project, old, new)
    with pytest.raises(ProjectError) as err:
        load_project(project)
    assert err.value.path.name == "mailpulse.toml"
    assert err.value.line == line_of(project, needle)
    assert message in err.value.message


def test_broken_toml_names_its_line(project: Path) -> None:
    edit(project, 'name = "Testshop"', 'name = "Testshop')
    with pytest.raises(ProjectError) as err:
        load_config(project)
    assert err.value.line == line_of(project, 'name = "Testshop')


def test_missing_dkim_key_says_how_to_make_one(project: Path) -> None:
    (project / "dkim" / "key.pem").unlink()
    with pytest.raises(ProjectError, match="mailpulse dkim keygen"):
        load_project(project)


def test_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no mailpulse\.toml"):
        load_project(tmp_path)
