"""The composition root: ``create_app(settings)`` wires engine, services and routes.

Nothing reads configuration at import time; tests build as many apps as they need.

Audit: the app owns its audit sink (:class:`dhr.audit.sink.DatabaseSink`, or
:class:`~dhr.audit.sink.NullSink` when ``audit_enabled`` is false) and, while it runs (FastAPI
lifespan, https://fastapi.tiangolo.com/advanced/events/), the chainer that links new events into
the tamper-evident chain (:class:`dhr.audit.chain.Chainer`); on shutdown both finish their work.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from dhr import __version__
from dhr.api import routes
from dhr.api.dispatch import Services
from dhr.api.http import CONTENT_TYPE
from dhr.audit.chain import Chainer
from dhr.audit.sink import sink_for
from dhr.auth import authorize, discovery, introspect, revoke, token_endpoint
from dhr.auth.cors import CorsMiddleware, OriginRegistry
from dhr.auth.service import AuthServer
from dhr.config import Settings
from dhr.errors import FhirError, Issue, operation_outcome
from dhr.fhir import jsonio
from dhr.fhir.validate_pool import POOL
from dhr.interactions import bundle  # noqa: F401 - registers the batch/transaction processor
from dhr.settle import settle
from dhr.store import db

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, migrate: bool = True
) -> FastAPI:
    settings = settings or Settings()
    engine = engine or db.engine_for(settings)
    if migrate:
        db.upgrade(engine)
    # The audit writer and the chainer get a pool of their own: they never wait for a
    # connection behind the requests they audit (nor show up in a request's statements).
    audit_engine = db.make_engine(engine.url.render_as_string(hide_password=False))
    sink = sink_for(settings.audit_enabled, audit_engine)
    chainer = Chainer(audit_engine, settings) if settings.audit_enabled else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        settle(settings)
        if chainer is not None:
            chainer.start()
        try:
            yield
        finally:
            POOL.stop()
            sink.close()
            if chainer is not None:
                chainer.stop()
            audit_engine.dispose()

    app = FastAPI(
        title="DHR FHIR R4 server",
        version=__version__,
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = Services(settings, engine, sink)
    app.state.chainer = chainer
    app.state.auth = AuthServer(settings, engine)
    app.state.cors_origins = OriginRegistry(engine)
    app.add_middleware(CorsMiddleware, origins=app.state.cors_origins)
    # The authorisation server's routes come first: /fhir/.well-known/... must win over the
    # catch-all /fhir/{path} route of the FHIR API.
    for auth_router in (
        discovery.router,
        authorize.router,  # also /auth/login, /auth/logout and /auth/launch
        token_endpoint.router,
        introspect.router,
        revoke.router,
    ):
        app.include_router(auth_router)
    app.include_router(routes.router)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        outcome = operation_outcome(
            [Issue("fatal", "exception", "Internal server error", (), "internal-error")]
        )
        return Response(jsonio.dumps(outcome), status_code=500, media_type=CONTENT_TYPE)

    @app.exception_handler(FhirError)
    async def _fhir_error(_request: Request, exc: FhirError) -> Response:
        return Response(
            jsonio.dumps(exc.outcome()),
            status_code=exc.status,
            media_type=CONTENT_TYPE,
            headers=exc.headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """The router's own answers (a method no FHIR interaction uses, a path it does not
        know) as OperationOutcomes under ``/fhir``, like every other FHIR error."""
        if not request.url.path.startswith("/fhir"):
            return await http_exception_handler(request, exc)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            detail = f"The FHIR API does not answer {request.method[:20]!r} requests"
            headers.setdefault("Allow", ", ".join(routes.METHODS))
            error = FhirError(405, "not-supported", detail, "method-not-allowed", headers=headers)
        else:
            detail = str(exc.detail)
            error = FhirError(exc.status_code, "processing", detail, "http-error", headers=headers)
        return await _fhir_error(request, error)

    @app.get("/", include_in_schema=False)
    async def _root() -> JSONResponse:
        return JSONResponse(
            {
                "name": "DHR",
                "fhir": settings.fhir_base,
                "metadata": f"{settings.fhir_base}/metadata",
            }
        )

    return app
