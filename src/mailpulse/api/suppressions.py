"""The admin API of the suppression list (see mailpulse.policy.suppression for what an entry
blocks). Entries are written to the state store in one transaction and block sends from the
moment it commits: the folds and senders of every partition read them afresh per batch.

    GET    /admin/suppressions?reason=&topic=&after=&limit=   a page in a stable order; its
                                                              `next` is the following `after`
    GET    /admin/suppressions/{address}                      an address's entries
    POST   /admin/suppressions                                add one (reason manual by default)
    DELETE /admin/suppressions/{address}?topic=               remove one (never an erased one)
    POST   /admin/suppressions/import                         a CSV or NDJSON body, row by row
    GET    /admin/suppressions/export?format=ndjson|csv       every entry, streamed

`{address}` is an address, or the `address_hash` of an erased entry. Something of the right
shape that cannot be an entry (not an address, a topic on a hard bounce) is a 422 naming the
field; nothing changes then.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.audience.importing import read_rows
from mailpulse.observe import Metrics
from mailpulse.policy.suppression import (
    ADDRESS_FIELDS,
    ENTRY_FIELDS,
    MAX_DETAIL,
    MAX_TOPIC,
    EntryError,
    address_hash,
    canonical_address,
    entry_from_fields,
    is_address_hash,
    iso,
)
from mailpulse.store import StateStore
from mailpulse.types import Suppression, SuppressionReason

MAX_IMPORT_ROWS = 10_000
MAX_IMPORT_BYTES = 16 * 1024 * 1024
# The body's media type → the name read_rows reads its format from.
_IMPORT_TYPES = {"text/csv": "body.csv", "application/x-ndjson": "body.ndjson"}
_PAGE = 1000


class SuppressionOut(BaseModel):
    address: str | None  # None for an erased entry: only its hash is kept
    address_hash: str
    topic: str  # "" for a global entry
    reason: str
    detail: str
    source: str
    created_at: float


class PageOut(BaseModel):
    entries: list[SuppressionOut]
    next: str | None  # give it as `after` for the next page; None: this was the last


class AddressOut(BaseModel):
    address_hash: str
    entries: list[SuppressionOut]


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    topic: str = Field(default="", max_length=MAX_TOPIC)
    reason: SuppressionReason = SuppressionReason.MANUAL
    detail: str = Field(default="", max_length=MAX_DETAIL)
    source: str = Field(default="admin", max_length=MAX_TOPIC)


class AddedOut(BaseModel):
    added: bool  # False: an entry that blocks as much stood already (it is `entry`)
    entry: SuppressionOut


class RowOut(BaseModel):
    row: int  # the body's line (a CSV's header is line 1)
    kind: str
    reason: str
    field: str


class ImportedOut(BaseModel):
    added: int
    unchanged: int  # already there, or blocking less than an entry already there
    rejected: list[RowOut]


def _out(entry: Suppression) -> SuppressionOut:
    return SuppressionOut(
        address=entry.address,
        address_hash=entry.address_hash,
        topic=entry.topic,
        reason=entry.reason,
        detail=entry.detail,
        source=entry.source,
        created_at=entry.created_at,
    )


def _refused(status: int, reason: str, where: str) -> JSONResponse:
    return JSONResponse({"error": reason, "where": where}, status_code=status)


def _hash_of(address: str) -> str:
    """The key of what the path names: an address, or an erased entry's hash."""
    if is_address_hash(address):
        return address
    canonical, problem = canonical_address(address)
    if canonical is None:
        raise HTTPException(422, problem or f"{address!r} is not an address")
    return address_hash(canonical)


def export_row(entry: Suppression) -> dict[str, Any]:
    """An entry as export writes it and import reads it back."""
    return {
        "address": entry.address,
        "address_hash": entry.address_hash,
        "topic": entry.topic,
        "reason": entry.reason,
        "detail": entry.detail,
        "source": entry.source,
        "created_at": iso(entry.created_at),
    }


def suppressions_router(state: StateStore, metrics: Metrics) -> APIRouter:
    router = APIRouter(
        prefix="/admin/suppressions", tags=["admin"], dependencies=[Depends(require_admin)]
    )
    not_found = {404: ERRORS[400] | {"description": "No such entry."}}
    conflict = {409: ERRORS[400] | {"description": "An erased entry: it stays."}}
    unprocessable = {422: ERRORS[400] | {"description": "Not an entry; `where` names the field."}}
    too_large = {413: ERRORS[400] | {"description": "More rows than one request takes."}}
    media = {415: ERRORS[400] | {"description": "Neither text/csv nor application/x-ndjson."}}

    async def added(entries: Sequence[Suppression]) -> list[Suppression]:
        took = await state.add_suppressions(entries)
        for entry in took:
            metrics.suppressions_added.labels(entry.reason).inc()
        return took

    @router.get("", response_model=PageOut, responses=ERRORS)
    async def list_suppressions(
        reason: SuppressionReason | None = None,
        topic: str | None = Query(None, description="'' for the global entries only."),
        after: str = Query("", description="The `next` of the page before."),
        limit: int = Query(100, ge=1, le=1000),
    ) -> PageOut:
        """Entries in a stable order (by address hash and topic), a page at a time."""
        hashed, _, after_topic = after.partition(":")
        page = await state.suppressions_after(
            (hashed, after_topic), limit, reason=reason, topic=topic
        )
        last = page[-1] if len(page) == limit else None
        return PageOut(
            entries=[_out(e) for e in page],
            next=None if last is None else f"{last.address_hash}:{last.topic}",
        )

    @router.get(
        "/export",
        response_class=StreamingResponse,
        responses={
            **ERRORS,
            200: {
                "description": "Every entry: NDJSON, or CSV with a header row.",
                "content": {"application/x-ndjson": {}, "text/csv": {}},
            },
        },
    )
    async def export(
        kind: Literal["ndjson", "csv"] = Query("ndjson", alias="format"),
    ) -> StreamingResponse:
        """Every entry, streamed page by page: what import reads back."""
        return StreamingResponse(
            _export(state, kind),
            media_type="text/csv" if kind == "csv" else "application/x-ndjson",
        )

    @router.post(
        "/import",
        response_model=ImportedOut,
        responses={**ERRORS, **unprocessable, **too_large, **media},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {kind: {"schema": {"type": "string"}} for kind in _IMPORT_TYPES},
            }
        },
    )
    async def import_suppressions(request: Request) -> ImportedOut | JSONResponse:
        """Entries from a CSV (a header row naming `address` or `address_hash`, then `topic`,
        `reason`, `detail`, `source`, `created_at` as wanted) or NDJSON body, at most 10,000
        rows. Each row is checked; the good ones are added in one transaction, the others
        reported with their line. A body that cannot be read is refused whole."""
        kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        name = _IMPORT_TYPES.get(kind)
        if name is None:
            raise HTTPException(415, "send text/csv or application/x-ndjson")
        body = await _body(request)
        entries: list[Suppression] = []
        rejected: list[RowOut] = []
        now = time.time()
        try:
            for line, fields in read_rows(name, body.splitlines(keepends=True), ADDRESS_FIELDS):
                if len(entries) + len(rejected) == MAX_IMPORT_ROWS:
                    raise HTTPException(413, f"at most {MAX_IMPORT_ROWS:,} rows per request")
                try:
                    entries.append(entry_from_fields(fields, source="import", now=now))
                except EntryError as error:
                    rejected.append(
                        RowOut(row=line, kind="invalid", reason=error.reason, field=error.field)
                    )
        except (ValueError, UnicodeDecodeError) as error:
            return _refused(422, f"cannot read the body: {error}", "body")
        took = await added(entries)
        return ImportedOut(added=len(took), unchanged=len(entries) - len(took), rejected=rejected)

    @router.get(
        "/{address}", response_model=AddressOut, responses={**ERRORS, **not_found, **unprocessable}
    )
    async def get_suppression(address: str) -> AddressOut:
        """The entries of an address (global and per topic), or of an erased entry's hash."""
        hashed = _hash_of(address)
        found = await state.suppressions_for([hashed])
        if not found:
            raise HTTPException(404, f"{address} is not on the suppression list")
        found.sort(key=lambda e: e.topic)
        return AddressOut(address_hash=hashed, entries=[_out(e) for e in found])

    @router.post(
        "",
        status_code=201,
        response_model=AddedOut,
        responses={**ERRORS, **unprocessable, 200: {"model": AddedOut, "description": "Stood."}},
    )
    async def add(body: SuppressionIn, response: Response) -> AddedOut | JSONResponse:
        """Add an entry; in force for every send from this answer on."""
        try:
            fields = body.model_dump(mode="json")
            entry = entry_from_fields(fields, source="admin", now=time.time())
        except EntryError as error:
            return _refused(422, error.reason, f"/{error.field}")
        if await added([entry]):
            return AddedOut(added=True, entry=_out(entry))
        response.status_code = 200
        standing = await state.suppressions_for([entry.address_hash])
        # An erased address's entry is global whatever the request's topic was.
        kept = [e for e in standing if e.topic == entry.topic] or [
            e for e in standing if e.reason == SuppressionReason.ERASED
        ]
        return AddedOut(added=False, entry=_out(kept[0]))

    @router.delete(
        "/{address}",
        response_model=SuppressionOut,
        responses={**ERRORS, **not_found, **conflict, **unprocessable},
    )
    async def remove(
        address: str, topic: str = Query("", description="'' (the default): the global entry.")
    ) -> SuppressionOut:
        """Remove an entry: the address may be mailed again (as far as other entries allow).
        An erased entry stays: the person asked never to be mailed again."""
        hashed = _hash_of(address)
        found = [e for e in await state.suppressions_for([hashed]) if e.topic == topic]
        scope = f" for topic {topic!r}" if topic else ""
        if not found:
            raise HTTPException(404, f"{address} has no entry{scope}")
        if found[0].reason == SuppressionReason.ERASED:
            raise HTTPException(409, f"{address} was erased: its entry is kept for good")
        if not await state.remove_suppression(hashed, topic):
            raise HTTPException(409, f"{address}'s entry{scope} changed meanwhile: look again")
        return _out(found[0])

    return router


async def _body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:
            raise HTTPException(413, f"at most {MAX_IMPORT_BYTES // 2**20} MB per request")
        chunks.append(chunk)
    return b"".join(chunks)


async def _export(state: StateStore, kind: str) -> AsyncIterator[bytes]:
    after = ("", "")
    if kind == "csv":
        yield (",".join(ENTRY_FIELDS) + "\r\n").encode()
    while page := await state.suppressions_after(after, _PAGE):
        after = (page[-1].address_hash, page[-1].topic)
        rows = [export_row(e) for e in page]
        if kind == "csv":
            text = io.StringIO()
            csv.DictWriter(text, ENTRY_FIELDS).writerows(rows)
            yield text.getvalue().encode()
        else:
            yield b"".join(orjson.dumps(row) + b"\n" for row in rows)
