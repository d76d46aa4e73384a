"""`mailpulse bounce classify`: a JSON line per message (per recipient when it names several),
errors naming the path, a rules file of the operator's own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from mailpulse.cli import app

MESSAGES = Path(__file__).parent / "messages"
runner = CliRunner()


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_files_and_folders_give_a_line_per_message(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in ("postfix-04.eml", "vacation.eml", "rfc5965-arf.eml"):
        shutil.copy(MESSAGES / name, folder / name)
    (folder / ".hidden").write_text("not a message")
    result = runner.invoke(app, ["bounce", "classify", str(folder), str(MESSAGES / "exim-02.eml")])
    assert result.exit_code == 0, result.output
    got = [
        (Path(d["file"]).name, d.get("n"), d.get("address"), d.get("status"), d["decision"])
        for d in lines(result.stdout)
    ]
    assert got == [
        ("postfix-04.eml", None, "kijitora@example.co.jp", "5.1.1", "hard"),
        ("rfc5965-arf.eml", None, "user@example.com", "", "complaint"),
        ("vacation.eml", None, None, None, "auto-reply"),
        ("exim-02.eml", 0, "kijitora@example.jp", "5.1.1", "hard"),
        ("exim-02.eml", 1, "sabatora@example.jp", "5.2.1", "hard"),
    ]
    first = lines(result.stdout)[0]
    assert (first["smtp_code"], first["action"], first["category"]) == (
        550,
        "failed",
        "userunknown",
    )
    assert lines(result.stdout)[1]["feedback_type"] == "abuse"


def test_a_missing_path_is_named_and_the_rest_still_printed(tmp_path: Path) -> None:
    missing = tmp_path / "nope.eml"
    result = runner.invoke(
        app, ["bounce", "classify", str(missing), str(MESSAGES / "gmail-01.eml")]
    )
    assert result.exit_code == 2
    assert f"error: {missing}: no such file or folder" in result.stderr
    assert [d["decision"] for d in lines(result.stdout)] == ["hard"]


def test_an_operators_rules_file_goes_first_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    own = tmp_path / "rules.toml"
    own.write_text(
        '[[reason]]\nname = "ldapdown"\ndecision = "soft"\ntext = ["address rejected"]\n'
    )
    args = ["bounce", "classify", str(MESSAGES / "postfix-04.eml"), "--rules", str(own)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [(d["category"], d["decision"]) for d in lines(result.stdout)] == [("ldapdown", "soft")]
    own.write_text('[[reason]]\nname = "x"\ndecision = "soft"\ntext = ["("]\n')
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"error: {own}:4: [[reason]] 'x': text '('" in result.stderr


def test_a_projects_rules_are_used_with_project_and_each_status_says_its_source(
    tmp_path: Path,
) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "bounce_rules.toml").write_text(
        '[[reason]]\nname = "ldapdown"\ndecision = "soft"\ntext = ["address rejected"]\n'
    )
    message = str(MESSAGES / "postfix-04.eml")
    [line] = lines(runner.invoke(app, ["bounce", "classify", message]).stdout)
    assert (line["category"], line["status_source"]) == ("userunknown", "reply")
    result = runner.invoke(app, ["bounce", "classify", message, "--project", str(project)])
    assert [(d["category"], d["decision"]) for d in lines(result.stdout)] == [("ldapdown", "soft")]
    (project / "bounce_rules.toml").write_text("[[reason]\n")
    result = runner.invoke(app, ["bounce", "classify", message, "--project", str(project)])
    assert result.exit_code == 2
    assert f"error: {project / 'bounce_rules.toml'}:1: not valid TOML" in result.stderr
