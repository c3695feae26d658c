"""
The UI's defences against other sites: a ``Host`` check (DNS rebinding) and a
token on every state-changing form post (cross-site request forgery).

The token is a signed double-submit: a random session value lives in an
``HttpOnly; SameSite=Strict`` cookie, and every page carries
``HMAC(secret, session)``, rendered into the forms (``csrf_field()``) and added
by a small script in ``base.html`` to any POST form a script builds. A post
passes when its ``Origin`` (or, without one, its ``Referer``) is this UI's own
origin and its ``csrf_token`` field matches the cookie's signature. The
signature matters because cookies are shared by every port of a host: a page on
another local port can set the cookie, but cannot sign it. The secret is made
per process, so a form loaded before a restart of the UI has to be reloaded.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from fastapi import Request, WebSocket
from fastapi.responses import Response
from jinja2 import pass_context
from markupsafe import Markup, escape
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from flowtime.origins import origin_of

FIELD = "csrf_token"
COOKIE_PREFIX = "flowtime_csrf"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
_SESSION = re.compile(r"^[A-Za-z0-9_-]{43}$")


class CsrfRejected(Exception):
    """A state-changing request that did not come from this UI's own pages (rendered as 403)."""


def new_secret() -> bytes:
    return secrets.token_bytes(32)


# ---- hosts (the same rules as flowtime.api.guard, which the UI may not import) -----------------


def host_name(text: str) -> str | None:
    """
    >>> host_name("LocalHost:5219"), host_name("[::1]:5219"), host_name("x:y")
    ('localhost', '[::1]', None)
    """
    text = text.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return text[: end + 1]
    name, _, port = text.partition(":")
    if (port and not port.isdigit()) or not name or any(c.isspace() or c in "/\\@" for c in name):
        return None
    return name[:-1] if name.endswith(".") else name


def allowed_host_names(host: str, extra: str) -> frozenset[str]:
    """
    >>> sorted(allowed_host_names("0.0.0.0", "ui.lan"))
    ['127.0.0.1', '[::1]', 'localhost', 'ui.lan']
    """
    names = set(LOOPBACK_HOSTS)
    configured = host.strip().lower()
    if configured not in WILDCARD_BINDS:
        names.add(f"[{configured}]" if ":" in configured and not configured.startswith("[") else configured)
    names.update(w.lower().rstrip(".") for w in extra.replace(",", " ").split())
    return frozenset(names)


class HostCheck:
    """Pure ASGI: a request naming a host the UI does not serve is a 400 (DNS rebinding)."""

    def __init__(self, app: ASGIApp, *, names: frozenset[str]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.names:
            await self.app(scope, receive, send)
            return
        raw = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"host"), "")
        if host_name(raw) in self.names:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refused at the handshake (the server answers 403)
            await send({"type": "websocket.close", "code": 1008})
            return
        response = JSONResponse({
            "type": "about:blank", "title": "Unknown host", "status": 400,
            "detail": f"the FlowTime UI answers to the host names {', '.join(sorted(self.names))}, not "
                      f"{raw[:100]!r}; add the name to FLOWTIME_ALLOWED_HOSTS to serve it "
                      "(the check keeps DNS-rebinding pages out)",
        }, status_code=400, media_type="application/problem+json")
        await response(scope, receive, send)


# ---- origins ---------------------------------------------------------------------------------


def own_origin(request: Request) -> str | None:
    return origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}")


def _foreign_sender(request: Request) -> str | None:
    """Why this request came from another origin's page, or None."""
    own = own_origin(request)
    origin = request.headers.get("origin")
    if origin is not None:
        return None if origin_of(origin) == own and own else f"it came from the page origin {origin[:100]!r}"
    referer = request.headers.get("referer")
    if referer is not None:
        return None if origin_of(referer) == own and own else "it came from a page of another site"
    site = request.headers.get("sec-fetch-site", "").lower()
    return "it came from a page of another site" if site in ("cross-site", "same-site") else None


# ---- the token ---------------------------------------------------------------------------------


def cookie_name(request: Request) -> str:
    """One cookie per UI port: cookies are shared by every port of a host."""
    server = request.scope.get("server")
    return f"{COOKIE_PREFIX}_{server[1]}" if server and server[1] else COOKIE_PREFIX


def _sign(secret: bytes, session: str) -> str:
    return hmac.new(secret, session.encode(), hashlib.sha256).hexdigest()


def session_of(request: Request) -> tuple[str, bool]:
    """The request's session value, and whether it is new (the response must set the cookie)."""
    given = request.cookies.get(cookie_name(request), "")
    if _SESSION.match(given):
        return given, False
    made: str | None = getattr(request.state, "csrf_session", None)
    if made is None:
        made = secrets.token_urlsafe(32)
        request.state.csrf_session = made
    return made, True


def token_for(request: Request) -> str:
    session, _ = session_of(request)
    secret: bytes = request.app.state.csrf_secret
    return _sign(secret, session)


def set_cookie(request: Request, response: Response) -> None:
    """Give the browser its session cookie, when this request brought none."""
    session, fresh = session_of(request)
    if fresh:
        response.set_cookie(cookie_name(request), session, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")


def socket_refusal(ws: WebSocket) -> str | None:
    """
    Why a WebSocket handshake came from another site's page, or None. Browsers
    send ``Origin`` on every handshake and no form token can ride along, so the
    socket routes check this instead of ``csrf_protect`` (cross-site WebSocket hijacking).
    """
    origin = ws.headers.get("origin")
    if origin is None:
        return None  # not a browser page: nothing a visited site could forge
    scheme = "https" if ws.url.scheme == "wss" else "http"
    own = origin_of(f"{scheme}://{ws.headers.get('host', '')}")
    return None if own and origin_of(origin) == own else f"it came from the page origin {origin[:100]!r}"


async def csrf_protect(connection: HTTPConnection) -> None:
    """
    App-wide dependency: a state-changing request needs a same-origin
    ``Origin``/``Referer`` (when the browser sent one) and the form's token.
    WebSocket handshakes pass here; their routes call ``socket_refusal``.
    """
    if not isinstance(connection, Request) or connection.method not in WRITE_METHODS:
        return
    request = connection
    foreign = _foreign_sender(request)
    if foreign:  # checked before the body is read
        raise CsrfRejected(f"The request was refused because {foreign}, not from this UI.")
    session = request.cookies.get(cookie_name(request), "")
    if not _SESSION.match(session):
        raise CsrfRejected("The request carried no session cookie of this UI (cookies blocked, or the "
                           "page came from elsewhere). Reload the page and submit the form again.")
    form = await request.form()
    given = form.get(FIELD)
    expected = _sign(request.app.state.csrf_secret, session)
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRejected("The form's security token is missing or out of date (the UI may have "
                           "restarted since the page was loaded). Reload the page and submit it again.")


@pass_context
def csrf_field(context: Any) -> Markup:
    """``{{ csrf_field() }}`` inside a POST form: the hidden token field."""
    return Markup(f'<input type="hidden" name="{FIELD}" value="{escape(context.get(FIELD, ""))}">')
