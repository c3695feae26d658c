"""The service clients: bearer token, error translation, id checks (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from flowtime.ui.clients import (
    MAX_ERROR_BODY,
    OFF_LOOP_JSON_BYTES,
    EngineClient,
    InvalidId,
    ServiceProblem,
    ServiceUnavailable,
    SimClient,
    path_id,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with(client: EngineClient | SimClient, call: Any) -> Any:
    try:
        return await call(client)
    finally:
        await client.aclose()


def test_the_bearer_token_goes_on_every_request() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"status": "ok"})

    client = EngineClient("http://engine", token="tok", transport=httpx.MockTransport(handler))
    run(_with(client, lambda c: c.health()))
    assert seen == ["Bearer tok"]


def test_run_posts_json_with_the_provenance_header_compact() -> None:
    captured: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        captured["header"] = request.headers["x-model-provenance"]
        captured["body"] = json.loads(request.content)
        return httpx.Response(201, json={"runId": "run_1"})

    client = EngineClient("http://engine", transport=httpx.MockTransport(handler))
    prov = {"modelId": "m", "templateTitle": "Café", "parameters": {"b": 1, "a": [1, 2]}}
    assert run(_with(client, lambda c: c.run("x: 1", provenance=prov, seed=3, sample_pmf=True))) == {
        "runId": "run_1"}
    assert captured["header"] == '{"modelId":"m","templateTitle":"Caf\\u00e9","parameters":{"b":1,"a":[1,2]}}'
    assert json.loads(captured["header"]) == prov
    assert captured["body"] == {"yaml": "x: 1", "seed": 3, "samplePmf": True}


def test_a_refused_connection_is_service_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = SimClient("http://sim:1", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceUnavailable, match=r"Sim is not reachable at http://sim:1 \(connection refused\)"):
        run(_with(client, lambda c: c.templates()))


def test_a_timeout_is_service_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = EngineClient("http://engine", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceUnavailable, match=r"\(timed out\)"):
        run(_with(client, lambda c: c.health()))


def test_a_problem_response_keeps_title_detail_and_located_errors() -> None:
    body = {"type": "about:blank", "title": "Invalid model", "status": 400, "detail": "1 error",
            "errors": [{"path": "nodes.a.expr", "line": 4, "column": 9, "message": "unknown node"}]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=body, headers={"content-type": "application/problem+json"})

    client = EngineClient("http://engine", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceProblem) as info:
        run(_with(client, lambda c: c.run("x")))
    exc = info.value
    assert (exc.status, exc.title, exc.detail, exc.service) == (400, "Invalid model", "1 error", "Engine")
    assert [(e.location, e.message) for e in exc.errors] == [("line 4, column 9, nodes.a.expr", "unknown node")]


def test_a_non_json_error_keeps_its_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    client = EngineClient("http://engine", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceProblem, match="Engine answered 502: bad gateway"):
        run(_with(client, lambda c: c.health()))


def test_list_shapes_are_tolerated() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/templates":
            return httpx.Response(200, json={"templates": [{"id": "a"}, "junk"]})
        return httpx.Response(200, json=[{"templateId": "a"}])

    client = SimClient("http://sim", transport=httpx.MockTransport(handler))
    assert run(_with(client, lambda c: c.templates())) == [{"id": "a"}]
    client = SimClient("http://sim", transport=httpx.MockTransport(handler))
    assert run(_with(client, lambda c: c.models())) == [{"templateId": "a"}]


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "a b", "x" * 201])
def test_ids_that_could_leave_their_path_segment_are_refused(bad: str) -> None:
    with pytest.raises(InvalidId):
        path_id(bad)


def test_series_ids_and_hashes_pass_unchanged() -> None:
    assert path_id("served@SERVED@DEFAULT") == "served@SERVED@DEFAULT"
    assert path_id("sha256:ab12") == "sha256:ab12"


class _Endless(httpx.AsyncByteStream):
    """A body that never ends, counting the chunks read from it."""

    def __init__(self, chunk: bytes) -> None:
        self.chunk = chunk
        self.read = 0
        self.closed = False

    async def __aiter__(self) -> Any:
        while True:
            self.read += 1
            yield self.chunk

    async def aclose(self) -> None:
        self.closed = True


def test_a_streamed_answer_arrives_in_chunks_and_is_closed_after() -> None:
    body = _Endless(b"t,value\n")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=body, headers={
            "content-type": "text/csv", "content-disposition": 'attachment; filename="r.csv"'})

    async def first_three(c: EngineClient) -> list[bytes]:
        stream = await c.export("run_20250101T000000Z_0123abcd", "csv")
        assert (stream.media_type, stream.filename) == ("text/csv", "r.csv")
        got = []
        chunks = stream.chunks()
        for _ in range(3):
            got.append(await anext(chunks))
        await stream.close()
        return got

    client = EngineClient("http://engine", transport=httpx.MockTransport(handler))
    assert run(_with(client, first_three)) == [b"t,value\n"] * 3
    assert body.read <= 4 and body.closed  # read as taken, never ahead to the end


def test_a_streamed_error_answer_is_read_only_up_to_a_bound() -> None:
    body = _Endless(b"x" * 1024)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, stream=body, headers={"content-type": "text/plain"})

    client = EngineClient("http://engine", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceProblem, match=r"Engine answered 500: x+") as info:
        run(_with(client, lambda c: c.export("run_20250101T000000Z_0123abcd", "csv")))
    assert len(info.value.detail) <= 2000
    assert body.read <= MAX_ERROR_BODY // 1024 + 1 and body.closed


def test_a_streamed_problem_answer_keeps_its_fields() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"title": "Run not found", "detail": "run r not found"},
                              headers={"content-type": "application/problem+json"})

    client = EngineClient("http://engine", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceProblem) as info:
        run(_with(client, lambda c: c.file_stream("run_20250101T000000Z_0123abcd", "run.json")))
    assert (info.value.status, info.value.title, info.value.detail) == (404, "Run not found", "run r not found")


def test_a_refused_stream_is_service_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = EngineClient("http://engine:1", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceUnavailable, match=r"\(connection refused\)"):
        run(_with(client, lambda c: c.export("run_20250101T000000Z_0123abcd", "csv")))


def test_large_json_answers_are_parsed_off_the_event_loop() -> None:
    """A multi-megabyte index is parsed in a worker thread; the loop's thread never runs json.loads on it."""
    import threading

    series = [{"id": f"n{i}@N{i}@DEFAULT", "nodeId": f"n{i}"} for i in range(20_000)]
    payload = json.dumps({"series": series}).encode()
    assert len(payload) > OFF_LOOP_JSON_BYTES
    threads: list[str] = []
    real = json.loads

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=payload, headers={"content-type": "application/json"})

    async def index(c: EngineClient) -> tuple[dict[str, Any], str]:
        return await c.run_index("run_20250101T000000Z_0123abcd"), threading.current_thread().name

    client = EngineClient("http://engine", transport=httpx.MockTransport(handler))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(json, "loads", spy)
        data, loop_thread = run(_with(client, index))
    assert len(data["series"]) == 20_000
    assert threads and loop_thread not in threads
