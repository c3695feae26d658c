"""
Jinja rendering for the UI: one environment, filters for numbers, sizes and
times, and the fragment rule (a request sent by ``app.js`` with ``X-Fragment``
gets only the block it asked for, so filters update a table in place).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from flowtime.ui import csrf
from flowtime.ui.forms import fmt_number

TEMPLATES_DIR = Path(__file__).parent / "templates"
FRAGMENT_HEADER = "X-Fragment"


def _size(n: Any) -> str:
    """
    >>> _size(999), _size(2048), _size(5 * 1024 * 1024)
    ('999 B', '2.0 KB', '5.0 MB')
    """
    if not isinstance(n, int | float):
        return "—"
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Seven fractional digits (.NET round-trip) are more than fromisoformat takes.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        rest = tail[len(digits):]
        text = f"{head}.{digits[:6]}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: Any) -> str:
    """
    >>> _when("2025-09-21T16:11:33.4794927Z")
    '2025-09-21 16:11:33 UTC'
    """
    parsed = parse_time(value)
    if parsed is None:
        return str(value) if value else "—"
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when_short(value: Any) -> str:
    """
    >>> _when_short("2025-09-21T16:11:33Z")
    '2025-09-21 16:11'
    """
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if parsed else (str(value) if value else "—")


def _short_id(value: Any, n: int = 22) -> str:
    """
    Long ids shortened in the middle, so both the start and the distinguishing end show.

    >>> _short_id("model_20250101T000000Z_e0f65f1f")
    'model_202…00Z_e0f65f1f'
    """
    if not value:
        return "—"
    text = str(value)
    if len(text) <= n:
        return text
    tail = (n - 1) * 3 // 5
    return text[: n - 1 - tail] + "…" + text[-tail:]


def _short_hash(value: Any, n: int = 12) -> str:
    """
    >>> _short_hash("sha256:0123456789abcdef0123")
    '0123456789ab'
    """
    if not value:
        return "—"
    text = str(value)
    return text.split(":", 1)[-1][:n]


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        return fmt_number(round(value, digits))
    return fmt_number(value)


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters["size"] = _size
    env.filters["when"] = _when
    env.filters["short_hash"] = _short_hash
    env.filters["when_short"] = _when_short
    env.filters["short_id"] = _short_id
    env.filters["num"] = _num
    env.filters["pretty_json"] = _pretty_json
    env.filters["text"] = fmt_number
    env.globals["csrf_field"] = csrf.csrf_field
    return templates


def is_fragment(request: Request) -> bool:
    return request.headers.get(FRAGMENT_HEADER, "") not in ("", "0")


def page(request: Request, name: str, context: dict[str, Any], status: int = 200,
         headers: dict[str, str] | None = None) -> HTMLResponse:
    """
    Render ``name``; ``context`` gets ``request``, the service URLs, the version
    and the form token (the session cookie is set when the browser has none).
    """
    templates: Jinja2Templates = request.app.state.templates
    ctx = {
        "settings": request.app.state.settings,
        "version": request.app.state.version,
        "path": request.url.path,
        "banners": [],
        **context,
        csrf.FIELD: csrf.token_for(request),
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status, headers=headers)
    csrf.set_cookie(request, response)
    return response
