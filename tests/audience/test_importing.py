"""Rows of an import: read from .csv and .ndjson, checked one by one with a reason for each
refusal."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.audience.importing import DUPLICATE, INVALID, ROLE, ImportCheck, Rejected, read_rows


def lines(text: str) -> list[bytes]:
    return [line.encode() for line in text.splitlines(keepends=True)]


def test_csv_rows_carry_their_line_and_fields() -> None:
    text = "email,first_name,plan\nana@example.com,Ana,pro\nbo@example.com,Bo,\n"
    assert list(read_rows("c.csv", lines(text))) == [
        (2, {"email": "ana@example.com", "first_name": "Ana", "plan": "pro"}),
        (3, {"email": "bo@example.com", "first_name": "Bo", "plan": ""}),
    ]


def test_ndjson_rows_skip_blank_lines() -> None:
    text = '{"id": "u1", "email": "a@example.com"}\n\n{"id": 7}\n'
    assert list(read_rows("c.ndjson", lines(text))) == [
        (1, {"id": "u1", "email": "a@example.com"}),
        (3, {"id": 7}),
    ]


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("c.csv", "name,plan\nAna,pro\n", "line 1: the header row must name an `email` or an `id`"),
        ("c.csv", "email\na@example.com,extra\n", "line 2: more values than the header"),
        ("c.ndjson", '{"id": "u1"}\n[1]\n', "line 2: a row is a JSON object"),
        ("c.ndjson", '{"id": "u1"}\n{oops\n', "line 2: not JSON"),
        ("c.xlsx", "x", "import reads .csv"),
    ],
)
def test_unreadable_files_name_the_line(name: str, text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        list(read_rows(name, lines(text)))


def test_each_refused_row_says_why() -> None:
    check = ImportCheck()
    assert check.contact(2, {"email": "Ana@Example.com", "plan": "pro"}) == (
        "ana@example.com",
        {"plan": "pro", "email": "Ana@example.com"},
    )
    assert check.contact(3, {"id": 42, "email": ""}) == ("42", {})
    cases = [
        ({"email": "not an address"}, INVALID, "'not an address'"),
        ({"plan": "pro"}, INVALID, "neither an id nor an email"),
        ({"email": "info@example.com"}, ROLE, "role account"),
        ({"email": "ana@example.com"}, DUPLICATE, "'ana@example.com' is in an earlier row"),
        ({"id": "42"}, DUPLICATE, "'42'"),
        ({"id": [1]}, INVALID, "neither text nor a number"),
    ]
    for row, (fields, kind, reason) in enumerate(cases, start=4):
        outcome = check.contact(row, fields)
        assert isinstance(outcome, Rejected) and (outcome.row, outcome.kind) == (row, kind)
        assert reason in outcome.reason


text_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
    max_size=20,
)


@given(st.lists(st.fixed_dictionaries({"id": text_values, "note": text_values}), max_size=20))
def test_csv_reads_back_what_was_written(rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "note"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    read = [fields for _, fields in read_rows("c.csv", [buffer.getvalue().encode()])]
    assert read == rows


@given(
    st.lists(st.dictionaries(st.sampled_from(["id", "email", "plan"]), text_values), max_size=20)
)
def test_ndjson_reads_back_what_was_written(rows: list[dict[str, str]]) -> None:
    data = [orjson.dumps(row) + b"\n" for row in rows]
    assert [fields for _, fields in read_rows("c.ndjson", data)] == [r for r in rows]


def test_rows_are_stored_as_ingestion_would_have_them() -> None:
    check = ImportCheck()
    assert check.contact(2, {"email": " Bo@Example.com "}) == (
        "bo@example.com",
        {"email": "Bo@example.com"},
    )
    assert check.contact(3, {"id": "u3", "score": float("nan"), "big": 2**80}) == (
        "u3",
        {"score": None, "big": 2**80},
    )
    for row, (fields, reason) in enumerate(
        [
            ({"id": True}, "neither text nor a number"),
            ({"id": "a\x00b"}, "NUL"),
            ({"id": "x" * 2000}, "at most 1024 bytes"),
            ({"id": "u9", "note": "x" * 40_000}, "bytes of traits"),
        ],
        start=4,
    ):
        outcome = check.contact(row, fields)
        assert isinstance(outcome, Rejected) and outcome.kind == INVALID
        assert reason in outcome.reason
