"""
The registry: every run ever made, listed and searched.

The run folders on disk are the truth. ``index.sqlite`` in the data directory
(stdlib ``sqlite3``, WAL mode) only makes listing and searching fast, and can
be thrown away at any time: ``rebuild()`` rescans the disk, ``sync()`` cheaply
catches up with folders added or removed behind its back.

Several writers (threads, processes) may share one data directory: each call
opens its own connection, writes in one short ``BEGIN IMMEDIATE`` transaction
with a generous busy timeout, and upserts rows, so no run is ever lost from the
index. A folder is listed only when it is named like a run id and holds a
manifest (the writer renames a finished run into place, manifest written last);
hidden ``.tmp-`` folders never are.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Registry(Path(d)).query(ArtifactQuery(template_id="capacity")).total
    0
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flowtime.artifacts import layout
from flowtime.artifacts.canonical import sha256_text
from flowtime.errors import ArtifactError, RunNotFound

INDEX_FILE = "index.sqlite"
SCHEMA_VERSION = "2"
MAX_LIMIT = 1000
SORT_KEYS = ("created", "id", "title", "size")
_SORT_SQL = {"created": "created", "id": "id", "title": "title COLLATE NOCASE",
             "size": "total_size"}
_FIELD_SEP = "\x1f"  # between searchable fields, so a search never spans two of them

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created TEXT NOT NULL,
    title TEXT NOT NULL,
    tags TEXT NOT NULL,
    template_id TEXT,
    model_id TEXT,
    scenario_hash TEXT,
    seed,
    bins INTEGER,
    bin_size INTEGER,
    bin_unit TEXT,
    series_count INTEGER NOT NULL,
    total_size INTEGER NOT NULL,
    search TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_created ON artifacts (created, id);
CREATE INDEX IF NOT EXISTS artifacts_template ON artifacts (template_id, created);
CREATE INDEX IF NOT EXISTS artifacts_model ON artifacts (model_id, created);
"""
_COLUMNS = ("id", "type", "created", "title", "tags", "template_id", "model_id", "scenario_hash",
            "seed", "bins", "bin_size", "bin_unit", "series_count", "total_size", "search")
_UPSERT = (f"INSERT OR REPLACE INTO artifacts ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(_COLUMNS))})")

Series = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Artifact:
    """One indexed run: what listing and searching need, nothing that must be read from disk."""

    id: str
    type: str
    created: str
    title: str
    tags: tuple[str, ...] = ()
    template_id: str | None = None
    model_id: str | None = None
    scenario_hash: str | None = None
    seed: int | None = None
    bins: int | None = None
    bin_size: int | None = None
    bin_unit: str | None = None
    series_count: int = 0
    total_size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type, "created": self.created, "title": self.title,
            "tags": list(self.tags), "templateId": self.template_id, "modelId": self.model_id,
            "scenarioHash": self.scenario_hash, "seed": self.seed, "bins": self.bins,
            "binSize": self.bin_size, "binUnit": self.bin_unit, "seriesCount": self.series_count,
            "totalSize": self.total_size,
        }

    def _row(self) -> tuple[Any, ...]:
        search = _FIELD_SEP.join([self.id, self.title, *self.tags, self.template_id or "",
                                  self.model_id or ""]).lower()
        # Seeds may use the full unsigned 64-bit range and SQLite integers are signed:
        # large ones are stored as text (the column has no type, so no affinity converts it).
        seed = str(self.seed) if self.seed is not None and self.seed >= 2**63 else self.seed
        return (self.id, self.type, self.created, self.title, json.dumps(list(self.tags)),
                self.template_id, self.model_id, self.scenario_hash, seed, self.bins,
                self.bin_size, self.bin_unit, self.series_count, self.total_size, search)

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Artifact:
        return cls(row["id"], row["type"], row["created"], row["title"],
                   tuple(json.loads(row["tags"])), row["template_id"], row["model_id"],
                   row["scenario_hash"], None if row["seed"] is None else int(row["seed"]),
                   row["bins"], row["bin_size"],
                   row["bin_unit"], row["series_count"], row["total_size"])


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Page:
    artifacts: list[Artifact]
    total: int

    @property
    def count(self) -> int:
        return len(self.artifacts)


@dataclass(frozen=True)
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class _SymbolicLink(OSError):
    """A file (or its ``series/`` folder) in a run is a symbolic link: it is never followed."""


def _read_bytes(path: Path) -> bytes:
    """The bytes of a file inside a run folder, refusing symbolic links (O_NOFOLLOW, no race)."""
    if path.parent.is_symlink():
        raise _SymbolicLink(f"{path.parent.name} is a symbolic link")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if path.is_symlink():
            raise _SymbolicLink(f"{path.name} is a symbolic link") from exc
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _read_json(path: Path) -> Any:
    return json.loads(_read_bytes(path).decode("utf-8-sig"))


def _read_json_or_none(path: Path) -> Any:
    try:
        return _read_json(path)
    except (OSError, ValueError):
        return None


def _normal_time(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return layout.utc_iso(dt if dt.tzinfo else dt.replace(tzinfo=UTC))


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def folder_size(folder: Path) -> int:
    """Bytes of every regular file under ``folder`` (symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_size
    return total


def read_artifact(folder: Path) -> Artifact | None:
    """The index row of one run folder, or None when it is not a complete run."""
    manifest = _read_json_or_none(folder / layout.MANIFEST)
    if not isinstance(manifest, dict):
        return None
    raw_run = _read_json_or_none(folder / layout.RUN_JSON)
    run: dict[str, Any] = raw_run if isinstance(raw_run, dict) else {}
    raw_prov = manifest.get("provenance")
    prov: dict[str, Any] = raw_prov if isinstance(raw_prov, dict) else {}
    stamp = layout.created_from_id(folder.name)
    created = (_normal_time(run.get("createdUtc")) or _normal_time(manifest.get("createdUtc"))
               or (layout.utc_iso(stamp) if stamp else None)
               or layout.utc_iso(datetime.fromtimestamp(folder.stat().st_mtime, UTC)))
    grid: dict[str, Any] = run["grid"] if isinstance(run.get("grid"), dict) else {}
    rng: dict[str, Any] = manifest["rng"] if isinstance(manifest.get("rng"), dict) else {}
    tags: list[Any] = run["tags"] if isinstance(run.get("tags"), list) else []
    hashes = manifest.get("seriesHashes")
    return Artifact(
        id=folder.name,
        type="run",
        created=created,
        title=_str_or_none(run.get("title")) or f"Run {folder.name.rsplit('_', 1)[-1]}",
        tags=tuple(str(t) for t in tags),
        template_id=_str_or_none(prov.get("templateId")),
        model_id=_str_or_none(prov.get("modelId")),
        scenario_hash=_str_or_none(manifest.get("scenarioHash")),
        seed=_int_or_none(rng.get("seed")),
        bins=_int_or_none(grid.get("bins")),
        bin_size=_int_or_none(grid.get("binSize")),
        bin_unit=_str_or_none(grid.get("binUnit")),
        series_count=len(hashes) if isinstance(hashes, dict) else 0,
        total_size=folder_size(folder),
    )


def parse_series_csv(data: bytes) -> Series:
    """
    Values of a series CSV (``t,value`` rows) in row order.

    >>> parse_series_csv(b"t,value\\n0,1\\n1,NaN\\n2,-Infinity\\n").tolist()
    [1.0, nan, -inf]
    """
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    values = [float(line.partition(b",")[2]) for line in lines[1:] if line.strip()]
    return np.array(values, dtype=np.float64)


class Registry:
    """The runs under one data directory: index, lookup, files, verification, deletion."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.index_path = self.root / INDEX_FILE
        self._schema_ready = False

    # -- the index --------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own; a missing, new or outdated index is first filled from disk."""
        missing = not self.index_path.exists()
        if missing:
            self.root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.index_path, timeout=30.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            if (missing or not self._schema_ready) and self._init_schema(conn):
                self._fill(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            yield conn
        finally:
            conn.close()

    def _init_schema(self, conn: sqlite3.Connection) -> bool:
        """Create (or replace an outdated) schema; True when the table starts out empty."""
        conn.execute("PRAGMA journal_mode = WAL")
        with _transaction(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is not None and row[0] != SCHEMA_VERSION:
                conn.execute("DROP TABLE IF EXISTS artifacts")
            fresh = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                 "AND name = 'artifacts'").fetchone() is None
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
                         (SCHEMA_VERSION,))
        self._schema_ready = True
        return fresh

    def _fill(self, conn: sqlite3.Connection) -> int:
        arts = [a for a in map(read_artifact, self._run_folders().values()) if a is not None]
        found = {a.id for a in arts}
        with _transaction(conn):
            conn.executemany(_UPSERT, (a._row() for a in arts))
            indexed = {r[0] for r in conn.execute("SELECT id FROM artifacts")}
            self._drop_vanished(conn, indexed - found)
        return len(arts)

    def _run_folders(self) -> dict[str, Path]:
        """Folders named like run ids (never temp folders, never symlinks)."""
        out: dict[str, Path] = {}
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return out
        for entry in entries:
            if layout.is_run_id(entry.name) and entry.is_dir(follow_symlinks=False):
                out[entry.name] = Path(entry.path)
        return out

    def add(self, run_id: str) -> Artifact | None:
        """Index (or re-index) one run from its folder; returns its row, or None if incomplete."""
        folder = layout.run_dir(self.root, run_id)
        art = read_artifact(folder) if not folder.is_symlink() else None
        with self._db() as conn, _transaction(conn):
            if art is None:
                conn.execute("DELETE FROM artifacts WHERE id = ?", (run_id,))
                return None
            conn.execute(_UPSERT, art._row())
            # A delete may have renamed the folder away while it was being read.
            if not (folder / layout.MANIFEST).exists():
                conn.execute("DELETE FROM artifacts WHERE id = ?", (run_id,))
                return None
        return art

    def rebuild(self) -> int:
        """Rescan every run folder and make the index match; returns the number of runs."""
        with self._db() as conn:
            return self._fill(conn)

    def sync(self) -> SyncReport:
        """Catch up with the disk cheaply: read only new folders' manifests, drop vanished rows."""
        folders = self._run_folders()
        with self._db() as conn:
            indexed = {r[0] for r in conn.execute("SELECT id FROM artifacts")}
        new = [read_artifact(folders[name]) for name in sorted(folders.keys() - indexed)]
        arts = [a for a in new if a is not None]
        with self._db() as conn, _transaction(conn):
            conn.executemany(_UPSERT, (a._row() for a in arts))
            removed = self._drop_vanished(conn, indexed - folders.keys())
        return SyncReport([a.id for a in arts], removed)

    def _drop_vanished(self, conn: sqlite3.Connection, ids: Iterable[str]) -> list[str]:
        # Checked again inside the write transaction: a run renamed into place after
        # the scan (and indexed by its writer) must keep its row.
        gone = [i for i in sorted(ids) if not (self.root / i / layout.MANIFEST).exists()]
        conn.executemany("DELETE FROM artifacts WHERE id = ?", ((i,) for i in gone))
        return gone

    def query(self, q: ArtifactQuery | None = None) -> Page:
        """One page of indexed runs matching ``q``, with the total before paging."""
        q = q or ArtifactQuery()
        where: list[str] = []
        params: list[Any] = []
        if q.type:
            where.append("type = ?")
            params.append(q.type.lower())
        if q.search:
            where.append("instr(search, ?) > 0")
            params.append(q.search.lower())
        tags = [t for t in q.tags if t]
        if tags:
            marks = ", ".join("?" * len(tags))
            where.append(
                f"EXISTS (SELECT 1 FROM json_each(artifacts.tags) WHERE value IN ({marks}))")
            params.extend(tags)
        if q.template_id is not None:
            where.append("template_id = ?")
            params.append(q.template_id)
        if q.model_id is not None:
            where.append("model_id = ?")
            params.append(q.model_id)
        if q.created_after is not None:
            where.append("created >= ?")
            params.append(layout.utc_iso(_aware(q.created_after)))
        if q.created_before is not None:
            where.append("created <= ?")
            params.append(layout.utc_iso(_aware(q.created_before)))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sort = _SORT_SQL.get(q.sort_by, "created")
        direction = "ASC" if q.sort_order.lower() == "asc" else "DESC"
        order = f"{sort} {direction}" + ("" if q.sort_by == "id" else f", id {direction}")
        limit = max(0, min(q.limit, MAX_LIMIT))
        with self._db() as conn, _transaction(conn, "BEGIN"):
            total = conn.execute(f"SELECT COUNT(*) FROM artifacts{clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM artifacts{clause} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, limit, min(max(0, q.skip), 2**62)],
            ).fetchall()
        return Page([Artifact._from_row(r) for r in rows], int(total))

    def count(self) -> int:
        with self._db() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0])

    def get(self, run_id: str) -> Artifact:
        """The index row of ``run_id`` (indexing it first if its folder is newer than the index)."""
        folder = self.run_path(run_id)
        with self._db() as conn:
            row = conn.execute("SELECT * FROM artifacts WHERE id = ?", (run_id,)).fetchone()
        if row is not None:
            return Artifact._from_row(row)
        art = self.add(folder.name)
        if art is None:
            raise RunNotFound(f"run '{run_id}' not found")
        return art

    def delete(self, run_id: str) -> None:
        """
        Remove a run: its folder is first renamed to a hidden temp name (so a
        half-deleted run is never listed), then its row, then the files.
        """
        folder = self.run_path(run_id)
        doomed = self.root / f"{layout.TMP_PREFIX}deleted-{run_id}-{secrets.token_hex(4)}"
        try:
            os.rename(folder, doomed)
        except FileNotFoundError:
            raise RunNotFound(f"run '{run_id}' not found (already deleted)") from None
        except OSError as exc:
            raise ArtifactError(f"cannot delete run {run_id}: {exc.strerror}") from exc
        with self._db() as conn, _transaction(conn):
            conn.execute("DELETE FROM artifacts WHERE id = ?", (run_id,))
        shutil.rmtree(doomed, ignore_errors=True)

    # -- one run's files ----------------------------------------------------------

    def run_path(self, run_id: str) -> Path:
        """The folder of a complete run; ``RunNotFound`` for anything else."""
        folder = layout.run_dir(self.root, run_id)
        manifest = folder / layout.MANIFEST
        if folder.is_symlink() or manifest.is_symlink() or not manifest.is_file():
            raise RunNotFound(f"run '{run_id}' not found")
        return folder

    def _json(self, run_id: str, name: str) -> Any:
        path = self.run_path(run_id) / name
        try:
            return _read_json(path)
        except _SymbolicLink:
            raise RunNotFound(f"{name} of run {run_id} not found (symbolic links are not followed)") from None
        except FileNotFoundError:
            raise ArtifactError(f"run {run_id} has no {name}") from None
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot read {name} of run {run_id}: {exc}") from exc

    def manifest(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._json(run_id, layout.MANIFEST)
        return data

    def run_json(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._json(run_id, layout.RUN_JSON)
        return data

    def provenance(self, run_id: str) -> dict[str, Any] | None:
        path = self.run_path(run_id) / layout.PROVENANCE
        if path.is_symlink() or not path.is_file():
            return None
        data: dict[str, Any] = self._json(run_id, layout.PROVENANCE)
        return data

    def series_index(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._json(run_id, f"{layout.SERIES_DIR}/{layout.INDEX}")
        return data

    def details(self, run_id: str) -> dict[str, Any]:
        """run.json, the manifest and the provenance of one run."""
        return {"runId": run_id, "run": self.run_json(run_id), "manifest": self.manifest(run_id),
                "provenance": self.provenance(run_id)}

    def find_series(self, run_id: str, series: str) -> dict[str, Any]:
        """The index entry of ``series``: a full id (``served@SERVED@DEFAULT``) or a node id."""
        entries = self.series_index(run_id).get("series", [])
        for match in (lambda e: e.get("id") == series, lambda e: _node_id(e) == series):
            for e in entries:
                if match(e):
                    return dict(e)
        raise RunNotFound(f"series '{series[:100]}' not found in run {run_id}")

    def series_bytes(self, run_id: str, entry: dict[str, Any]) -> bytes:
        return _read_bytes(self.file_path(run_id, str(entry.get("path", ""))))

    def series_values(self, run_id: str, entry: dict[str, Any]) -> Series:
        return parse_series_csv(self.series_bytes(run_id, entry))

    def all_series(self, run_id: str) -> dict[str, Series]:
        """Every stored series of a run by node id, in index order."""
        entries = self.series_index(run_id).get("series", [])
        return {_node_id(e): self.series_values(run_id, e) for e in entries}

    def files(self, run_id: str) -> list[dict[str, Any]]:
        """Every file of a run, ``series/`` files prefixed, with sizes (symlinks skipped)."""
        folder = self.run_path(run_id)
        out: list[dict[str, Any]] = []
        for prefix, where in (("", folder), (f"{layout.SERIES_DIR}/", folder / layout.SERIES_DIR)):
            try:
                entries = sorted(os.scandir(where), key=lambda e: e.name)
            except FileNotFoundError:
                continue
            for e in entries:
                if e.is_file(follow_symlinks=False) and layout.FILE_NAME.match(e.name):
                    size = e.stat(follow_symlinks=False).st_size
                    out.append({"name": prefix + e.name, "size": size})
        return out

    def file_path(self, run_id: str, name: str) -> Path:
        """
        The path of file ``name`` of a run: a top-level name or ``series/<name>``.
        Anything else - parent references, absolute paths, symlinks, folders - is
        reported as not found, before and after resolving.
        """
        folder = self.run_path(run_id)
        parts = name.split("/")
        if len(parts) == 2 and parts[0] == layout.SERIES_DIR:
            rel = Path(layout.SERIES_DIR, layout.checked_file_name(parts[1]))
        elif len(parts) == 1:
            rel = Path(layout.checked_file_name(parts[0]))
        else:
            raise RunNotFound(f"file '{name[:80]}' not found in run {run_id} (files are top-level "
                              f"names or {layout.SERIES_DIR}/<name>)")
        path = folder / rel
        base = folder.resolve()
        if (any(p.is_symlink() for p in (path, path.parent)) or not path.is_file()
                or not path.resolve().is_relative_to(base)):
            raise RunNotFound(f"file '{name[:80]}' not found in run {run_id}")
        return path

    def verify(self, run_id: str) -> list[str]:
        """Recompute every series hash of a run; returns one line per mismatch (empty = intact)."""
        problems: list[str] = []
        hashes = self.manifest(run_id).get("seriesHashes") or {}
        for sid, expected in sorted(hashes.items()):
            try:
                data = self.file_path(run_id, f"{layout.SERIES_DIR}/{sid}.csv").read_bytes()
            except RunNotFound:
                problems.append(f"{sid}: file missing")
                continue
            actual = sha256_text(data)
            if actual != expected:
                problems.append(f"{sid}: hash {actual} != manifest {expected}")
        return problems


def _node_id(entry: dict[str, Any]) -> str:
    node = entry.get("nodeId")
    return node if isinstance(node, str) else str(entry.get("id", "")).split("@", 1)[0]


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
