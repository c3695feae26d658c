"""
HTTP clients for the two services the UI orchestrates: Engine and Sim.

The UI never imports either service; it speaks their HTTP APIs through these
two thin classes. Transport failures and error responses are turned into two
exceptions, once, here:

    ServiceError
    ├── ServiceUnavailable      connection refused, DNS failure, timeout
    └── ServiceProblem          the service answered 4xx/5xx (problem+json kept)

The app renders both as pages (a banner for the first, located messages for
the second); routes only catch ``ServiceProblem`` where a 400 is part of the
page's flow (a form re-rendered with its messages).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from flowtime.model.provenance import HEADER as PROVENANCE_HEADER

# Ids travel in URL paths: keep them to the characters the services issue.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.@:-]{1,200}$")
# The state API's views of a stored run the browser may read through the UI (decision 0027).
STATE_VIEWS = ("graph", "state", "state_window", "metrics")
# JSON bodies larger than this are parsed in a worker thread, off the event loop.
OFF_LOOP_JSON_BYTES = 256 * 1024
# Most of an error body read from a streamed answer (a problem document is small).
MAX_ERROR_BODY = 64 * 1024


class InvalidId(ValueError):
    """An id from a URL that the services could never have issued (rendered as 404)."""


class ServiceError(Exception):
    """Base of the UI's upstream errors; ``service`` is ``"Engine"`` or ``"Sim"``."""

    def __init__(self, service: str, base_url: str, message: str) -> None:
        super().__init__(message)
        self.service = service
        self.base_url = base_url


class ServiceUnavailable(ServiceError):
    """The service could not be reached (not running, wrong URL, timed out)."""

    def __init__(self, service: str, base_url: str, reason: str) -> None:
        super().__init__(service, base_url, f"{service} is not reachable at {base_url} ({reason})")
        self.reason = reason


@dataclass(frozen=True)
class UpstreamProblem:
    """One located problem reported by a service (``errors[]`` of problem+json)."""

    path: str = ""
    message: str = ""
    line: int | None = None
    column: int | None = None
    severity: str = "error"

    @classmethod
    def from_json(cls, data: Any) -> UpstreamProblem:
        if not isinstance(data, dict):
            return cls(message=str(data))
        line = data.get("line")
        column = data.get("column")
        return cls(
            path=str(data.get("path") or ""),
            message=str(data.get("message") or ""),
            line=line if isinstance(line, int) else None,
            column=column if isinstance(column, int) else None,
            severity=str(data.get("severity") or "error"),
        )

    @property
    def location(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
            if self.column is not None:
                parts.append(f"column {self.column}")
        if self.path:
            parts.append(self.path)
        return ", ".join(parts)


class ServiceProblem(ServiceError):
    """The service answered with an error status; its problem+json fields are kept."""

    def __init__(self, service: str, base_url: str, status: int, title: str, detail: str,
                 errors: list[UpstreamProblem] | None = None) -> None:
        super().__init__(service, base_url, f"{service} answered {status}: {detail or title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []

    @classmethod
    def from_response(cls, service: str, base_url: str, resp: httpx.Response) -> ServiceProblem:
        title = resp.reason_phrase or f"HTTP {resp.status_code}"
        detail = ""
        errors: list[UpstreamProblem] = []
        try:
            body = resp.json()
        except ValueError:
            detail = resp.text.strip()[:2000]
        else:
            if isinstance(body, dict):
                title = str(body.get("title") or title)
                detail = str(body.get("detail") or body.get("error") or "")
                raw = body.get("errors")
                if isinstance(raw, list):
                    errors = [UpstreamProblem.from_json(e) for e in raw]
            else:
                detail = str(body)[:2000]
        return cls(service, base_url, resp.status_code, title, detail, errors)


@dataclass(frozen=True)
class Download:
    """A file fetched from a service, to be passed through to the browser."""

    content: bytes
    media_type: str
    filename: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    """
    An answer being received: its media type and file name, and the body as
    chunks, read as the browser takes them (``close`` when not read to the end).
    """

    response: httpx.Response
    media_type: str
    filename: str | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_bytes():
                yield chunk
        finally:
            await self.response.aclose()

    async def close(self) -> None:
        await self.response.aclose()


def _filename(resp: httpx.Response) -> str | None:
    disposition = resp.headers.get("content-disposition")
    if not disposition:
        return None
    m = re.search(r'filename="?([^";]+)"?', disposition)
    return m.group(1) if m else None


def path_id(value: str) -> str:
    """
    Check an id before it goes into a URL path, and quote it.

    >>> path_id("served@SERVED@DEFAULT")
    'served@SERVED@DEFAULT'
    >>> path_id("../etc")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    flowtime.ui.clients.InvalidId: not a valid id: '../etc'
    """
    if not ID_PATTERN.match(value) or ".." in value:
        raise InvalidId(f"not a valid id: {value!r}")
    return quote(value, safe="@:")


class ServiceClient:
    """An ``httpx.AsyncClient`` for one service with the UI's error translation."""

    name = "service"

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._token_header = headers.get("Authorization", "")
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                       timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServiceUnavailable(self.name, self.base_url, "timed out") from None
        except httpx.TransportError as exc:
            reason = type(exc).__name__
            if isinstance(exc, httpx.ConnectError):
                reason = "connection refused"
            raise ServiceUnavailable(self.name, self.base_url, reason) from None
        if resp.status_code >= 400:
            raise ServiceProblem.from_response(self.name, self.base_url, resp)
        return resp

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        resp = await self.request("GET", path, **kwargs)
        return await _json_off_loop(resp, self)

    async def download(self, path: str, **kwargs: Any) -> Download:
        resp = await self.request("GET", path, **kwargs)
        media = resp.headers.get("content-type", "application/octet-stream")
        return Download(resp.content, media, _filename(resp))

    async def stream(self, path: str, **kwargs: Any) -> Stream:
        """
        GET ``path`` and return as soon as the headers are in; the body is not
        held in memory (an error answer is read, at most ``MAX_ERROR_BODY`` bytes).
        """
        headers = kwargs.pop("headers", None)
        req = self._http.build_request("GET", path, headers=headers, **kwargs)
        try:
            resp = await self._http.send(req, stream=True)
        except httpx.TimeoutException:
            raise ServiceUnavailable(self.name, self.base_url, "timed out") from None
        except httpx.TransportError as exc:
            reason = "connection refused" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
            raise ServiceUnavailable(self.name, self.base_url, reason) from None
        if resp.status_code >= 400:
            body = bytearray()
            try:
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_ERROR_BODY:
                        break
            except httpx.HTTPError:
                pass
            finally:
                await resp.aclose()
            read = httpx.Response(resp.status_code, headers=resp.headers, content=bytes(body[:MAX_ERROR_BODY]),
                                  request=req)
            raise ServiceProblem.from_response(self.name, self.base_url, read)
        media = resp.headers.get("content-type", "application/octet-stream")
        return Stream(resp, media, _filename(resp))


def _json(resp: httpx.Response, client: ServiceClient) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise ServiceProblem(client.name, client.base_url, 502, "Bad response",
                             f"expected JSON from {resp.request.url.path}") from None


async def _json_off_loop(resp: httpx.Response, client: ServiceClient) -> Any:
    """Parse a large answer (a 100k-series index is megabytes) in a thread: the loop keeps serving."""
    if len(resp.content) < OFF_LOOP_JSON_BYTES:
        return _json(resp, client)
    return await asyncio.to_thread(_json, resp, client)


class EngineClient(ServiceClient):
    """Engine API (``/v1``): runs, registry, graphs, comparisons."""

    name = "Engine"

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._experiment_schema: tuple[dict[str, Any], dict[str, Any]] | None = None

    async def health(self) -> dict[str, Any]:
        data: dict[str, Any] = await self.get_json("/v1/healthz", timeout=5.0)
        return data

    async def run(self, model_yaml: str, *, provenance: dict[str, Any] | None = None,
                  seed: int | None = None, sample_pmf: bool = False) -> dict[str, Any]:
        headers = {}
        if provenance:
            headers[PROVENANCE_HEADER] = json.dumps(provenance, separators=(",", ":"),
                                                    ensure_ascii=True)
        body = {"yaml": model_yaml, "seed": seed, "samplePmf": sample_pmf}
        resp = await self.request("POST", "/v1/run", json=body, headers=headers)
        data: dict[str, Any] = await _json_off_loop(resp, self)
        return data

    async def graph(self, model_yaml: str) -> dict[str, Any]:
        resp = await self.request("POST", "/v1/graph", content=model_yaml.encode(),
                                  headers={"Content-Type": "application/x-yaml"})
        data: dict[str, Any] = await _json_off_loop(resp, self)
        return data

    async def validate(self, model_yaml: str) -> dict[str, Any]:
        resp = await self.request("POST", "/v1/validate", content=model_yaml.encode(),
                                  headers={"Content-Type": "application/x-yaml"})
        data: dict[str, Any] = await _json_off_loop(resp, self)
        return data

    async def artifacts(self, params: dict[str, Any]) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        query.setdefault("type", "run")
        data: dict[str, Any] = await self.get_json("/v1/artifacts", params=query)
        return data

    async def run_detail(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.get_json(f"/v1/runs/{path_id(run_id)}")
        return data

    async def run_index(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.get_json(f"/v1/runs/{path_id(run_id)}/index")
        return data

    async def series_values(self, run_id: str, series_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.get_json(
            f"/v1/runs/{path_id(run_id)}/series/{path_id(series_id)}",
            headers={"Accept": "application/json"},
        )
        return data

    async def series_csv(self, run_id: str, series_id: str) -> Download:
        return await self.download(f"/v1/runs/{path_id(run_id)}/series/{path_id(series_id)}",
                                   headers={"Accept": "text/csv"})

    async def export(self, run_id: str, fmt: str) -> Stream:
        """The whole run as one long table (``time_bin,offset_minutes,series,value``), streamed."""
        return await self.stream(f"/v1/runs/{path_id(run_id)}/export", params={"format": fmt})

    async def file(self, run_id: str, name: str) -> Download:
        return await self.download(f"/v1/artifacts/{path_id(run_id)}/files/{path_id(name)}")

    async def file_stream(self, run_id: str, name: str) -> Stream:
        return await self.stream(f"/v1/artifacts/{path_id(run_id)}/files/{path_id(name)}")

    async def series_stream(self, run_id: str, series_id: str, accept: str) -> Stream:
        return await self.stream(f"/v1/runs/{path_id(run_id)}/series/{path_id(series_id)}",
                                 headers={"Accept": accept})

    async def state_stream(self, run_id: str, view: str, params: dict[str, str]) -> Stream:
        """One of the run's state views (``graph``, ``state``, ``state_window``, ``metrics``), streamed."""
        if view not in STATE_VIEWS:
            raise InvalidId(f"not a state view: {view!r}")
        return await self.stream(f"/v1/runs/{path_id(run_id)}/{view}", params=params)

    async def delete_run(self, run_id: str) -> None:
        await self.request("DELETE", f"/v1/runs/{path_id(run_id)}")

    async def compare(self, a: str, b: str, *, offset: int = 0) -> dict[str, Any]:
        """One page of the comparison (the Engine caps the series per answer; ``page`` says which)."""
        path_id(a), path_id(b)
        params: dict[str, Any] = {"a": a, "b": b}
        if offset:
            params["offset"] = offset
        data: dict[str, Any] = await self.get_json("/v1/runs/compare", params=params)
        return data

    async def compare_many(self, run_ids: list[str], baseline: str, *, offset: int = 0) -> dict[str, Any]:
        """Several runs against ``baseline``, on their common span (the Engine resamples different grids)."""
        for rid in run_ids:
            path_id(rid)
        params: list[tuple[str, Any]] = [("run", rid) for rid in run_ids] + [("baseline", baseline)]
        if offset:
            params.append(("offset", offset))
        data: dict[str, Any] = await self.get_json("/v1/runs/compare", params=params)
        return data

    # ---- experiments (/v1/experiments, decision 0036; the analysis pages, 0044) ------------------
    # Progress is read by polling ``experiment``; a push stream (SSE) can replace the poll in
    # ``static/analysis.js`` without changing these calls.

    async def experiment_schema(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the spec's schema, the schemas its ``$ref``s name), from the Engine's OpenAPI document, kept."""
        if self._experiment_schema is None:
            doc = await self.get_json("/openapi.json")
            schemas = (doc.get("components") or {}).get("schemas") or {} if isinstance(doc, dict) else {}
            spec = schemas.get("ExperimentSpec")
            if not isinstance(spec, dict):
                raise ServiceProblem(self.name, self.base_url, 502, "No experiment schema",
                                     "the Engine's OpenAPI document has no ExperimentSpec (an older Engine?)")
            self._experiment_schema = (spec, schemas)
        return self._experiment_schema

    async def start_experiment(self, spec: dict[str, Any], model_yaml: str) -> dict[str, Any]:
        resp = await self.request("POST", "/v1/experiments", json={"spec": spec, "model": model_yaml})
        data: dict[str, Any] = _json(resp, self)
        return data

    async def experiments(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        data: dict[str, Any] = await self.get_json("/v1/experiments", params=query)
        return data

    async def experiment(self, exp_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.get_json(f"/v1/experiments/{path_id(exp_id)}")
        return data

    async def cancel_experiment(self, exp_id: str) -> None:
        await self.request("DELETE", f"/v1/experiments/{path_id(exp_id)}")

    async def materialise_point(self, exp_id: str, point: int) -> dict[str, Any]:
        resp = await self.request("POST", f"/v1/experiments/{path_id(exp_id)}/points/{int(point)}/run")
        data: dict[str, Any] = _json(resp, self)
        return data


    # ---- live what-if (decision 0043): the UI relays one socket to the Engine's /v1/whatif ---------

    def socket_target(self, path: str) -> tuple[str, dict[str, str]]:
        """The ``ws://`` (``wss://``) URL of one of the Engine's socket paths, and the headers it needs."""
        if path != "/v1/whatif" and not path.startswith("/v1/whatif/"):
            raise InvalidId(f"not an Engine what-if socket: {path[:80]!r}")
        base = re.sub(r"^http", "ws", self.base_url, count=1)
        return base + path, {"Authorization": self._token_header} if self._token_header else {}


class SimClient(ServiceClient):
    """Sim API (``/api/v1``): templates, generation, the temporary model store."""

    name = "Sim"

    async def health(self) -> dict[str, Any]:
        data: dict[str, Any] = await self.get_json("/api/v1/healthz", timeout=5.0)
        return data

    async def templates(self) -> list[dict[str, Any]]:
        data = await self.get_json("/api/v1/templates")
        if isinstance(data, dict):  # tolerate {"templates": [...]}
            data = data.get("templates", [])
        return [t for t in data if isinstance(t, dict)]

    async def template(self, template_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.get_json(f"/api/v1/templates/{path_id(template_id)}")
        return data

    async def generate(self, template_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
        resp = await self.request("POST", f"/api/v1/templates/{path_id(template_id)}/generate",
                                  json={"parameters": parameters})
        data: dict[str, Any] = await _json_off_loop(resp, self)
        return data

    async def models(self) -> list[dict[str, Any]]:
        data = await self.get_json("/api/v1/models")
        models = data.get("models", []) if isinstance(data, dict) else data
        return [m for m in models if isinstance(m, dict)]

    async def model(self, template_id: str, model_hash: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.get_json(
            f"/api/v1/models/{path_id(template_id)}/{path_id(model_hash)}"
        )
        return data
