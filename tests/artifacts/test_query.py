"""Registry queries: created bounds at the ends of the calendar, and plans that use an index."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from tests.artifacts.test_registry import T0, ids, make_run
from tests.hardening.servers import engine

from flowtime.artifacts.query import query_sql
from flowtime.artifacts.registry import INDEX_FILE, ArtifactQuery, Registry

PLUS_1 = timezone(timedelta(hours=1))
MINUS_1 = timezone(timedelta(hours=-1))
FIRST = datetime(1, 1, 1, tzinfo=PLUS_1)  # 0000-12-31T23:00Z: before year 1 in UTC
LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_1)  # 10000-01-01T00:59:59Z


@pytest.fixture
def two(tmp_path: Path) -> tuple[Registry, list[str]]:
    made = [make_run(tmp_path, minutes=i) for i in range(2)]
    return Registry(tmp_path), made[::-1]


@pytest.mark.parametrize(("after", "before", "everything"), [
    (FIRST, None, True), (None, FIRST, False), (LAST, None, False), (None, LAST, True),
    (FIRST, LAST, True), (LAST, FIRST, False),
    (datetime.min, None, True), (None, datetime.max, True), (datetime.max, None, False),
    (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC), True),
])
def test_created_bounds_at_the_ends_of_the_calendar(two: tuple[Registry, list[str]], after: datetime | None,
                                                    before: datetime | None, everything: bool) -> None:
    reg, made = two
    assert ids(reg, created_after=after, created_before=before) == (made if everything else [])


def test_bounds_inside_the_calendar_still_cut(two: tuple[Registry, list[str]]) -> None:
    reg, (newer, older) = two
    assert ids(reg, created_after=T0 + timedelta(seconds=30)) == [newer]
    assert ids(reg, created_before=(T0 + timedelta(seconds=30)).astimezone(MINUS_1)) == [older]


@pytest.mark.parametrize(("param", "value", "total"), [
    ("createdAfter", "0001-01-01T00:00:00+01:00", 1), ("createdBefore", "0001-01-01T00:00:00+01:00", 0),
    ("createdAfter", "9999-12-31T23:59:59-01:00", 0), ("createdBefore", "9999-12-31T23:59:59-01:00", 1),
    ("createdAfter", "0001-01-01", 1), ("createdBefore", "9999-12-31T23:59:59.999999+14:00", 1),
])
def test_the_api_answers_calendar_bounds(tmp_path: Path, param: str, value: str, total: int) -> None:
    make_run(tmp_path)
    with engine(tmp_path) as url:
        for route, key in (("/v1/runs", "runs"), ("/v1/artifacts", "artifacts")):
            resp = httpx.get(url + route, params={param: value})
            assert resp.status_code == 200, resp.text
            assert (resp.json()["total"], len(resp.json()[key])) == (total, total)


# -- plans ----------------------------------------------------------------------------------------

PLANS: dict[str, tuple[ArtifactQuery, str]] = {
    "newest runs": (ArtifactQuery(type="run"), "COVERING INDEX artifacts_type_created (type=?)"),
    "oldest runs, deep page": (ArtifactQuery(type="run", sort_order="asc", skip=99_000),
                               "COVERING INDEX artifacts_type_created (type=?)"),
    "by title": (ArtifactQuery(type="run", sort_by="title"), "COVERING INDEX artifacts_type_title (type=?)"),
    "by size": (ArtifactQuery(type="run", sort_by="size"), "COVERING INDEX artifacts_type_size (type=?)"),
    "by id": (ArtifactQuery(type="run", sort_by="id"), "COVERING INDEX artifacts_type_id (type=?)"),
    "template": (ArtifactQuery(type="run", template_id="t"),
                 "COVERING INDEX artifacts_template (template_id=? AND type=?)"),
    "model": (ArtifactQuery(type="run", model_id="m"), "COVERING INDEX artifacts_model (model_id=? AND type=?)"),
    "created window": (ArtifactQuery(type="run", created_after=T0, created_before=T0 + timedelta(days=1)),
                       "COVERING INDEX artifacts_type_created (type=? AND created>? AND created<?)"),
    "text search": (ArtifactQuery(type="run", search="scenario"),
                    "COVERING INDEX artifacts_type_created (type=?)"),
    "every type": (ArtifactQuery(), "COVERING INDEX artifacts_created"),
}


@pytest.mark.parametrize("name", PLANS)
def test_every_filter_and_sort_walks_an_index(tmp_path: Path, name: str) -> None:
    """No page sorts rows in a temporary tree or reads whole rows it then skips."""
    Registry(tmp_path).count()
    query, uses = PLANS[name]
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        plan = query_sql(query).plan(conn)
    conn.close()
    assert any(uses in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_one_tag_walks_its_own_rows_in_order(tmp_path: Path) -> None:
    Registry(tmp_path).count()
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        plan = query_sql(ArtifactQuery(type="run", tags=("a",), skip=9_000)).plan(conn)
    conn.close()
    assert plan == ["SEARCH artifact_tags USING PRIMARY KEY (tag=? AND type=?)"]  # no sort, no row read


def test_several_tags_merge_their_own_rows(tmp_path: Path) -> None:
    """Any of several tags: their rows merged in one pass (a sort of the matches, never of every run)."""
    Registry(tmp_path).count()
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        plan = query_sql(ArtifactQuery(type="run", tags=("a", "b"))).plan(conn)
        with_template = query_sql(ArtifactQuery(type="run", tags=("a", "b"), template_id="t")).plan(conn)
    conn.close()
    assert plan == ["SEARCH artifact_tags USING PRIMARY KEY (tag=? AND type=?)", "USE TEMP B-TREE FOR GROUP BY"]
    assert any("artifacts_template" in step for step in with_template), with_template
    assert any("artifact_tags USING PRIMARY KEY (tag=?)" in step for step in with_template), with_template
    assert not any("json_each" in step for step in plan + with_template)


def test_tag_listings_count_a_run_with_several_of_the_tags_once(tmp_path: Path) -> None:
    made = [make_run(tmp_path, minutes=i, tags=tags) for i, tags in
            enumerate(["[red]", "[red, blue]", "[green]", "[blue, red, red]"])]
    reg = Registry(tmp_path)
    page = reg.query(ArtifactQuery(tags=("red", "blue"), limit=2, skip=1))
    assert (page.total, [a.id for a in page.artifacts]) == (3, [made[1], made[0]])
    assert ids(reg, tags=("red", "blue"), sort_order="asc") == [made[0], made[1], made[3]]
    assert ids(reg, tags=("red",), type="run", created_after=T0 + timedelta(minutes=1)) == [made[3], made[1]]
    assert ids(reg, tags=("red", "green"), sort_by="title", sort_order="asc") == sorted(made)  # ties by id
    assert reg.query(ArtifactQuery(tags=("red",))).total == 3
