"""Web origins in one spelling: the comparison behind the Engine's, Sim's and the UI's forgery checks."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """
    The origin of a URL (or an ``Origin`` header value), lower-cased, default port
    dropped; None when it has no scheme and host (``null``, garbage).

    >>> origin_of("HTTP://LocalHost:80/runs?x=1"), origin_of("https://ui.example:5219"), origin_of("null")
    ('http://localhost', 'https://ui.example:5219', None)
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    keep = port is not None and port != DEFAULT_PORTS.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{host}{f':{port}' if keep else ''}"
