"""Contacts imported from a file or the admin API: each row checked, then upserted.

A row has an `email`, an `id` (the userId), or both, and any other fields as traits. A row
with an id updates that contact; one with only an email updates the contact whose userId is
that address (lower case). Rows are refused, each with its reason, when:

- `invalid`: no usable id or email, or an address that is not one;
- `duplicate`: the same contact as an earlier row of the same import;
- `role`: a role account (postmaster@, info@, ...), which a person does not read and which
  mailbox providers count against senders who mail it.

Upserts are identify calls appended to the log like any other, so profiles, segments and
journeys see an import as they see the contacts' own events.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from mailpulse.audience.profiles import normalize_email
from mailpulse.events.schema import MAX_EVENT_BYTES
from mailpulse.types import Event, EventType

ROLE_ACCOUNTS = frozenset(
    (
        "abuse", "admin", "administrator", "billing", "contact", "devnull", "help",
        "hostmaster", "info", "mailer-daemon", "marketing", "no-reply", "noc", "noreply",
        "postmaster", "root", "sales", "security", "support", "webmaster",
    )
)  # fmt: skip
INVALID, DUPLICATE, ROLE = "invalid", "duplicate", "role"
IMPORT_SOURCE = {"library": {"name": "mailpulse-import"}}
MAX_ID_BYTES = 1024


@dataclass(frozen=True)
class Rejected:
    row: int  # 1-based: the file's line (a CSV's header is line 1), or the item's place
    kind: str
    reason: str


class ImportCheck:
    """Checks rows one by one, remembering the contacts seen so far (for duplicates)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def contact(self, row: int, fields: dict[str, Any]) -> tuple[str, dict[str, Any]] | Rejected:
        """(userId, traits) of a good row, else why it is refused."""
        fields = {k: v for k, v in fields.items() if v not in ("", None)}
        raw_id, raw_email = fields.pop("id", None), fields.pop("email", None)
        email = None
        if raw_email is not None:
            if not isinstance(raw_email, str):
                return Rejected(row, INVALID, f"email {raw_email!r} is not text")
            email, problem = normalize_email(raw_email.strip())
            if email is None:
                return Rejected(row, INVALID, f"email {raw_email!r}: {problem}")
            if email.split("@")[0].lower() in ROLE_ACCOUNTS:
                return Rejected(row, ROLE, f"{email} is a role account, not a person")
        if raw_id is not None:
            problem = _id_problem(raw_id)
            if problem:
                return Rejected(row, INVALID, problem)
        user_id = str(raw_id).strip() if raw_id is not None else (email or "").lower()
        if not user_id:
            return Rejected(row, INVALID, "neither an id nor an email: nothing names the contact")
        if user_id in self._seen:
            return Rejected(row, DUPLICATE, f"contact {user_id!r} is in an earlier row already")
        # As JSON will store them: a NaN or an endless number is null, as ingestion has it.
        encoded = msgspec.json.encode(fields)
        if len(encoded) > MAX_EVENT_BYTES:
            return Rejected(
                row, INVALID, f"{len(encoded)} bytes of traits; at most {MAX_EVENT_BYTES}"
            )
        self._seen.add(user_id)
        traits = msgspec.json.decode(encoded)
        return user_id, {**traits, "email": email} if email is not None else traits


def _id_problem(raw_id: Any) -> str | None:
    """Why an id cannot name a contact (as ingestion refuses it), or None."""
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        return f"id {raw_id!r} is neither text nor a number"
    text = str(raw_id)
    if "\x00" in text:
        return "an id cannot hold a NUL character"
    if len(text.encode()) > MAX_ID_BYTES:
        return f"an id is at most {MAX_ID_BYTES} bytes"
    return None


def identify(
    user_id: str, traits: dict[str, Any], message_id: str, now: float, into: str | None = None
) -> Event:
    """The upsert of one row; `into`: a list the contact joins (mailpulse.audience.lists)."""
    return Event(
        type=EventType.IDENTIFY,
        message_id=message_id,
        contact_key=user_id,
        user_id=user_id,
        traits=traits,
        context={**IMPORT_SOURCE, "list": into} if into else dict(IMPORT_SOURCE),
        timestamp=now,
        received_at=now,
    )


def read_rows(
    path_name: str, data: Iterable[bytes], columns: tuple[str, ...] = ("email", "id")
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, fields) of each row of a `.csv` (header row first, naming one of `columns` at
    least) or `.ndjson` file's lines. Raises ValueError naming the line of a row that cannot
    be read at all."""
    if path_name.endswith((".ndjson", ".jsonl")):
        for line_number, line in enumerate(data, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise ValueError(f"line {line_number}: not JSON ({error})") from None
            if not isinstance(value, dict):
                raise ValueError(f"line {line_number}: a row is a JSON object, not {value!r}")
            yield line_number, value
        return
    if not path_name.endswith(".csv"):
        raise ValueError("import reads .csv (a header row first) or .ndjson files")
    text = io.TextIOWrapper(_Chunks(data), encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    if reader.fieldnames is None or not set(columns) & set(reader.fieldnames):
        named = " or ".join(f"an `{column}`" for column in columns)
        raise ValueError(f"line 1: the header row must name {named} column")
    for fields in reader:
        if None in fields:
            raise ValueError(f"line {reader.line_num}: more values than the header has columns")
        yield reader.line_num, dict(fields)


class _Chunks(io.RawIOBase):
    """Lines of bytes as a readable stream, for the csv module."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size], self._left = self._left[:size], self._left[size:]
        return size
