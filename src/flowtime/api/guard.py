"""
Request guard shared by the Engine and Sim services: a pure ASGI middleware that
checks, in this order and before any body byte is read,

1. the ``Host`` header against the names the service answers to (loopback, the
   configured host, ``FLOWTIME_ALLOWED_HOSTS``): DNS rebinding -> 400;
2. on write methods, where a browser sent the request from: an ``Origin`` other
   than the service's own or the configured CORS origin, or with no ``Origin``
   a ``Sec-Fetch-Site`` of another site -> 403 (cross-site request forgery;
   curl, httpx and the UI's server-side client send neither and pass);
3. the optional bearer token on write methods -> 401;
4. the body limit, on ``Content-Length`` and on the bytes actually received -> 413.

A WebSocket handshake (what-if sessions) is checked as a write - it starts
evaluations - with steps 1-3; a refused one is closed before it is accepted
(the client sees HTTP 403).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowtime.api.problems import problem
from flowtime.origins import origin_of

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOO_LARGE = "Request body too large"
# Host header forms of the loopback interface (an IPv6 literal comes in brackets).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# Bind addresses that name no host (listening on every interface).
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
# Sec-Fetch-Site values that mean another origin's page sent the request.
FOREIGN_SITES = frozenset({"cross-site", "same-site"})


def host_name(text: str) -> str | None:
    """
    The host name of a ``Host`` header (lower case, no port, no trailing dot), or
    None when it is malformed.

    >>> host_name("LocalHost:8080"), host_name("[::1]:8080"), host_name("example.org."), host_name("a b")
    ('localhost', '[::1]', 'example.org', None)
    """
    text = text.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        name, rest = text[: end + 1], text[end + 1:]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name
    name, _, port = text.partition(":")
    if (port and not port.isdigit()) or not name or any(c.isspace() or c in "/\\@" for c in name):
        return None
    return name[:-1] if name.endswith(".") else name


def allowed_host_names(host: str, extra: str | Iterable[str] = "") -> frozenset[str]:
    """
    Loopback, the configured bind ``host`` (unless it is a wildcard) and ``extra``
    (comma- or space-separated when a string; ``*`` allows any host).

    >>> sorted(allowed_host_names("0.0.0.0", "flowtime.lan, Box"))
    ['127.0.0.1', '[::1]', 'box', 'flowtime.lan', 'localhost']
    >>> "[::1]" in allowed_host_names("::1")
    True
    """
    words = extra.replace(",", " ").split() if isinstance(extra, str) else list(extra)
    names = set(LOOPBACK_HOSTS)
    configured = host.strip().lower()
    if configured not in WILDCARD_BINDS:
        names.add(f"[{configured}]" if ":" in configured and not configured.startswith("[") else configured)
    names.update(w.strip().lower().rstrip(".") for w in words if w.strip())
    return frozenset(names)


def origin_key(text: str) -> str:
    """
    An origin in one spelling, so that equal origins compare equal (the text itself when it is no origin).

    >>> origin_key("HTTP://LocalHost:80/"), origin_key("null")
    ('http://localhost', 'null')
    """
    return origin_of(text) or text


class BodyTooLarge(HTTPException):
    """
    Raised from ``receive`` once a streamed body passes the limit: an HTTP error
    (413), not a domain ``LimitExceeded`` (400), and re-raised as is by FastAPI's
    body reading.
    """

    title = TOO_LARGE


class RequestGuard:
    """
    Host check, cross-site write check, bearer token on write methods (when
    configured) and the body limit; a chunked or lying client is cut off at the
    limit.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, api_token: str | None,
                 realm: str = "flowtime", limit_setting: str = "FLOWTIME_MAX_BODY_BYTES",
                 host: str = "127.0.0.1", allowed_hosts: str | Iterable[str] = "",
                 cors_origin: str | None = None, cors_setting: str = "FLOWTIME_CORS_ORIGIN") -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_token = api_token
        self.realm = realm
        self.limit_setting = limit_setting
        self.hosts = allowed_host_names(host, allowed_hosts)
        self.any_host = "*" in self.hosts
        self.cors_origin = origin_key(cors_origin) if cors_origin else None
        self.cors_setting = cors_setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "ws"), "http")  # what Origin says
            if self._refusal({**scope, "method": "POST", "scheme": scheme}, headers) is not None:
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(int(declared))(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> Any:
        """The response that refuses this request before its body is read, or None."""
        raw_host = headers.get("host", "")
        name = host_name(raw_host)
        if not self.any_host and name not in self.hosts:
            return problem(400, "Unknown host",
                           f"this service answers to the host names {', '.join(sorted(self.hosts))}, not "
                           f"{raw_host[:100]!r}; add the name to FLOWTIME_ALLOWED_HOSTS to serve it "
                           "(the check keeps DNS-rebinding pages out)")
        method = scope["method"]
        if method not in WRITE_METHODS:
            return None
        foreign = self._foreign_sender(scope, headers, raw_host)
        if foreign:
            return problem(403, "Cross-site request refused",
                           f"{method} requests sent by a page of another site are refused ({foreign}); "
                           f"only this service's own pages and the origin in {self.cors_setting} may write")
        if self.api_token and not self._authorized(headers):
            response = problem(401, "Unauthorized", f"{method} requests need the header "
                               "'Authorization: Bearer <token>' (the server's FLOWTIME_API_TOKEN)")
            response.headers["WWW-Authenticate"] = f'Bearer realm="{self.realm}"'
            return response
        return None

    def _foreign_sender(self, scope: Scope, headers: dict[str, str], raw_host: str) -> str | None:
        """Why a browser page of another origin sent this write, or None."""
        origin = headers.get("origin")
        if origin is not None:
            key = origin_key(origin)
            own = origin_key(f"{scope.get('scheme', 'http')}://{raw_host}")
            if key == own or key == self.cors_origin:
                return None
            return f"Origin {origin[:100]!r}"
        site = headers.get("sec-fetch-site", "").strip().lower()
        return f"Sec-Fetch-Site {site!r} without an Origin" if site in FOREIGN_SITES else None

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expected = self.api_token or ""
        return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), expected.encode())

    def _too_large(self, size: int) -> Any:
        return problem(413, TOO_LARGE,
                       f"request body is {size} bytes; the limit is {self.max_body_bytes} bytes ({self.limit_setting})")

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes
        setting = self.limit_setting

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(413, f"request body is over the limit of {limit} bytes ({setting})")
            return message

        return counted
