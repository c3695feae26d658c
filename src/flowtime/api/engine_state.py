"""
The state API over stored runs: /v1/runs/{id}/graph, /state, /state_window, /metrics.

Each run is opened once (``artifacts.state.StateCache`` on ``app.state``: its
series read into one block, metrics derived, findings taken from run.json or
computed) and every answer is a slice of it, written with orjson (NaN as
``null``). Errors are problem+json: 404 unknown run, 400 a bin or window
outside the run (naming the parameter and the valid range), 409 a run without
topology (the reference answers 412) or whose model cannot be reloaded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from flowtime.api.engine_deps import get_registry
from flowtime.api.problems import problem_responses
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.snapshot import graph, snapshot
from flowtime.artifacts.state import RunState, StateCache
from flowtime.artifacts.window import MAX_POINTS, MAX_VALUES, state_window, summary
from flowtime.errors import QueryError

router = APIRouter(tags=["state"], responses=problem_responses(400, 404, 409, 422))
_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_JSON)


def get_state_cache(request: Request) -> StateCache:
    cache: StateCache = request.app.state.state_cache
    return cache


def _state(run_id: str, registry: Registry, cache: StateCache) -> RunState:
    return cache.get(registry, run_id)


def _either(ours: int | None, theirs: int | None, name: str, alias: str) -> int | None:
    if ours is not None and theirs is not None and ours != theirs:
        raise QueryError(name, f"{name}={ours} and {alias}={theirs} disagree; give one of them")
    return ours if ours is not None else theirs


def _csv(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated list (None when not given or empty)."""
    items = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip())) if text else ()
    return items or None


_Mode = Annotated[Literal["operational", "full"], Query(
    description="full: also the model's computed nodes (const, expr, pmf, ...; internal ones left out), "
                "each with its stored series under values")]
_ClassIds = Annotated[str | None, Query(alias="classIds", description=(
    "Comma-separated class ids: byClass holds only these; an unknown class is a 400 naming the run's classes"))]
_NUM = {"type": ["number", "null"]}
_SERIES = {"type": "object", "additionalProperties": {"type": "array", "items": _NUM}}
_WARNING = {"type": "object", "properties": {
    "code": {"type": "string"}, "severity": {"type": "string", "enum": ["info", "warning", "error"]},
    "message": {"type": "string"}, "nodeId": {"type": ["string", "null"]},
    "edgeIds": {"type": "array", "items": {"type": "string"}}, "bins": {"type": "array", "items": {"type": "integer"}},
    "binCount": {"type": "integer"}, "value": _NUM, "hint": {"type": "string"},
    "activity": {"type": "string", "enum": ["bin", "run", "unlisted"],
                 "description": "/state only: how the finding is known to be active at the bin (decision 0027)"}}}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _by_class(value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": (
        "class id -> the class's part of each flow input (arrivals, served, errors, queue, ...; mode=full "
        "computed nodes: values) and its throughputRatio, queueTimeMs, latencyMinutes (decision 0027)"),
        "additionalProperties": {"type": "object", "additionalProperties": value}}


_CLASS_TRUTH = _obj(coverage={"type": "string", "enum": ["full", "partial", "missing"]},
                    hasSpecificClasses={"type": "boolean"},
                    hasFallbackClass={"type": "boolean", "description": "some of the node's flow is in no class"})
_METADATA = {"type": "object", "properties": {
    "classCoverage": {"type": ["string", "null"], "enum": ["full", "partial", "missing", None]},
    "classes": _list(_obj(id={"type": "string"}, displayName={"type": ["string", "null"]}))}}
_MODE = {"type": "string", "enum": ["operational", "full"]}


_SCHEMAS: dict[str, dict[str, Any]] = {
    "graph": _obj(runId={"type": "string"}, mode={"type": "string"}, nodes=_list(_obj(
        id={"type": "string"}, kind={"type": "string"}, category={"type": ["string", "null"]},
        semantics={"type": "object"}, dispatchSchedule={"type": ["object", "null"]},
        ui=_obj(layer={"type": "integer"}, order={"type": "integer"}),
        expression={"type": ["string", "null"], "description": "mode=full: a computed node's expression"},
        inputs=_list({"type": "string"}))),
        edges=_list(_obj(id={"type": "string"}, **{"from": {"type": "string"}}, to={"type": "string"},
                         weight={"type": "number"}, edgeType={"type": "string"}, field={"type": "string"},
                         multiplier=_NUM, lag={"type": "integer"}))),
    "state": _obj(metadata=_METADATA, mode=_MODE, bin=_obj(index={"type": "integer"},
                                                        startUtc={"type": ["string", "null"]},
                                                        endUtc={"type": ["string", "null"]},
                                                        durationMinutes={"type": "integer"}),
                  nodes=_list(_obj(id={"type": "string"}, kind={"type": "string"}, category={"type": "string"},
                                   metrics={"type": "object", "additionalProperties": _NUM},
                                   derived={"type": "object"}, color={"type": "string"},
                                   classTruth=_CLASS_TRUTH, byClass=_by_class(_NUM),
                                   warnings=_list(_WARNING))),
                  edges=_list(_obj(id={"type": "string"}, flowVolume=_NUM)), warnings=_list(_WARNING)),
    "window": _obj(metadata=_METADATA, mode=_MODE, window=_obj(startBin={"type": "integer"},
                                                            endBin={"type": "integer"},
                                                            binCount={"type": "integer"}),
                   downsampled={"type": ["object", "null"], "properties": {
                       "bucketBins": {"type": "integer"}, "points": {"type": "integer"},
                       "buckets": {"type": "integer"}}},
                   bins={"type": ["array", "null"], "items": {"type": "integer"},
                         "description": "the bin each point stands at (downsampled answers only)"},
                   timestampsUtc={"type": ["array", "null"], "items": {"type": "string"}},
                   colorLegend=_list({"type": "string"}),
                   nodes=_list(_obj(id={"type": "string"}, kind={"type": "string"}, series=_SERIES,
                                    color=_list({"type": "integer"}), classTruth=_CLASS_TRUTH,
                                    byClass=_by_class(_list(_NUM)))),
                   edges=_list(_obj(id={"type": "string"}, series=_SERIES)), warnings=_list(_WARNING)),
    "metrics": _obj(window={"type": "object"}, grid=_obj(binMinutes={"type": "integer"}, bins={"type": "integer"}),
                    nodes=_list(_obj(id={"type": "string"}, utilization={"type": ["object", "null"]},
                                     latencyMinutes={"type": ["object", "null"]}, sla={"type": ["object", "null"]},
                                     totals={"type": "object"})),
                    services=_list(_obj(id={"type": "string"}, slaPct=_NUM, binsMet={"type": "integer"},
                                        binsTotal={"type": "integer"}, mini=_list(_NUM)))),
}


def _object(schema: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {"application/json": {"schema": _SCHEMAS[schema]}}}}


@router.get("/v1/runs/{run_id}/graph", response_class=OrjsonResponse,
            summary="Topology nodes (with layout layer and order) and edges; mode=full adds computed nodes",
            responses=_object("graph", "GraphResponse: nodes[{id, kind, category, semantics, dispatchSchedule, "
                              "ui{layer, order}}], edges[{id, from, to, weight, edgeType, field, multiplier, lag}]"))
def get_graph(run_id: str, mode: Annotated[Literal["operational", "full"], Query(
                  description="full: also the model's const/expr/pmf nodes")] = "operational",
              registry: Registry = Depends(get_registry),
              cache: StateCache = Depends(get_state_cache)) -> OrjsonResponse:
    return OrjsonResponse(graph(_state(run_id, registry, cache), full=mode == "full"))


@router.get("/v1/runs/{run_id}/state", response_class=OrjsonResponse,
            summary="Every topology node at one bin: series, derived metrics, colour, active warnings",
            responses=_object("state", "StateSnapshot: metadata, bin{index, startUtc, endUtc, durationMinutes}, "
                              "nodes[{id, kind, category, metrics, derived, color, classTruth, byClass, warnings}], "
                              "edges, warnings; mode=full adds computed nodes (metrics.values)"))
def get_state(run_id: str,
              bin: Annotated[int | None, Query(description="Bin index, 0-based")] = None,
              bin_index: Annotated[int | None, Query(alias="binIndex", description="The reference's name")] = None,
              mode: _Mode = "operational",
              class_ids: _ClassIds = None,
              registry: Registry = Depends(get_registry),
              cache: StateCache = Depends(get_state_cache)) -> OrjsonResponse:
    index = _either(bin, bin_index, "bin", "binIndex")
    if index is None:
        raise QueryError("bin", "give the bin: /state?bin=N (or binIndex=N)", "0..bins-1")
    return OrjsonResponse(snapshot(_state(run_id, registry, cache), index, full=mode == "full",
                                   class_ids=_csv(class_ids)))


@router.get("/v1/runs/{run_id}/state_window", response_class=OrjsonResponse,
            summary="Every topology node's series over a window of bins (min/max downsampled when large)",
            description=(f"At most {MAX_POINTS} points per series and {MAX_VALUES} values in all; past that, "
                         "or when max_points is smaller than the window, each bucket of bins gives its min and "
                         "max in time order and the answer says downsampled: {bucketBins, points}."),
            responses=_object("window", "StateWindow: metadata, window{startBin, endBin, binCount}, timestampsUtc, "
                              "downsampled, bins, nodes[{id, kind, series{key: values}, color, classTruth, "
                              "byClass}], edges, warnings; mode=full adds computed nodes (series.values)"))
def get_state_window(
    run_id: str,
    start: Annotated[int | None, Query(description="First bin (default 0)")] = None,
    end: Annotated[int | None, Query(description="Last bin, inclusive (default the last)")] = None,
    start_bin: Annotated[int | None, Query(alias="startBin", description="The reference's name for start")] = None,
    end_bin: Annotated[int | None, Query(alias="endBin", description="The reference's name for end")] = None,
    nodes: Annotated[str | None, Query(description="Comma-separated topology node ids (default all)")] = None,
    max_points: Annotated[int | None, Query(description="Points per series at most (>= 2)")] = None,
    mode: _Mode = "operational",
    class_ids: _ClassIds = None,
    edge_ids: Annotated[str | None, Query(alias="edgeIds", description=(
        "Comma-separated edge ids (default: the edges of the chosen nodes); an unknown one is a 400"))] = None,
    edge_metrics: Annotated[str | None, Query(alias="edgeMetrics", description=(
        "Comma-separated edge series: flowVolume, attemptsVolume, failuresVolume, retryVolume (default all)"))]
        = None,
    registry: Registry = Depends(get_registry),
    cache: StateCache = Depends(get_state_cache),
) -> OrjsonResponse:
    a = _either(start, start_bin, "start", "startBin")
    b = _either(end, end_bin, "end", "endBin")
    return OrjsonResponse(state_window(_state(run_id, registry, cache), a, b, nodes=_csv(nodes),
                                       max_points=max_points, full=mode == "full", class_ids=_csv(class_ids),
                                       edge_ids=_csv(edge_ids), edge_metrics=_csv(edge_metrics)))


@router.get("/v1/runs/{run_id}/metrics", response_class=OrjsonResponse,
            summary="Per topology node: utilization and latency mean/p95/max, completion SLA, totals",
            responses=_object("metrics", "Metrics: window, grid, nodes[{id, utilization, latencyMinutes, sla, totals}],"
                              " services[{id, slaPct, binsMet, binsTotal, mini}]"))
def get_metrics(
    run_id: str,
    start: Annotated[int | None, Query(description="First bin (default 0)")] = None,
    end: Annotated[int | None, Query(description="Last bin, inclusive (default the last)")] = None,
    start_bin: Annotated[int | None, Query(alias="startBin")] = None,
    end_bin: Annotated[int | None, Query(alias="endBin")] = None,
    registry: Registry = Depends(get_registry),
    cache: StateCache = Depends(get_state_cache),
) -> OrjsonResponse:
    a = _either(start, start_bin, "start", "startBin")
    b = _either(end, end_bin, "end", "endBin")
    return OrjsonResponse(summary(_state(run_id, registry, cache), a, b))
