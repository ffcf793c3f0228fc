"""The API token: with `CADENZA_API_TOKEN` set, every /api request must carry it.

Requests send it as `Authorization: Bearer <token>`. What a browser loads by itself (the live
updates' EventSource, <audio> sources, download links) cannot carry a header, so GET requests to
those routes may send it as the `cadenza_token` cookie instead, which the web UI sets. Only reads
accept the cookie: a page elsewhere cannot make a browser change anything with it. The web UI, its
assets and /docs stay reachable without the token, so the UI can ask for it.

It is checked before the request's body is read, so nobody without the token can make the API
receive an upload.
"""
from __future__ import annotations

import hmac
from urllib.parse import unquote

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "cadenza_token"
# The routes a browser loads without script: they accept the cookie on GET.
BROWSER_LOADED = ("/stream", "/audio", "/download", "/export")


class ApiToken:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_api(scope["path"]) or self._carries_token(HTTPConnection(scope)):
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"detail": "this API needs its token: send `Authorization: Bearer <token>` "
                                           "(the token is CADENZA_API_TOKEN of the server)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _carries_token(self, connection: HTTPConnection) -> bool:
        scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._matches(credentials.strip()):
            return True
        scope = connection.scope
        loaded_by_browser = scope["method"] in ("GET", "HEAD") and scope["path"].endswith(BROWSER_LOADED)
        return loaded_by_browser and self._matches(unquote(connection.cookies.get(COOKIE, "")))

    def _matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.token)  # in constant time: no guessing by timing


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")
