"""CORS for browser SMART apps: public documents for anyone, the API for registered origins only.

Fetch standard, CORS protocol (https://fetch.spec.whatwg.org/#http-cors-protocol). SMART App
Launch 2.2 expects discovery to be readable cross-origin
(https://hl7.org/fhir/smart-app-launch/conformance.html#using-well-known); the issue asks the
token endpoint and the FHIR API to answer only the origins clients registered.

- Any origin (``Access-Control-Allow-Origin: *``): SMART and OpenID discovery, ``/fhir/metadata``
  and the JWK Set.
- Registered origins (the origin echoed, ``Vary: Origin``): ``/fhir/*``, ``/auth/token`` and
  ``/auth/revoke``. A preflight from any other origin is refused (403, no CORS headers); an
  actual request from one is served without CORS headers, so the browser withholds the answer.
- Nothing else (the authorise and login pages are navigations, not cross-origin fetches).

The registered origins are the union of the active clients' ``origins`` lists, cached for
:data:`TTL_SECONDS`; an origin not in the cache triggers a re-read at most once a second, so a
newly registered client works within a second.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

import anyio.to_thread
from sqlalchemy import Engine
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dhr.store import auth_keys_store as store
from dhr.store.db import unit_of_work

TTL_SECONDS = 5.0
MISS_REFRESH_SECONDS = 1.0
MAX_AGE = "600"
PUBLIC_PATHS = frozenset(
    {
        "/fhir/.well-known/smart-configuration",
        "/.well-known/openid-configuration",
        "/fhir/metadata",
        "/auth/jwks",
    }
)
OAUTH_PATHS = frozenset({"/auth/token", "/auth/revoke"})
ALLOW_HEADERS = (
    "Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, "
    "If-Modified-Since, Prefer, X-Request-Id"
)
EXPOSE_HEADERS = "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate, X-Request-Id"
FHIR_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
OAUTH_METHODS = "POST, OPTIONS"
PUBLIC_METHODS = "GET, HEAD, OPTIONS"
_DEFAULT_PORTS = {"http": 80, "https": 443}

Policy = Literal["public", "fhir", "oauth"]


def normalise_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port; None if not an origin."""
    parts = urlsplit(origin.strip().rstrip("/").lower())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def policy_for(path: str) -> Policy | None:
    if path in PUBLIC_PATHS:
        return "public"
    if path == "/fhir" or path.startswith("/fhir/"):
        return "fhir"
    if path in OAUTH_PATHS:
        return "oauth"
    return None


class OriginRegistry:
    """The origins registered on active clients, cached in memory."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self._origins: frozenset[str] = frozenset()
        self._loaded_at = -math.inf
        self._lock = threading.Lock()

    def cached(self, origin: str) -> bool | None:
        """True/False from the cache, or None when the cache must be re-read first."""
        age = self.clock() - self._loaded_at
        if age >= self.ttl:
            return None
        if origin in self._origins:
            return True
        return None if age >= MISS_REFRESH_SECONDS else False

    def refresh(self) -> None:
        with self._lock:
            with unit_of_work(self.engine, write=False, single_statement=True) as conn:
                raw = store.registered_origins(conn)
            self._origins = frozenset(o for o in map(normalise_origin, raw) if o is not None)
            self._loaded_at = self.clock()

    def invalidate(self) -> None:
        """Forget the cache (after registering or deactivating a client in this process)."""
        self._loaded_at = -math.inf

    def allows(self, origin: str) -> bool:
        answer = self.cached(origin)
        if answer is None:
            self.refresh()
            answer = origin in self._origins
        return answer


class CorsMiddleware:
    """A small ASGI middleware applying the policy above."""

    def __init__(self, app: ASGIApp, origins: OriginRegistry) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = policy_for(scope["path"]) if scope["type"] == "http" else None
        if policy is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw_origin = headers.get("origin")
        origin = normalise_origin(raw_origin) if raw_origin else None
        allowed = origin is not None and await self._allowed(policy, origin)
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if preflight and raw_origin is not None:
            await self._preflight(policy, raw_origin if allowed else None, send)
            return
        extra: dict[str, str] = {}
        if allowed and raw_origin is not None:
            extra["Access-Control-Allow-Origin"] = "*" if policy == "public" else raw_origin
            extra["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        await self.app(scope, receive, _with_headers(send, extra, vary=policy != "public"))

    async def _allowed(self, policy: Policy, origin: str) -> bool:
        if policy == "public":
            return True
        answer = self.origins.cached(origin)
        if answer is None:
            return await anyio.to_thread.run_sync(self.origins.allows, origin)
        return answer

    async def _preflight(self, policy: Policy, origin: str | None, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = []
        status = 403
        if origin is not None:
            status = 204
            methods = {"public": PUBLIC_METHODS, "fhir": FHIR_METHODS, "oauth": OAUTH_METHODS}
            headers = [
                (b"access-control-allow-origin", b"*" if policy == "public" else origin.encode()),
                (b"access-control-allow-methods", methods[policy].encode()),
                (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                (b"access-control-max-age", MAX_AGE.encode()),
            ]
        if policy != "public":
            headers.append((b"vary", b"Origin"))
        body = b"" if status == 204 else b"CORS origin not allowed"
        if body:
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _with_headers(send: Send, extra: dict[str, str], *, vary: bool) -> Send:
    if not extra and not vary:
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in extra.items():
                headers[name] = value
            if vary:
                headers.add_vary_header("Origin")
        await send(message)

    return wrapped
