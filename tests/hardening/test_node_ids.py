"""
Every node id the model validator accepts round-trips through the Engine:
stored, listed, and read back by id on every route (series by node id and by
series id, file download, export, compare), with a Content-Disposition any
client can read. Ordinary ASCII ids keep the reference's file name
``<id>@<ID>@DEFAULT.csv``; the others get an encoded, bounded one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from tests.hardening.servers import engine

from flowtime.artifacts.registry import Registry
from flowtime.model.load import NODE_ID

NODE_IDS = [
    "a..b",          # refused by the old file-name check ('..' anywhere)
    "x" * 94,        # names of 94-121 characters were over the old 200-character name limit
    "y" * 121,       # the longest whose reference name fits in 255 bytes
    "z" * 122,       # the reference name would be 257 bytes: File name too long
    "w" * 128,       # the longest id the validator allows
    "需求",           # not Latin-1: Content-Disposition needs RFC 5987
    "Ω" * 128,       # 256 bytes of UTF-8 on its own
    "straße",        # upper-cases to a longer text (STRASSE)
    "a-b.c_d",
    "_",
]
ENCODED = re.compile(r"^series/[A-Za-z0-9_\-]{1,64}-[0-9a-f]{32}\.csv\Z")


def plain(node: str) -> bool:
    return node.isascii() and len(node) <= 121


Site = tuple[str, Path, dict[str, tuple[str, str]]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two runs per node id (each id on its own, so each one fails on its own) and one with them all."""
    root = tmp_path_factory.mktemp("node-ids")

    def model(nodes: list[str]) -> str:
        body = "".join(f"  - {{id: {json.dumps(n)}, values: [1, 2]}}\n" for n in nodes)
        return f"schemaVersion: 1\ngrid: {{bins: 2, binSize: 1, binUnit: hours}}\nnodes:\n{body}"

    runs: dict[str, tuple[str, str]] = {}
    with engine(root) as url, httpx.Client(base_url=url, timeout=60) as c:
        for key, nodes in [*((n, [n]) for n in NODE_IDS), ("*", NODE_IDS)]:
            made = [c.post("/v1/run", content=model(nodes), headers={"Content-Type": "text/yaml"})
                    for _ in range(2)]
            runs[key] = (made[0].json().get("runId", ""), made[1].json().get("runId", ""))
        yield url, root, runs


def test_the_validator_accepts_every_id_here() -> None:
    assert all(NODE_ID.match(n) for n in NODE_IDS)


@pytest.mark.parametrize("node", NODE_IDS, ids=lambda n: n[:12] + f"..{len(n)}")
def test_a_node_id_round_trips_through_every_route(site: Site, node: str) -> None:
    url, root, runs = site
    run_id, other = runs[node]
    assert run_id, "the run was not stored"
    with httpx.Client(base_url=url, timeout=60) as c:
        [entry] = [e for e in c.get(f"/v1/runs/{run_id}/index").json()["series"] if e["nodeId"] == node]
        sid = entry["id"]
        assert sid == f"{node}@{node.upper()}@DEFAULT"
        if plain(node):
            assert entry["path"] == f"series/{sid}.csv"
        else:
            assert ENCODED.match(entry["path"]), entry["path"]
        stored = (root / run_id / entry["path"]).read_bytes()
        assert stored == b"t,value\n0,1\n1,2\n"

        for key in (node, sid):
            csv = c.get(f"/v1/runs/{run_id}/series/{quote(key, safe='')}")
            assert csv.status_code == 200, csv.text
            assert csv.content == stored
            disposition = csv.headers["content-disposition"]
            disposition.encode("latin-1")  # a header any client can read
            if f"{sid}.csv".isascii():
                assert disposition == f'inline; filename="{sid}.csv"'
            else:
                assert disposition == (f'inline; filename="{entry["path"].split("/")[1]}"; '
                                       f"filename*=UTF-8''{quote(sid + '.csv', safe='')}")
            js = c.get(f"/v1/runs/{run_id}/series/{quote(key, safe='')}", params={"format": "json"}).json()
            assert (js["nodeId"], js["values"]) == (node, [1, 2])

        download = c.get(f"/v1/artifacts/{run_id}/files/{entry['path']}")
        assert download.status_code == 200 and download.content == stored
        assert entry["path"] in [f["name"] for f in c.get(f"/v1/artifacts/{run_id}/files").json()]

        lines = c.get(f"/v1/runs/{run_id}/export").text.splitlines()
        assert f"0,0,{node},1" in lines and f"1,60,{node},2" in lines
        rows = [json.loads(x) for x in c.get(f"/v1/runs/{run_id}/export?format=ndjson").text.splitlines()]
        assert [r["value"] for r in rows if r["series"] == node] == [1, 2]

        compared = c.get("/v1/runs/compare", params={"a": run_id, "b": other}).json()
        [delta] = [s for s in compared["series"] if s["id"] == node]
        assert delta["delta"] == [0, 0]


def test_a_run_of_all_of_them_verifies_and_is_listed(site: Site) -> None:
    url, root, runs = site
    run_id = runs["*"][0]
    assert run_id and Registry(root).verify(run_id) == []
    listed = httpx.get(f"{url}/v1/runs").json()
    assert {r["id"]: r["seriesCount"] for r in listed["runs"]}[run_id] == len(NODE_IDS)
