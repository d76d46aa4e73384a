"""Response shapes, for the OpenAPI document (requests are parsed by mailpulse.events)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    error: str
    where: str | None = None


class ContactOut(BaseModel):
    id: str
    email: str | None
    email_error: str | None
    known: bool
    first_seen: float
    last_seen: float
    traits: dict[str, Any]
    identities: list[str]


class EventOut(BaseModel):
    offset: int
    type: str
    event: str | None = None
    name: str | None = None
    message_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    timestamp: float
    received_at: float


class EventsOut(BaseModel):
    contact_id: str
    events: list[EventOut]


class MessageOut(BaseModel):
    key: str
    template: str
    journey: str | None
    step: str | None
    message_class: str
    status: str
    attempts: int
    message_id: str
    last_code: int
    last_text: str
    created_at: float
    updated_at: float


class MessagesOut(BaseModel):
    contact_id: str
    messages: list[MessageOut]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The request is invalid; `error` says why."},
    401: {"model": ErrorBody, "description": "Missing, unknown or revoked key."},
    403: {"model": ErrorBody, "description": "The key's scope does not allow this."},
}
