"""
Small in-memory stand-ins for the Engine and Sim HTTP APIs, for UI tests.

They follow the contracts the UI codes against (paths, JSON shapes,
problem+json errors) and use FlowTime's core to evaluate models, so numbers are
real. ``requests`` records what each fake received (headers included), which
is how tests check that the UI forwarded provenance and the bearer token.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from flowtime.engine import compile_model
from flowtime.engine.evaluate import evaluate
from flowtime.errors import ModelError
from flowtime.model.load import load_model

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail,
                         "errors": errors or [], "error": detail}, status_code=status, media_type=PROBLEM)


TEMPLATE: dict[str, Any] = {
    "id": "transport",
    "title": "Transportation Network",
    "description": "Demand against capacity, per period.",
    "tags": ["beginner", "transportation"],
    "version": "1.0",
    "parameters": [
        {"name": "bins", "type": "integer", "title": "Time Periods", "description": "Number of periods",
         "default": 4, "min": 3, "max": 48, "enum": None, "items": None, "minItems": None, "maxItems": None},
        {"name": "demand", "type": "array", "title": "Demand", "description": "Passengers per period",
         "default": [10, 15, 20, 25], "min": 0, "max": 1000, "enum": None, "items": {"type": "number"},
         "minItems": 1, "maxItems": 48},
        {"name": "capacity", "type": "number", "title": "Capacity", "description": "Seats per period",
         "default": 18, "min": 1, "max": 1000, "enum": None, "items": None, "minItems": None, "maxItems": None},
        {"name": "unit", "type": "string", "title": "Bin unit", "description": "",
         "default": "hours", "min": None, "max": None, "enum": ["minutes", "hours", "days"], "items": None,
         "minItems": None, "maxItems": None},
        {"name": "surge", "type": "boolean", "title": "Surge pricing", "description": "",
         "default": False, "min": None, "max": None, "enum": None, "items": None, "minItems": None,
         "maxItems": None},
    ],
}
OTHER_TEMPLATE: dict[str, Any] = {"id": "factory", "title": "Manufacturing Line", "description": "Stations in a row.",
                  "tags": ["manufacturing"], "version": "2.1", "parameters": []}


def _render(params: dict[str, Any]) -> str:
    demand = params["demand"]
    return (
        "schemaVersion: 1\n"
        f"grid: {{bins: {params['bins']}, binSize: 1, binUnit: {params['unit']}}}\n"
        "nodes:\n"
        f"  - id: demand\n    kind: const\n    values: {json.dumps(demand)}\n"
        f"  - id: served\n    kind: expr\n    expr: \"MIN(demand, {params['capacity']})\"\n"
        "  - id: unmet\n    kind: expr\n    expr: \"demand - served\"\n"
        "outputs:\n  - series: \"*\"\n"
    )


def create_fake_sim() -> FastAPI:
    app = FastAPI()
    app.state.requests = []
    app.state.generated = []
    models: dict[tuple[str, str], dict[str, Any]] = {}
    catalog = {TEMPLATE["id"]: TEMPLATE, OTHER_TEMPLATE["id"]: OTHER_TEMPLATE}

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        app.state.requests.append({"method": request.method, "path": request.url.path,
                                   "headers": dict(request.headers)})
        response: Response = await call_next(request)
        return response

    @app.get("/api/v1/healthz")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": "9.9.9-sim", "dataDir": "/tmp/sim", "templatesDir": "builtin",
                "templateCount": len(catalog), "modelCount": len(models)}

    @app.get("/api/v1/templates")
    async def templates() -> list[dict[str, Any]]:
        return [{k: t[k] for k in ("id", "title", "description", "tags", "version")}
                | {"parameterCount": len(t["parameters"])} for t in catalog.values()]

    @app.get("/api/v1/templates/{tid}")
    async def template(tid: str) -> Any:
        if tid not in catalog:
            return problem(404, "Template not found", f"no template {tid!r}")
        return catalog[tid]

    @app.post("/api/v1/templates/{tid}/generate")
    async def generate(tid: str, request: Request) -> Any:
        if tid not in catalog:
            return problem(404, "Template not found", f"no template {tid!r}")
        body = await request.json()
        params = {p["name"]: p["default"] for p in catalog[tid]["parameters"]}
        params.update(body.get("parameters") or {})
        errors = []
        if tid == "transport":
            if not 3 <= int(params["bins"]) <= 48:
                errors.append({"path": "parameters.bins", "line": None, "column": None,
                               "message": f"bins = {params['bins']} is outside 3..48"})
            if len(params["demand"]) != int(params["bins"]):
                errors.append({"path": "parameters.demand", "line": None, "column": None,
                               "message": f"demand has {len(params['demand'])} values; bins is {params['bins']}"})
        if errors:
            return problem(400, "Invalid parameters", "; ".join(str(e["message"]) for e in errors), errors)
        text = _render(params) if tid == "transport" else (
            "schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\n"
            "nodes:\n  - id: a\n    kind: const\n    values: [1, 2, 3]\n")
        digest = f"{abs(hash(text)) % 16**12:012x}"
        prov = {"source": "flowtime-sim", "modelId": f"model_20250101T000000Z_{digest[:8]}",
                "templateId": tid, "templateVersion": catalog[tid]["version"],
                "templateTitle": catalog[tid]["title"], "parameters": params,
                "generatedAt": "2025-01-01T00:00:00Z", "generator": "flowtime-sim/fake", "schemaVersion": "1"}
        quality = {"score": 0.9, "checks": [{"name": "outputs", "passed": True, "message": "ok"},
                                            {"name": "units", "passed": False, "message": "no units"}]}
        # As the real Sim's store: the stored model answers its quality and validation too.
        models[(tid, digest)] = {"model": text, "provenance": prov, "metadata": {"templateId": tid},
                                 "quality": quality, "validation": {"valid": True, "problems": []}}
        app.state.generated.append(prov)
        return {"model": text, "provenance": prov, "modelId": prov["modelId"], "path": f"/tmp/{digest}",
                "hash": digest, "quality": quality, "validation": {"valid": True, "problems": []}}

    @app.get("/api/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"models": [{"templateId": t, "hash": h, "modelId": m["provenance"]["modelId"]}
                           for (t, h), m in models.items()]}

    @app.get("/api/v1/models/{tid}/{digest}")
    async def get_model(tid: str, digest: str) -> Any:
        if (tid, digest) not in models:
            return problem(404, "Model not found", f"no model {tid}/{digest}")
        return models[(tid, digest)]

    return app


def _series_id(node: str) -> str:
    return f"{node}@{node.upper()}@DEFAULT"


def create_fake_engine(extra_runs: int = 0, token: str | None = None) -> FastAPI:
    """``extra_runs`` pre-fills the registry listing; with ``token`` every request must carry it."""
    app = FastAPI()
    app.state.requests = []
    runs: dict[str, dict[str, Any]] = {}
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(extra_runs):
        rid = f"run_{(base + timedelta(minutes=i)).strftime('%Y%m%dT%H%M%SZ')}_{i:08x}"
        runs[rid] = {"id": rid, "created": (base + timedelta(minutes=i)).isoformat(), "title": f"Synthetic {i}",
                     "provenance": {"templateId": f"tpl{i % 7}", "modelId": f"model_{i:08x}"},
                     "series": {}, "grid": {"bins": 24, "binSize": 1, "binUnit": "hours"}, "seed": i,
                     "spec": "", "synthetic": True}
    counter = [extra_runs]

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        app.state.requests.append({"method": request.method, "path": request.url.path,
                                   "headers": dict(request.headers)})
        if token and request.headers.get("authorization") != f"Bearer {token}":
            return problem(401, "Unauthorized", "missing bearer token")
        response: Response = await call_next(request)
        return response

    @app.get("/v1/healthz")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": "9.9.9-engine", "dataDir": "/tmp/engine", "runCount": len(runs),
                "limits": {"maxBins": 10000}}

    def _model_problem(exc: ModelError) -> JSONResponse:
        errs = [p.to_dict() for p in getattr(exc, "problems", [])]
        return problem(400, "Invalid model", str(exc), errs)

    @app.post("/v1/run", status_code=200)
    async def run(request: Request) -> Any:
        body = await request.json()
        text = body["yaml"]
        try:
            loaded = load_model(text)
            graph = compile_model(loaded.model)
            results = evaluate(loaded.model)
        except ModelError as exc:
            return _model_problem(exc)
        header = request.headers.get("x-model-provenance")
        prov = json.loads(header) if header else None
        counter[0] += 1
        now = base + timedelta(days=400, minutes=counter[0])
        rid = f"run_{now.strftime('%Y%m%dT%H%M%SZ')}_{counter[0]:08x}"
        series = {n: [float(v) for v in results[n].tolist()] for n in graph.order}
        runs[rid] = {"id": rid, "created": now.isoformat(), "title": f"Model with {', '.join(graph.order[:3])}",
                     "provenance": prov, "series": series, "grid": loaded.model.grid.to_json(),
                     "seed": body.get("seed") if body.get("seed") is not None else 42, "spec": text}
        return {"runId": rid, "grid": loaded.model.grid.to_json(), "order": graph.order, "series": series,
                "artifactsPath": f"/tmp/{rid}", "provenance": prov, "modelHash": "sha256:ab",
                "scenarioHash": "sha256:ab", "warnings": []}

    @app.post("/v1/graph")
    async def graph(request: Request) -> Any:
        text = (await request.body()).decode()
        try:
            return compile_model(load_model(text).model).describe()
        except ModelError as exc:
            return _model_problem(exc)

    @app.post("/v1/validate")
    async def validate(request: Request) -> Any:
        text = (await request.body()).decode()
        try:
            load_model(text)
        except ModelError as exc:
            return {"valid": False, "problems": [p.to_dict() for p in exc.problems]}
        return {"valid": True, "problems": []}

    def _artifact(r: dict[str, Any]) -> dict[str, Any]:
        prov = r["provenance"] or {}
        return {"id": r["id"], "type": "run", "created": r["created"], "title": r["title"], "tags": ["run"],
                "templateId": prov.get("templateId"), "modelId": prov.get("modelId"),
                "parameters": prov.get("parameters"), "scenarioHash": "sha256:ab", "seed": r["seed"], **r["grid"],
                "seriesCount": len(r["series"]), "totalSize": 1234}

    @app.get("/v1/artifacts")
    async def artifacts(request: Request) -> dict[str, Any]:
        q = request.query_params
        items = list(runs.values())
        if q.get("templateId"):
            items = [r for r in items if (r["provenance"] or {}).get("templateId") == q["templateId"]]
        if q.get("modelId"):
            items = [r for r in items if (r["provenance"] or {}).get("modelId") == q["modelId"]]
        if q.get("search"):
            s = q["search"].lower()
            items = [r for r in items if s in r["title"].lower() or s in r["id"].lower()]
        key = {"id": "id", "title": "title"}.get(q.get("sortBy", "created"), "created")
        items.sort(key=lambda r: r[key], reverse=q.get("sortOrder", "desc") == "desc")
        skip, limit = int(q.get("skip", 0)), int(q.get("limit", 50))
        page = [_artifact(r) for r in items[skip:skip + limit]]
        return {"artifacts": page, "total": len(items), "count": len(page)}

    def _get(rid: str) -> dict[str, Any] | JSONResponse:
        if rid not in runs:
            return problem(404, "Run not found", f"run {rid} not found")
        return runs[rid]

    app.state.compare_limit = 200  # series per comparison page, as the Engine's MAX_COMPARED_SERIES

    @app.get("/v1/runs/compare")
    async def compare(a: str, b: str, offset: int = 0) -> Any:
        ra, rb = _get(a), _get(b)
        if isinstance(ra, JSONResponse):
            return ra
        if isinstance(rb, JSONResponse):
            return rb
        if ra["grid"] != rb["grid"]:
            return problem(409, "Grids differ", "the two runs have different grids")
        out = []
        common = [s for s in ra["series"] if s in rb["series"]]
        limit = app.state.compare_limit
        for sid in common[offset:offset + limit]:
            xa, xb = ra["series"][sid], rb["series"][sid]
            d = [p - q for p, q in zip(xa, xb, strict=True)]
            out.append({"id": _series_id(sid), "a": xa, "b": xb, "delta": d, "relDelta": d,
                        "sumDelta": sum(d), "meanDelta": sum(d) / len(d), "maxAbsDelta": max(abs(x) for x in d)})
        ranking = sorted(({"id": s["id"], "maxAbsDelta": s["maxAbsDelta"], "sumDelta": s["sumDelta"]}
                          for s in out), key=lambda r: -r["maxAbsDelta"])
        return {"a": {"runId": a, "provenance": ra["provenance"]}, "b": {"runId": b, "provenance": rb["provenance"]},
                "grid": ra["grid"], "series": out, "ranking": ranking, "onlyInA": [], "onlyInB": [],
                "page": {"offset": offset, "limit": limit, "returned": len(out), "total": len(common),
                         "truncated": len(out) < len(common),
                         "nextOffset": offset + len(out) if offset + len(out) < len(common) else None,
                         "onlyInACount": 0, "onlyInBCount": 0}}

    @app.get("/v1/runs/{rid}")
    async def run_detail(rid: str) -> Any:
        r = _get(rid)
        if isinstance(r, JSONResponse):
            return r
        return {"runId": rid, "run": {"runId": rid, "engineVersion": "9.9.9", "grid": r["grid"],
                                      "series": [{"id": _series_id(n), "path": f"series/{n}.csv"} for n in r["series"]],
                                      "warnings": [], "createdUtc": r["created"]},
                "manifest": {"scenarioHash": "sha256:ab", "modelHash": "sha256:ab",
                             "rng": {"kind": "pcg32", "seed": r["seed"]}, "seriesHashes": {}},
                "provenance": r["provenance"]}

    @app.get("/v1/runs/{rid}/index")
    async def index(rid: str) -> Any:
        r = _get(rid)
        if isinstance(r, JSONResponse):
            return r
        return {"grid": r["grid"], "series": [
            {"id": _series_id(n), "nodeId": n, "as": None, "path": f"series/{n}.csv", "points": len(v),
             "hash": "sha256:cd"} for n, v in r["series"].items()]}

    @app.get("/v1/runs/{rid}/series/{sid}")
    async def series(rid: str, sid: str, request: Request) -> Any:
        r = _get(rid)
        if isinstance(r, JSONResponse):
            return r
        node = sid.split("@", 1)[0]
        if node not in r["series"]:
            return problem(404, "Series not found", f"series {sid} not in {rid}")
        values = r["series"][node]
        if "application/json" in request.headers.get("accept", ""):
            return {"id": _series_id(node), "nodeId": node, "points": len(values), "values": values}
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["t", "value"])
        w.writerows(enumerate(values))
        return PlainTextResponse(buf.getvalue(), media_type="text/csv")

    @app.get("/v1/runs/{rid}/export")
    async def export(rid: str, format: str = "csv") -> Any:
        r = _get(rid)
        if isinstance(r, JSONResponse):
            return r
        if format == "parquet":
            return Response(b"PAR1fake", media_type="application/vnd.apache.parquet",
                            headers={"Content-Disposition": f'attachment; filename="{rid}.parquet"'})
        # The Engine's long table; values in the same text as this fake's series CSVs.
        rows = "".join(f"{t},{t * 60},{n},{x}\n" for n, v in r["series"].items() for t, x in enumerate(v))
        return Response("time_bin,offset_minutes,series,value\n" + rows, media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{rid}.csv"'})

    @app.get("/v1/artifacts/{rid}/files/{name}")
    async def file(rid: str, name: str) -> Any:
        r = _get(rid)
        if isinstance(r, JSONResponse):
            return r
        if name == "run.json":
            return {"runId": rid, "grid": r["grid"]}
        if name != "spec.yaml":
            return problem(404, "File not found", name)
        return PlainTextResponse(r["spec"], media_type="application/x-yaml")

    @app.delete("/v1/runs/{rid}", status_code=204)
    async def delete(rid: str) -> Response:
        r = _get(rid)
        if isinstance(r, JSONResponse):
            return r
        del runs[rid]
        return Response(status_code=204)

    return app
