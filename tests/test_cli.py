"""The `mailpulse` command: bad projects are refused with file, line and reason."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailpulse.cli import app
from tests.e2e.conftest import write_project

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", smtp_port=2525)


def test_validate_accepts_a_good_project(project: Path) -> None:
    result = runner.invoke(app, ["validate", str(project)])
    assert result.exit_code == 0, result.output
    # The project's two templates and the built-in confirmation email.
    assert "3 templates, 2 journeys, 0 segments, 2 topics" in result.output


def test_validate_accepts_the_demo_shop() -> None:
    shop = Path(__file__).resolve().parents[1] / "examples" / "shop"
    result = runner.invoke(app, ["validate", str(shop)])
    assert result.exit_code == 0, result.output
    assert "10 templates, 8 journeys, 2 segments, 4 topics" in result.output


def test_journey_typo_names_file_line_and_fix(project: Path) -> None:
    (project / "journeys" / "welcome.yaml").write_text(
        "trigger:\n  event: Signed Up\nstpes:\n  - send: welcome\n"
    )
    result = runner.invoke(app, ["validate", str(project)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "welcome.yaml:3" in out and "steps" in out


def test_template_reaching_python_internals_is_refused(project: Path) -> None:
    (project / "templates" / "reminder.html").write_text(
        "---\nsubject: hi\n---\n<p>{{ ''.__class__.__mro__[1].__subclasses__() }}</p>\n"
    )
    result = runner.invoke(app, ["validate", str(project)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "reminder.html:4" in out


def test_unknown_config_key_names_its_line(project: Path) -> None:
    toml = project / "mailpulse.toml"
    toml.write_text(toml.read_text().replace("max_connections = 8", "max_conections = 8"))
    result = runner.invoke(app, ["validate", str(project)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "mailpulse.toml:" in out and "max_connections" in out


@pytest.mark.parametrize(
    ("table", "line", "reason"),
    [
        ('[[delivery.shaping]]\nmx = "google"\nconnections = 5', 2, "mail hosts' names"),
        ('[[delivery.shaping]]\ndomain = "gmail.com"\nconnections = 0', 3, "at least 1"),
        ("[delivery.limits]\ndaily = 0", 2, "a quota is a number of sends"),
    ],
)
def test_shaping_and_limit_errors_name_their_line(
    project: Path, table: str, line: int, reason: str
) -> None:
    """`line`: of the table's, which follows the file's own and a blank line."""
    toml = project / "mailpulse.toml"
    before = len(toml.read_text().splitlines()) + 1
    toml.write_text(toml.read_text() + "\n" + table + "\n")
    result = runner.invoke(app, ["validate", str(project)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert f"mailpulse.toml:{before + line}" in out and reason in out


def test_serve_refuses_a_bad_project_and_writes_nothing(project: Path, tmp_path: Path) -> None:
    (project / "journeys" / "cart.yaml").write_text(
        "trigger: {event: x}\nsteps:\n  - wait: 5 parsecs\n"
    )
    data = tmp_path / "data"
    result = runner.invoke(app, ["serve", "--project", str(project), "--data", str(data)])
    assert result.exit_code == 2
    assert "cart.yaml:3" in " ".join(result.output.split())
    assert not data.exists()


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_a_scale_out_node_without_a_secret_is_told_where_to_set_one(
    project: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILPULSE_SECRET")
    # Refused before any server is reached: these addresses have none.
    where = ["--store", "postgresql://nobody@127.0.0.1:1/x", "--bus", "nats://127.0.0.1:1"]
    result = runner.invoke(app, [command, "--project", str(project), *where])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "mailpulse.toml: no project secret: set MAILPULSE_SECRET" in said
    assert "[project] secret" in said


def test_dkim_keygen_prints_the_dns_record(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    result = runner.invoke(app, ["dkim", "keygen", "--out", str(key), "--domain", "shop.test"])
    assert result.exit_code == 0, result.output
    assert "mp1._domainkey.shop.test." in result.output and "v=DKIM1; k=rsa; p=" in result.output
    assert key.stat().st_mode & 0o777 == 0o600
    again = runner.invoke(app, ["dkim", "keygen", "--out", str(key)])
    assert again.exit_code == 2 and "exists" in again.output


def test_demo_runs_the_shop_and_mail_arrives(tmp_path: Path) -> None:
    # The README's first command, for a few seconds: server, capture inbox, traffic.
    from tests.e2e.conftest import free_port

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailpulse.cli",
            "demo",
            "--duration",
            "8",
            "--rate",
            "5",
            "--port",
            str(free_port()),
            "--data",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert "/inbox" in result.stdout
    m = re.search(r"(\d+) shop actions sent, (\d+) emails captured", result.stdout)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, result.stdout


def test_migrate_brings_the_schema_up_to_date_once(postgres_dsn: str) -> None:
    first = runner.invoke(app, ["migrate", "--store", postgres_dsn])
    assert first.exit_code == 0, first.output
    assert re.search(r"applied 0001\S*, 0002\S*, 0003", first.output), first.output
    again = runner.invoke(app, ["migrate", "--store", postgres_dsn])
    assert again.exit_code == 0, again.output
    assert "the schema is up to date" in again.output


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["migrate", "--store", "sqlite:///tmp/x.db"], "a postgresql:// URL is needed"),
        (["worker", "--store", "postgresql://db/x"], "needs both --store"),
        (["worker", "--store", "mysql://db/x", "--bus", "nats://n:4222"], "postgresql:// URL"),
        (["serve", "--store", "postgresql://db/x", "--bus", "http://n"], "nats:// URL"),
    ],
)
def test_scale_out_flags_are_checked_before_anything_starts(
    project: Path, args: list[str], reason: str
) -> None:
    if args[0] != "migrate":
        args = [*args, "--project", str(project)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert reason in result.output


@pytest.mark.parametrize("port", ["taken", "70000", "-1"])
def test_a_bad_metrics_port_is_refused_clearly(project: Path, port: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if port == "taken":
            port = str(taken.getsockname()[1])
        args = ["worker", "--project", str(project), "--metrics-port", port]
        result = runner.invoke(
            app, [*args, "--store", "postgresql://db/x", "--bus", "nats://n:4222"]
        )
    assert result.exit_code == 2
    assert "--metrics-port" in result.output
