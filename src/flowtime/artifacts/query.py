"""
Queries of the run index: filters, sort and a page, as SQL that walks an index.

``query_sql(ArtifactQuery)`` builds the WHERE clause, ORDER BY and page of one
listing; ``QuerySql.page`` runs it in one read transaction: the page's ids first
(an index walk, so skipped rows are never read), then only those rows. Text
search cannot use an index and reads a narrow covering index in one pass.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from flowtime.artifacts.index import Artifact, transaction
from flowtime.records import record

MAX_LIMIT = 1000
MAX_SKIP = 2**62  # SQLite's OFFSET is a signed 64-bit integer: past this every page is empty anyway
SORT_KEYS = ("created", "id", "title", "size")
_SORT_SQL = {"created": "created", "id": "id", "title": "title COLLATE NOCASE", "size": "total_size"}


@record
class ArtifactQuery:
    """
    Filters (all ANDed), then sort, then a page. ``search`` is a case-insensitive
    substring of id, title, tags, template id or model id; ``tags`` match when the
    run has any of them; ``template_id``/``model_id`` are exact; the created
    bounds are inclusive. Ties sort by id in the same direction.
    """

    type: str | None = None
    search: str | None = None
    tags: tuple[str, ...] = ()
    template_id: str | None = None
    model_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort_by: str = "created"
    sort_order: str = "desc"
    limit: int = 50
    skip: int = 0


@record
class Page:
    artifacts: list[Artifact]
    total: int

    @property
    def count(self) -> int:
        return len(self.artifacts)


@record
class QuerySql:
    """The SQL of one query: a WHERE clause with its parameters, an ORDER BY, a page."""

    where: str
    params: tuple[Any, ...]
    order: str
    limit: int
    skip: int
    scan: bool  # the filter reads every candidate (text search): count and page in one pass
    source: str = "artifacts"  # or artifact_tags, for tags in created order
    group: str = ""  # several tags: one row per run (always with scan)

    def ids_sql(self) -> tuple[str, tuple[Any, ...]]:
        """The query of the page's ids (and its parameters): an index walk when the index fits."""
        if self.scan:
            return f"SELECT id FROM {self.source}{self.where}{self.group} ORDER BY {self.order}", self.params
        return (f"SELECT id FROM {self.source}{self.where} ORDER BY {self.order} LIMIT ? OFFSET ?",
                (*self.params, self.limit, self.skip))

    def plan(self, conn: sqlite3.Connection) -> list[str]:
        """SQLite's plan of the ids query, one line per step (``EXPLAIN QUERY PLAN``)."""
        sql, params = self.ids_sql()
        return [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    def page(self, conn: sqlite3.Connection) -> Page:
        with transaction(conn, "BEGIN"):
            sql, params = self.ids_sql()
            # Ids first (an index walk: skipped rows are never read), then the page's rows.
            ids = [r[0] for r in conn.execute(sql, params)]
            if self.scan:
                total = len(ids)
                ids = ids[self.skip:self.skip + self.limit]
            else:
                total = conn.execute(f"SELECT COUNT(*) FROM {self.source}{self.where}",
                                     self.params).fetchone()[0]
            rows = {r["id"]: r for r in conn.execute(
                f"SELECT * FROM artifacts WHERE id IN ({', '.join('?' * len(ids))})", ids)} if ids else {}
        return Page([Artifact._from_row(rows[i]) for i in ids if i in rows], int(total))


_LOWEST, _HIGHEST = "below", "above"


def _bound(dt: datetime) -> str:
    """
    A created bound as stored text; ``below``/``above`` when it lies outside the
    years 1..9999 in UTC (``0001-01-01T00:00:00+01:00`` is in year 0).
    """
    aware = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:
        return _LOWEST if aware.year == 1 else _HIGHEST


def created_bound(dt: datetime, *, after: bool) -> str | None:
    """
    The stored text a created bound is compared with: ``""`` when it bounds nothing
    (an after-bound before year 1), None when nothing can match (an after-bound past 9999).

    >>> created_bound(datetime(2025, 1, 2, tzinfo=UTC), after=True)
    '2025-01-02T00:00:00.000000Z'
    >>> created_bound(datetime.max.replace(tzinfo=UTC), after=False)
    '9999-12-31T23:59:59.999999Z'
    """
    text = _bound(dt)
    if text == (_HIGHEST if after else _LOWEST):
        return None
    return "" if text in (_LOWEST, _HIGHEST) else text


def query_sql(q: ArtifactQuery) -> QuerySql:
    where: list[str] = []
    params: list[Any] = []
    tags = list(dict.fromkeys(t for t in q.tags if t))
    # Tags, newest or oldest first, nothing else but type and dates: the tags' own rows
    # (one tag: its index in order; several: their rows merged, one per run).
    by_tag = (bool(tags) and q.sort_by == "created" and not q.search and q.template_id is None
              and q.model_id is None)
    if by_tag:
        where.append(f"tag IN ({', '.join('?' * len(tags))})")
        params.extend(tags)
    if q.type:
        where.append("type = ?")
        params.append(q.type.lower())
    if q.search:
        where.append("instr(search, ?) > 0")
        params.append(q.search.lower())
    if tags and not by_tag:
        where.append(f"id IN (SELECT id FROM artifact_tags WHERE tag IN ({', '.join('?' * len(tags))}))")
        params.extend(tags)
    if q.template_id is not None:
        where.append("template_id = ?")
        params.append(q.template_id)
    if q.model_id is not None:
        where.append("model_id = ?")
        params.append(q.model_id)
    for dt, op in ((q.created_after, ">="), (q.created_before, "<=")):
        if dt is None:
            continue
        text = created_bound(dt, after=op == ">=")
        if text is None:
            where.append("0")  # after the end of time, or before its start: nothing matches
        elif text:
            where.append(f"created {op} ?")
            params.append(text)
    sort = _SORT_SQL.get(q.sort_by, "created")
    direction = "ASC" if q.sort_order.lower() == "asc" else "DESC"
    order = f"{sort} {direction}" + ("" if q.sort_by == "id" else f", id {direction}")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    merged = by_tag and len(tags) > 1
    return QuerySql(clause, tuple(params), order, max(0, min(q.limit, MAX_LIMIT)),
                    min(max(0, q.skip), MAX_SKIP), scan=bool(q.search) or merged,
                    source="artifact_tags" if by_tag else "artifacts",
                    group=" GROUP BY created, id" if merged else "")
