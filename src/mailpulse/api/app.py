"""The HTTP app: the tracking API, the admin API, /metrics and /healthz on one pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailpulse import __version__
from mailpulse.api.admin import admin_router
from mailpulse.api.admin_gate import AdminGate
from mailpulse.api.alerts import alerts_router
from mailpulse.api.audit import audit_router
from mailpulse.api.breaker import breaker_router
from mailpulse.api.campaigns import campaigns_router
from mailpulse.api.catalogs import catalogs_router
from mailpulse.api.consent import consent_router
from mailpulse.api.contacts_import import contacts_import_router
from mailpulse.api.dashboard import dashboard_admin_router, dashboard_pages_router
from mailpulse.api.ingest import TrackingApi, openapi_paths
from mailpulse.api.journeys import journeys_router
from mailpulse.api.keys import keys_router
from mailpulse.api.lists import lists_router
from mailpulse.api.privacy import privacy_router
from mailpulse.api.public_limits import PublicRateLimit, document_limits
from mailpulse.api.segments import segments_router
from mailpulse.api.shaping import shaping_router
from mailpulse.api.stats import stats_router
from mailpulse.api.suppressions import suppressions_router
from mailpulse.feedback.machines import MachineRules
from mailpulse.feedback.pages import subscription_pages_router
from mailpulse.feedback.tracking import tracking_router
from mailpulse.feedback.webhooks.router import providers_for, webhooks_router
from mailpulse.feedback.webhooks.sns import Fetch, fetch_https
from mailpulse.observe.dashboard_session import DashboardSessions
from mailpulse.runtime.pipeline import Pipeline


def _error(status: int, message: str, where: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "where": where}, status_code=status)


def create_app(
    pipeline: Pipeline, extra_routers: Sequence[APIRouter] = (), fetch: Fetch = fetch_https
) -> TrackingApi:
    """The ASGI app: the tracking API in front, FastAPI for everything else. `fetch`: how
    the SES webhook fetches SNS certificates and confirmations (HTTPS; a test's own)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pipeline.start()
        try:
            yield
        finally:
            await pipeline.stop()

    app = FastAPI(
        title="mailpulse",
        version=__version__,
        summary="Segment-spec events in, personalized DKIM-signed email out.",
        lifespan=lifespan,
    )
    app.state.keys = pipeline.keys

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, first.get("msg", "invalid request"), where or None)

    app.include_router(admin_router(pipeline.log, pipeline.state, pipeline.project))
    app.include_router(journeys_router(pipeline.state, pipeline.project))
    app.include_router(segments_router(pipeline.state, pipeline.project))
    app.include_router(lists_router(pipeline.state))
    app.include_router(campaigns_router(pipeline.state, pipeline.project))
    app.include_router(shaping_router(pipeline.state, pipeline.project, pipeline.traffic))
    app.include_router(contacts_import_router(pipeline.append, pipeline.state))
    app.include_router(suppressions_router(pipeline.state, pipeline.metrics))
    app.include_router(breaker_router(pipeline.breaker))
    app.include_router(alerts_router(pipeline.alerts))
    app.include_router(consent_router(pipeline.state))
    app.include_router(
        subscription_pages_router(
            tokens=pipeline.tokens,
            append=pipeline.append,
            state=pipeline.state,
            topics=pipeline.project.topics,
            project_name=pipeline.project.config.project.name,
        )
    )
    app.include_router(
        tracking_router(
            append=pipeline.append,
            state=pipeline.state,
            tokens=pipeline.tokens,
            rules=MachineRules.from_settings(pipeline.project.machines),
            metrics=pipeline.metrics,
        )
    )
    machines = MachineRules.from_settings(pipeline.project.machines)
    app.include_router(
        webhooks_router(
            providers=providers_for(
                pipeline.project.webhooks, pipeline.project.durations.dedup_window, fetch
            ),
            append=pipeline.append,
            state=pipeline.state,
            metrics=pipeline.metrics,
            machines=machines,
            rules=pipeline.project.bounce_rules,
        )
    )
    app.include_router(catalogs_router(pipeline.catalogs))
    app.include_router(keys_router(pipeline.keys))
    app.include_router(audit_router(pipeline.access))
    app.include_router(privacy_router(pipeline.log, pipeline.state, pipeline.append))
    app.include_router(stats_router(pipeline.state, pipeline.project))
    sessions = DashboardSessions(pipeline.tokens, pipeline.keys)
    app.include_router(dashboard_pages_router(sessions))
    app.include_router(dashboard_admin_router(pipeline))
    for router in extra_routers:
        app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(pipeline.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema["paths"] = {**openapi_paths(), **schema.get("paths", {})}
            document_limits(schema["paths"])
            schema.setdefault("components", {})["securitySchemes"] = {
                "writeKey": {"type": "http", "scheme": "basic"},
                "adminKey": {"type": "http", "scheme": "bearer"},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    catalogs = pipeline.catalogs
    # Layers in front of FastAPI, each looking at its own paths only: the tracking API (its
    # hot path passes through none), the public pages' rate limits, the admin gate.
    admin = AdminGate(app, pipeline.keys, pipeline.access, pipeline.metrics, sessions)
    limited = PublicRateLimit(admin, pipeline.project.public_limit, pipeline.metrics)
    return TrackingApi(
        pipeline.append,
        pipeline.keys,
        pipeline.metrics,
        limited,
        upsert=None if catalogs is None else catalogs.upsert,
    )
