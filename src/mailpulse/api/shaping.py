"""The admin API of traffic shaping: the rules in force (the project's and the built-in ones),
how each destination fares now in this process (its backoff, its transactions under way), and
the send quotas with what is used of them."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.delivery.limits import Quotas
from mailpulse.project import Project
from mailpulse.runtime.traffic import Traffic
from mailpulse.store import StateStore


class RuleOut(BaseModel):
    name: str  # the destination's key, as in metrics: a domain, "mx:suffix", a provider, "*"
    domain: str | None
    mx: str | None
    rate: float | None  # messages per second
    connections: int | None
    messages_per_connection: int | None
    builtin: bool
    backoff: float  # the share of `rate` allowed now: 1 until the destination asks to slow down
    in_flight: int | None  # transactions under way, where `connections` limits them


class QuotaOut(BaseModel):
    name: str
    limit: int
    used: int
    window_ends_at: float


class ShapingOut(BaseModel):
    route: str
    rules: list[RuleOut]
    # Destinations below their rule's rate now (the `*` rule's are each a domain).
    slowed: dict[str, float]
    rate: float | None  # [delivery.limits] rate, over every send
    quotas: list[QuotaOut]
    sending: bool  # whether this process sends (in-flight counts and backoff are its own)


def shaping_router(state: StateStore, project: Project, traffic: Traffic | None) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
    # A process that does not send (a scale-out API node) still reads the shared quotas.
    quotas = traffic.quotas if traffic is not None else Quotas(state, project.limits.quotas)

    @router.get("/shaping", response_model=ShapingOut, responses=ERRORS)
    async def shaping() -> ShapingOut:
        """The shaping rules in force and the send quotas, with where each stands now."""
        slowed = traffic.limiter.backoff.slowed() if traffic is not None else {}
        rules = [
            RuleOut(
                name=rule.name,
                domain=rule.domain or None,
                mx=rule.mx or None,
                rate=rule.rate,
                connections=rule.connections,
                messages_per_connection=rule.messages_per_connection,
                builtin=bool(rule.provider),
                backoff=slowed.get(rule.name, 1.0),
                in_flight=traffic.connections.in_flight(rule.name)
                if traffic is not None and rule.connections is not None
                else None,
            )
            for rule in project.shaping.rules
        ]
        return ShapingOut(
            route=project.config.smtp.route,
            rules=rules,
            slowed=slowed,
            rate=project.limits.rate,
            quotas=[QuotaOut(**vars(q)) for q in await quotas.status()],
            sending=traffic is not None,
        )

    return router
