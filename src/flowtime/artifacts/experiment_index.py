"""
The experiment index: ``experiments/index.sqlite``, one row per stored experiment (decision 0037).

Like the run index (``index.py``, whose machinery it shares: a corrupt file set
aside and rebuilt from the folders, a full disk read from a fallback, ghost rows
never listed) it is disposable: the folders are the truth. ``ExperimentQuery``
filters, sorts and pages it; ``merged_page`` lays experiments that live only in
memory (queued, running, failed, cancelled) into the same order, so one listing
pages over both without reading every stored row.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from flowtime.artifacts.index import FolderIndex, transaction
from flowtime.artifacts.query import MAX_LIMIT, MAX_SKIP, created_bound
from flowtime.records import record

SCHEMA_VERSION = "1"
SORT_KEYS = ("created", "id", "title", "points")
STATUSES = ("queued", "running", "done", "failed", "cancelled")
_FIELD_SEP = "\x1f"  # between searchable fields, so a search never spans two of them
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # SQLite's NOCASE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    title TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT NOT NULL,
    points INTEGER NOT NULL,
    model_hash TEXT NOT NULL,
    parameters TEXT NOT NULL,
    search TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS experiments_created ON experiments (created, id, search);
CREATE INDEX IF NOT EXISTS experiments_kind ON experiments (kind, created, id);
CREATE INDEX IF NOT EXISTS experiments_title ON experiments (title COLLATE NOCASE, id);
CREATE INDEX IF NOT EXISTS experiments_points ON experiments (points, id);
CREATE INDEX IF NOT EXISTS experiments_model ON experiments (model_hash, created, id)
"""
_COLUMNS = ("id", "kind", "status", "title", "created", "finished", "points", "model_hash", "parameters",
            "search")
_UPSERT = (f"INSERT OR REPLACE INTO experiments ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(_COLUMNS))})")
_SORT_SQL = {"created": "created", "id": "id", "title": "title COLLATE NOCASE", "points": "points"}


@record
class StoredExperiment:
    """What a listing shows of one experiment (``experiment.json`` of a stored one)."""

    id: str
    kind: str
    title: str
    points: int
    status: str
    created: str
    finished: str
    model_hash: str
    parameters: tuple[str, ...] = ()  # the parameters' targets

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "points": self.points,
                "status": self.status, "createdUtc": self.created, "finishedUtc": self.finished,
                "modelHash": self.model_hash, "parameters": list(self.parameters)}

    def search_text(self) -> str:
        return _FIELD_SEP.join([self.id, self.title, self.kind, *self.parameters, self.model_hash]).lower()

    def _row(self) -> tuple[Any, ...]:
        return (self.id, self.kind, self.status, self.title, self.created, self.finished, self.points,
                self.model_hash, json.dumps(list(self.parameters)), self.search_text())

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> StoredExperiment:
        return cls(row["id"], row["kind"], row["title"], int(row["points"]), row["status"], row["created"],
                   row["finished"], row["model_hash"], tuple(json.loads(row["parameters"])))


def summary_of(data: dict[str, Any], spec: Callable[[], Any] | None = None) -> StoredExperiment:
    """
    The summary in ``experiment.json``; ``spec`` reads spec.json for the parameters of
    folders written before the summary named them. ``KeyError``/``ValueError`` when unusable.
    """
    params = data.get("parameters")
    if not isinstance(params, list) and spec is not None:
        given = spec()
        listed = given.get("parameters") if isinstance(given, dict) else None
        params = [p.get("target") for p in listed if isinstance(p, dict)] if isinstance(listed, list) else []
    return StoredExperiment(str(data["id"]), str(data["kind"]), str(data.get("title", "")), int(data["points"]),
                            str(data.get("status", "done")), str(data.get("createdUtc", "")),
                            str(data.get("finishedUtc", "")), str(data.get("modelHash", "")),
                            tuple(str(p) for p in params or () if p is not None))


@record
class ExperimentQuery:
    """
    Filters (ANDed; a tuple matches any of its values), then sort, then a page.
    ``search`` is a case-insensitive substring of id, title, kind, a parameter's
    target or the model hash; the created bounds are inclusive; ties sort by id.
    """

    search: str | None = None
    kinds: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    model_hash: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort_by: str = "created"
    sort_order: str = "desc"
    limit: int = 50
    skip: int = 0


@record
class ExperimentPage:
    experiments: list[StoredExperiment]
    total: int

    @property
    def count(self) -> int:
        return len(self.experiments)


def _where(q: ExperimentQuery) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, values in (("kind", q.kinds), ("status", q.statuses)):
        if values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if q.search:
        where.append("instr(search, ?) > 0")
        params.append(q.search.lower())
    if q.model_hash is not None:
        where.append("model_hash = ?")
        params.append(q.model_hash)
    for dt, op in ((q.created_after, ">="), (q.created_before, "<=")):
        if dt is not None:
            bound = created_bound(dt, after=op == ">=")
            if bound is None:
                where.append("0")  # outside the years 1..9999 on the wrong side: nothing matches
            elif bound:
                where.append(f"created {op} ?")
                params.append(bound)
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


def matches(e: StoredExperiment, q: ExperimentQuery) -> bool:
    """Whether ``e`` passes ``q``'s filters: the same test as the SQL, for experiments in memory."""
    if (q.kinds and e.kind not in q.kinds) or (q.statuses and e.status not in q.statuses):
        return False
    if q.search and q.search.lower() not in e.search_text():
        return False
    if q.model_hash is not None and e.model_hash != q.model_hash:
        return False
    for dt, after in ((q.created_after, True), (q.created_before, False)):
        if dt is not None:
            bound = created_bound(dt, after=after)
            if bound is None or (bound and (e.created < bound if after else e.created > bound)):
                return False
    return True


def sort_key(e: StoredExperiment, sort_by: str) -> tuple[Any, ...]:
    """The order SQLite gives ``ORDER BY <sort>, id`` (titles folded like ``COLLATE NOCASE``)."""
    if sort_by == "title":
        return (e.title.translate(_ASCII_FOLD), e.id)
    if sort_by == "points":
        return (e.points, e.id)
    if sort_by == "id":
        return (e.id,)
    return (e.created, e.id)


class ExperimentIndex(FolderIndex[StoredExperiment]):
    """The experiment index at ``path``: one ``experiments`` table."""

    label = "experiment index"
    schema = _SCHEMA
    version = SCHEMA_VERSION
    tables = ("experiments",)

    def _put(self, conn: sqlite3.Connection, rows: Sequence[StoredExperiment]) -> None:
        conn.executemany(_UPSERT, (r._row() for r in rows))

    def _drop(self, conn: sqlite3.Connection, ids: Iterable[str]) -> None:
        conn.executemany("DELETE FROM experiments WHERE id = ?", [(i,) for i in ids])

    def window(self, q: ExperimentQuery, skip: int, limit: int) -> ExperimentPage:
        """Rows ``skip`` to ``skip + limit`` of ``q``'s order (its own page ignored), and their total."""
        where, params = _where(q)
        sort = _SORT_SQL.get(q.sort_by, "created")
        direction = "ASC" if q.sort_order.lower() == "asc" else "DESC"
        order = f"{sort} {direction}" + ("" if q.sort_by == "id" else f", id {direction}")

        def go(conn: sqlite3.Connection) -> ExperimentPage:
            with transaction(conn, "BEGIN"):
                rows = conn.execute(f"SELECT * FROM experiments{where} ORDER BY {order} LIMIT ? OFFSET ?",
                                    (*params, limit, skip)).fetchall()
                total = conn.execute(f"SELECT COUNT(*) FROM experiments{where}", params).fetchone()[0]
            return ExperimentPage([StoredExperiment._from_row(r) for r in rows], int(total))

        page = self._run(go, write=False)
        ghosts = [e.id for e in page.experiments if not self._present(e.id)]
        if ghosts:  # a folder removed behind the index's back: drop its row, ask again
            self.remove(ghosts)
            return self.window(q, skip, limit)
        return page

    def query(self, q: ExperimentQuery, live: Sequence[StoredExperiment] = ()) -> ExperimentPage:
        """One page of ``q`` over the stored experiments and ``live`` ones (those in memory)."""
        return merged_page(q, [e for e in live if matches(e, q)], self.window)


def merged_page(q: ExperimentQuery, live: Sequence[StoredExperiment],
                window: Callable[[ExperimentQuery, int, int], ExperimentPage]) -> ExperimentPage:
    """
    Page ``q.skip, q.limit`` of stored rows (read through ``window``) merged with
    ``live`` (already filtered) in ``q``'s order. With L live rows, the page can
    hold only stored rows from rank ``skip - L`` to ``skip + limit``: that window
    is read, never the rows before it.

    >>> rows = [StoredExperiment(f"e{i}", "sweep", "", 0, "done", f"t{i}", "", "") for i in range(6)]
    >>> def window(q, skip, limit):
    ...     ordered = sorted(rows, key=lambda e: e.created, reverse=True)
    ...     return ExperimentPage(ordered[skip:skip + limit], len(ordered))
    >>> live = [StoredExperiment("x", "sweep", "", 0, "running", "t35", "", "")]
    >>> [e.id for e in merged_page(ExperimentQuery(limit=3, skip=2), live, window).experiments]
    ['x', 'e3', 'e2']
    """
    limit, skip = max(0, min(q.limit, MAX_LIMIT)), min(max(0, q.skip), MAX_SKIP)
    desc = q.sort_order.lower() != "asc"
    live = sorted(live, key=lambda e: sort_key(e, q.sort_by), reverse=desc)
    if q.statuses and "done" not in q.statuses:  # stored experiments are all done
        return ExperimentPage(live[skip:skip + limit], len(live))
    start = max(0, skip - len(live))
    stored = window(q, start, limit + len(live))
    first = sort_key(stored.experiments[0], q.sort_by) if stored.experiments else None

    def ahead(e: StoredExperiment) -> bool:  # sorts before the window's first stored row
        key = sort_key(e, q.sort_by)
        return first is not None and (key > first if desc else key < first)

    # Live rows ahead of the window all rank before ``skip`` when the window starts past 0.
    before = [e for e in live if ahead(e)]
    rest = sorted([*stored.experiments, *(e for e in live if not ahead(e))],
                  key=lambda e: sort_key(e, q.sort_by), reverse=desc)
    if start == 0:
        ordered, offset = before + rest, 0
    else:
        ordered, offset = rest, start + len(before)
    # A live row placed after the window's last stored row ranks at or past skip + limit
    # when the window was full, so it never lands on this page in a wrong place.
    return ExperimentPage(ordered[skip - offset:skip - offset + limit], stored.total + len(live))
