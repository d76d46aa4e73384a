"""The classifier against 291 real bounces and complaints (tests/fixtures/bounces: a copy of
../shared/fixtures/bounces, under its BSD licence, with what Sisimai's own tests expect of
each): prints how far they agree, and holds the figures reached so far as a floor. Issue 8
raises them."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from mailpulse.feedback.classify import Kind, classify_bytes

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"


def test_agreement_with_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    expected: dict[str, list[dict[str, str]]] = defaultdict(list)
    with (CORPUS / "expected.tsv").open(newline="") as rows:
        for row in csv.DictReader(rows, delimiter="\t"):
            expected[row["file"]].append(row)
    rows = status_ok = hard_ok = arf = arf_ok = 0
    disagree = []
    for name, wanted in sorted(expected.items()):
        result = classify_bytes((CORPUS / name).read_bytes())
        for row in wanted:
            rows += 1
            if row["reason"] == "feedback":
                arf += 1
                ok = result.kind == Kind.COMPLAINT and result.feedback_type == row["feedback_type"]
                arf_ok += ok
                status_ok += ok
                hard_ok += ok
                if not ok:
                    disagree.append(f"{name}: {result.kind} {result.feedback_type!r}, not ARF")
                continue
            n = int(row["n"])
            got = result.recipients[n] if n < len(result.recipients) else None
            status = got.status if got else ""
            hard = "1" if got is not None and got.decision == "hard" else "0"
            status_ok += status == row["status"]
            hard_ok += hard == row["hard"]
            if status != row["status"] or hard != row["hard"]:
                why = f"{got.reason} {got.decision}" if got else result.kind
                disagree.append(
                    f"{name}#{n}: {status or '-'} ({why}), expected {row['status'] or '-'} "
                    f"({row['reason']}, hard={row['hard']})"
                )
    with capsys.disabled():
        print(
            f"\nbounce corpus: status {status_ok}/{rows} ({status_ok / rows:.1%}), "
            f"hard/soft {hard_ok}/{rows} ({hard_ok / rows:.1%}), "
            f"ARF with feedback type {arf_ok}/{arf}; {len(disagree)} rows disagree:"
        )
        for line in disagree:
            print(f"  {line}")
    assert status_ok / rows >= 0.78
    assert hard_ok / rows >= 0.90
    assert arf_ok >= 20
