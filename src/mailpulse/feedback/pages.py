"""The public pages a recipient reaches from a message: unsubscribe, preferences, confirm.

    POST /u/{token}          one-click unsubscribe (RFC 8058): from the message's topic, or
                             from all marketing when it had none; 200 at once, no redirect
    GET  /u/{token}          a page asking to confirm that, with a button (a GET changes
                             nothing: link scanners fetch every URL of a message)
    GET  /p/{token}          the preference page: every topic with its state, unsubscribe
                             from one or from all marketing, subscribe again
    POST /p/{token}          action=subscribe|unsubscribe&topic=<id or empty for all>
    GET  /p/confirm/{token}  a double opt-in confirmation page, with its button
    POST /p/confirm/{token}  confirms: the topic's marketing flows from then on

No cookie, no login, no JavaScript: the signed token in the path is the only credential (see
mailpulse.feedback.unsubscribe), and a forged or malformed one is a 404 that changes nothing.
What a person does is appended to the log as `Unsubscribed` or `Subscribed` before the answer
(mailpulse.policy.consent says what they change); the pages read suppression and consent
state to show where the contact stands.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader

from mailpulse.feedback.unsubscribe import (
    CONFIRM,
    UNSUBSCRIBE,
    MessageToken,
    read_token,
)
from mailpulse.policy.consent import (
    CONFIRMED,
    DOUBLE_OPT_IN,
    GRANTED,
    ONE_CLICK,
    PREFERENCE_CENTER,
    consent_problem,
    subscribed_event,
    unsubscribed_event,
)
from mailpulse.policy.suppression import address_hash
from mailpulse.policy.topics import Topic
from mailpulse.store import StateStore
from mailpulse.tokens import TokenError, TokenSigner
from mailpulse.types import Contact, Event, Suppression, SuppressionReason

AppendFn = Callable[[Sequence[Event]], Awaitable[Any]]

SUBSCRIBED, UNSUBSCRIBED, NOT_SUBSCRIBED, AWAITING, BLOCKED = (
    "subscribed",
    "unsubscribed",
    "not subscribed",
    "awaiting confirmation",
    "blocked",
)
_MAX_FORM = 4096  # bytes: our forms send two short fields
# Pages that hold a credential in their URL: kept out of caches, referrers and frames.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
_PAGES = Environment(loader=PackageLoader("mailpulse.feedback", "pages"), autoescape=True)


@dataclass(frozen=True)
class TopicChoice:
    topic: Topic
    state: str
    can_subscribe: bool
    can_unsubscribe: bool

    @property
    def label(self) -> str:
        return self.state.capitalize()


@dataclass(frozen=True)
class Preferences:
    """Where a contact stands: all marketing (subscribed, unsubscribed, or blocked by an entry
    that is not theirs to lift), and each topic."""

    all_marketing: str
    topics: tuple[TopicChoice, ...]

    def after(self, action: str, topic: str) -> Preferences:
        """As it will stand once the fold has what was just sent (a moment later)."""
        if not topic:
            if self.all_marketing == BLOCKED:
                return self
            return replace(
                self, all_marketing=SUBSCRIBED if action == "subscribe" else UNSUBSCRIBED
            )
        return replace(
            self,
            topics=tuple(
                _choice(c.topic, SUBSCRIBED if action == "subscribe" else UNSUBSCRIBED)
                if c.topic.id == topic and c.state != BLOCKED
                else c
                for c in self.topics
            ),
        )


def preferences(
    topics: Mapping[str, Topic], entries: Sequence[Suppression], consent: Mapping[str, str]
) -> Preferences:
    """Where a contact stands, from its address's suppression entries and its consent."""
    by_topic = {e.topic: e for e in entries}
    everything = by_topic.get("")
    if everything is None:
        all_marketing = SUBSCRIBED
    elif everything.reason == SuppressionReason.UNSUBSCRIBE:
        all_marketing = UNSUBSCRIBED
    else:
        all_marketing = BLOCKED  # a bounce, a complaint, an operator's or an erasure
    choices = []
    for topic in topics.values():
        found = by_topic.get(topic.id)
        if found is not None:
            state = UNSUBSCRIBED if found.reason == SuppressionReason.UNSUBSCRIBE else BLOCKED
        elif consent_problem(consent, topic) is None:
            state = SUBSCRIBED  # an opt-out topic, or an opt-in one with consent
        else:
            # Asked and not confirmed yet (double opt-in), or never asked, or withdrawn.
            state = AWAITING if consent.get(topic.id) == GRANTED else NOT_SUBSCRIBED
        choices.append(_choice(topic, state))
    return Preferences(all_marketing, tuple(choices))


def _choice(topic: Topic, state: str) -> TopicChoice:
    return TopicChoice(
        topic,
        state,
        can_subscribe=state in (UNSUBSCRIBED, NOT_SUBSCRIBED, AWAITING),
        can_unsubscribe=state == SUBSCRIBED,
    )


def topic_wording(topic: Topic) -> str:
    """What the preference page shows of a topic, recorded with consent given there."""
    return f"{topic.name}: {topic.description}" if topic.description else topic.name


def subscription_pages_router(
    *,
    tokens: TokenSigner,
    append: AppendFn,
    state: StateStore,
    topics: Mapping[str, Topic],
    project_name: str,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    everything = f"all marketing email from {project_name}"

    def page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
        body = _PAGES.get_template(template).render(project_name=project_name, **values)
        return HTMLResponse(body, status_code=status, headers=_PAGE_HEADERS)

    def scope_of(link: MessageToken) -> str:
        topic = topics.get(link.topic)
        return f"{topic.name} email from {project_name}" if topic is not None else everything

    async def entries_of(address: str) -> list[Suppression]:
        return await state.suppressions_for([address_hash(address)])

    async def contact_of(contact_id: str) -> Contact | None:
        canonical = (await state.resolve([contact_id])).get(contact_id, contact_id)
        return await state.contact(canonical)

    def client(request: Request) -> dict[str, str]:
        host = request.client.host if request.client is not None else ""
        return {"ip": host, "user_agent": request.headers.get("user-agent", "")[:512]}

    @router.get("/u/{token}")
    async def unsubscribe_page(token: str) -> Response:
        link = _read(tokens, UNSUBSCRIBE, token)
        if isinstance(link, Response):
            return link
        return page(
            "unsubscribe.html",
            done=False,
            address=link.address,
            scope=scope_of(link),
            preferences_path=f"../p/{token}",
        )

    @router.post("/u/{token}")
    async def one_click(token: str, request: Request) -> Response:
        """RFC 8058: whatever the body (`List-Unsubscribe=One-Click` from a mailbox provider,
        the page's button), the token alone decides; durable before the answer."""
        link = _read(tokens, UNSUBSCRIBE, token)
        if isinstance(link, Response):
            return link
        standing = {e.topic for e in await entries_of(link.address)}
        if link.topic not in standing:  # else nothing would change: answered the same
            ev = unsubscribed_event(
                link.contact_id,
                link.address,
                link.topic,
                source=ONE_CLICK,
                at=clock(),
                key=link.key,
                **client(request),
            )
            await append([ev])
        return page(
            "unsubscribe.html",
            done=True,
            address=link.address,
            scope=scope_of(link),
            preferences_path=f"../p/{token}",
        )

    async def preference_page(
        link: MessageToken, view: Preferences | None = None, notice: str = ""
    ) -> HTMLResponse:
        if view is None:
            contact = await contact_of(link.contact_id)
            consent = contact.consent if contact is not None else {}
            view = preferences(topics, await entries_of(link.address), consent)
        return page(
            "preferences.html",
            address=link.address,
            view=view,
            notice=notice,
        )

    @router.get("/p/{token}")
    async def preferences_get(token: str) -> Response:
        link = _read(tokens, UNSUBSCRIBE, token)
        if isinstance(link, Response):
            return link
        return await preference_page(link)

    @router.post("/p/{token}")
    async def preferences_post(token: str, request: Request) -> Response:
        link = _read(tokens, UNSUBSCRIBE, token)
        if isinstance(link, Response):
            return link
        form = await read_form(request)
        if isinstance(form, Response):
            return form
        action, topic_id = form.get("action", ""), form.get("topic", "")
        if action not in ("subscribe", "unsubscribe"):
            return _refused(400, "action is subscribe or unsubscribe", "action")
        topic = topics.get(topic_id)
        if topic_id and topic is None:
            return _refused(400, f"no topic {topic_id!r}", "topic")
        now, who = clock(), client(request)
        if action == "unsubscribe":
            ev = unsubscribed_event(
                link.contact_id, link.address, topic_id, source=PREFERENCE_CENTER, at=now, **who
            )
        else:
            # The address is proven (the token came to it): a double opt-in topic is confirmed.
            given = CONFIRMED if topic is not None and topic.double_opt_in else GRANTED
            ev = subscribed_event(
                link.contact_id,
                link.address,
                topic_id,
                action=given,
                source=PREFERENCE_CENTER,
                at=now,
                wording=topic_wording(topic) if topic is not None else everything.capitalize(),
                **who,
            )
        contact = await contact_of(link.contact_id)
        before = preferences(
            topics, await entries_of(link.address), contact.consent if contact else {}
        )
        await append([ev])
        named = topic.name if topic is not None else everything
        done = "subscribed to" if action == "subscribe" else "unsubscribed from"
        return await preference_page(
            link, before.after(action, topic_id), f"Saved: you are {done} {named}."
        )

    @router.get("/p/confirm/{token}")
    async def confirm_page(token: str) -> Response:
        link = _read(tokens, CONFIRM, token)
        if isinstance(link, Response):
            return link
        topic = topics.get(link.topic)
        if topic is None:
            return _refused(404, "this subscription no longer exists", "token")
        return page(
            "confirm.html", done=False, topic=topic, address=link.address, wording=_asked(topic)
        )

    @router.post("/p/confirm/{token}")
    async def confirm(token: str, request: Request) -> Response:
        link = _read(tokens, CONFIRM, token)
        if isinstance(link, Response):
            return link
        topic = topics.get(link.topic)
        if topic is None:
            return _refused(404, "this subscription no longer exists", "token")
        contact = await contact_of(link.contact_id)
        if contact is None or contact.consent.get(topic.id) != CONFIRMED:
            ev = subscribed_event(
                link.contact_id,
                link.address,
                topic.id,
                action=CONFIRMED,
                source=DOUBLE_OPT_IN,
                at=clock(),
                wording=_asked(topic),
                **client(request),
            )
            await append([ev])
        # The preference page of the same recipient, reached with a token of its own kind.
        preferences_token = tokens.sign(UNSUBSCRIBE, link)
        return page(
            "confirm.html",
            done=True,
            topic=topic,
            address=link.address,
            preferences_path=f"../{preferences_token}",
        )

    return router


def _asked(topic: Topic) -> str:
    """What the confirmation page asks, recorded with the confirmation."""
    return f"Yes, send me {topic_wording(topic)}"


def _read(tokens: TokenSigner, purpose: str, token: str) -> MessageToken | Response:
    try:
        return read_token(tokens, purpose, token)
    except TokenError as error:
        # 404, not 400: there is no such link, whatever the reason; nothing says which part
        # of a forgery was wrong.
        return _refused(404, f"no such link: {error}", "token")


def _refused(status: int, reason: str, where: str) -> JSONResponse:
    return JSONResponse({"error": reason, "where": where}, status_code=status)


async def read_form(request: Request) -> dict[str, str] | Response:
    """An application/x-www-form-urlencoded body (what our pages' forms send), capped."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return _refused(413, f"the form is over {_MAX_FORM} bytes", "body")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return _refused(400, "the body is not a form (application/x-www-form-urlencoded)", "body")
    return {name: values[0] for name, values in fields.items()}
