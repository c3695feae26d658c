"""
The run index: one SQLite file (``index.sqlite``) of rows describing the run folders.

The folders are the truth; this file only makes listing fast, so it is
disposable. Whatever happens to it, the registry keeps answering:

* **corrupt** (random bytes, a malformed page, a folder or other non-file at
  its path, a failing ``PRAGMA quick_check`` at start-up): the file and its
  ``-journal``/``-wal``/``-shm`` siblings are renamed to
  ``index.sqlite.corrupt-<UTC stamp>``, a warning says so, and a new index is
  filled from the folders. ``recovered`` keeps a note for ``/v1/healthz``.
* **disk full**: reads go on (rollback-journal mode needs no new file to read,
  and set-up writes happen only when the schema is missing or outdated); a
  write raises ``StorageFull``. When even reading needs a write that fails
  (no index yet), an in-memory index is filled from the folders instead.
* **ghost rows** (a row whose folder is gone, e.g. a delete whose row could
  not be dropped): never listed, dropped when next seen.

Rollback-journal mode, not WAL: a WAL reader must create and size the
``-shm`` file, which fails on a full disk (SQLITE_IOERR_SHMSIZE) and on
network file systems. Several processes may still share one index: every call
opens its own connection, writes in one short ``BEGIN IMMEDIATE`` transaction
and waits up to 30 s for a lock.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from flowtime.errors import ArtifactError, StorageFull
from flowtime.records import record

if TYPE_CHECKING:
    from flowtime.artifacts.query import ArtifactQuery, Page


def _log() -> Any:
    """The registry's logger, imported on first use: logging costs the CLI's start-up time."""
    import logging

    return logging.getLogger("flowtime.registry")
T = TypeVar("T")


class _Row(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=_Row)

SCHEMA_VERSION = "4"
_FIELD_SEP = "\x1f"  # between searchable fields, so a search never spans two of them
SIBLINGS = ("-journal", "-wal", "-shm")
# A parameter whose JSON text is longer than this stays in provenance.json only:
# the index holds what a table column can show, not 100,000-element arrays.
MAX_PARAMETER_JSON = 1024

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
    parameters TEXT,
    search TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifact_tags (
    tag TEXT NOT NULL,
    type TEXT NOT NULL,
    created TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (tag, type, created, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS artifact_tags_id ON artifact_tags (id);
CREATE INDEX IF NOT EXISTS artifacts_type_created ON artifacts (type, created, id, search);
CREATE INDEX IF NOT EXISTS artifacts_created ON artifacts (created, id);
CREATE INDEX IF NOT EXISTS artifacts_type_title ON artifacts (type, title COLLATE NOCASE, id);
CREATE INDEX IF NOT EXISTS artifacts_type_size ON artifacts (type, total_size, id);
CREATE INDEX IF NOT EXISTS artifacts_type_id ON artifacts (type, id);
CREATE INDEX IF NOT EXISTS artifacts_template ON artifacts (template_id, type, created, id);
CREATE INDEX IF NOT EXISTS artifacts_model ON artifacts (model_id, type, created, id)
"""
# search is covered by the (type, created, id, search) index: a text search reads
# that index, not every whole row. Tags carry type and created so that a one-tag
# listing walks its own index in order.
_COLUMNS = ("id", "type", "created", "title", "tags", "template_id", "model_id", "scenario_hash",
            "seed", "bins", "bin_size", "bin_unit", "series_count", "total_size", "parameters",
            "search")
_UPSERT = (f"INSERT OR REPLACE INTO artifacts ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(_COLUMNS))})")

# Where an index can no longer be trusted; any other error (a lock held too long,
# an I/O error) leaves the file alone.
_CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CORRUPT_INDEX",
                      "SQLITE_CORRUPT_SEQUENCE", "SQLITE_CORRUPT_VTAB"})
_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


@record
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
    parameters: dict[str, Any] | None = field(default=None, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type, "created": self.created, "title": self.title,
            "tags": list(self.tags), "templateId": self.template_id, "modelId": self.model_id,
            "scenarioHash": self.scenario_hash, "seed": self.seed, "bins": self.bins,
            "binSize": self.bin_size, "binUnit": self.bin_unit, "seriesCount": self.series_count,
            "totalSize": self.total_size, "parameters": self.parameters,
        }

    def _row(self) -> tuple[Any, ...]:
        search = _FIELD_SEP.join([self.id, self.title, *self.tags, self.template_id or "",
                                  self.model_id or ""]).lower()
        # Seeds may use the full unsigned 64-bit range and SQLite integers are signed:
        # large ones are stored as text (the column has no type, so no affinity converts it).
        seed = str(self.seed) if self.seed is not None and self.seed >= 2**63 else self.seed
        params = None if self.parameters is None else json.dumps(self.parameters, sort_keys=True)
        return (self.id, self.type, self.created, self.title, json.dumps(list(self.tags)),
                self.template_id, self.model_id, self.scenario_hash, seed, self.bins,
                self.bin_size, self.bin_unit, self.series_count, self.total_size, params, search)

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Artifact:
        params = row["parameters"]
        return cls(row["id"], row["type"], row["created"], row["title"],
                   tuple(json.loads(row["tags"])), row["template_id"], row["model_id"],
                   row["scenario_hash"], None if row["seed"] is None else int(row["seed"]),
                   row["bins"], row["bin_size"], row["bin_unit"], row["series_count"],
                   row["total_size"], None if params is None else json.loads(params))


def index_parameters(value: Any) -> dict[str, Any] | None:
    """
    The provenance parameters an index row keeps: each one whose JSON is short.

    >>> index_parameters({"agents": 7, "curve": list(range(1000))})
    {'agents': 7}
    >>> index_parameters(None) is None
    True
    """
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for key, v in value.items():
        try:
            text = json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            continue
        if len(text) <= MAX_PARAMETER_JSON:
            out[str(key)] = v
    return out


@record
class Recovery:
    """An index that could not be used and was replaced: when, why, and where the old file went."""

    at: str
    reason: str
    set_aside: str | None

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "reason": self.reason, "setAside": self.set_aside}


class _NotAFile(Exception):
    """Something other than a regular file sits at the index path."""


def is_disk_full(exc: BaseException) -> bool:
    """An OS or SQLite error that means "no space left" (or over quota)."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"


def _corrupt(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "") in _CORRUPT


def _stale_schema(exc: sqlite3.Error) -> bool:
    # The file was replaced (set aside, rebuilt) between our check and our query.
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith(("no such table",
                                                                              "no such column"))


def _unwritable(exc: sqlite3.Error) -> bool:
    """A read-only index or folder: a read that needs set-up first uses a fallback instead."""
    return getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))


def _low_on_space(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < 1 << 20
    except OSError:
        return False


class FolderIndex(Generic[R]):
    """
    A SQLite index at ``path`` of rows read from folders. ``scan`` lists every
    complete folder as rows (used to fill a new index); ``present`` says whether
    a row's folder is still there (so ghost rows are never listed). Subclasses
    give the schema (its first table has the ``id`` column) and write the rows.
    """

    label = "index"
    schema = ""
    version = ""
    tables: tuple[str, ...] = ()

    def __init__(self, path: Path, scan: Callable[[], list[R]],
                 present: Callable[[str], bool]) -> None:
        self.path = path
        self._scan = scan
        self._present = present
        self._ready: tuple[int, int] | None = None  # (device, inode) of the file last checked
        self._scanned: list[R] | None = None  # folders already read by the caller
        self._setting_up = threading.Lock()  # one thread of a server reads the folders, not each
        self.recovered: list[Recovery] = []

    # -- connections ------------------------------------------------------------------------

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise _NotAFile("a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        return (st.st_dev, st.st_ino)

    def _connect(self, uri: str | None = None) -> sqlite3.Connection:
        """A connection of its own (the one seam tests use to put SQLite under pressure)."""
        target = uri if uri is not None else str(self.path)
        conn = sqlite3.connect(target, timeout=30.0, isolation_level=None, uri=uri is not None)
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """A connection to a current index; the schema is written only when missing or outdated."""
        ident = self._identity()
        conn = self._connect()
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            if ident is None or ident != self._ready:
                if not self._current(conn):
                    with self._setting_up:
                        if not self._current(conn):
                            self._set_up(conn)
                self._ready = self._identity()
            # Process crashes cannot lose committed rows without fsync; power loss may,
            # and a damaged index is rebuilt from the folders.
            conn.execute("PRAGMA synchronous = OFF")
            yield conn
        finally:
            conn.close()

    def _current(self, conn: sqlite3.Connection) -> bool:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError as exc:
            if _stale_schema(exc):
                return False
            raise
        return row is not None and row[0] == self.version

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """Create (or replace an outdated) schema; a new table is filled from the folders."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # an index of an earlier release may be in WAL mode
            conn.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith("database is locked"):
                raise
        arts: list[R] | None = None
        while True:
            with transaction(conn):
                conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if row is not None and row[0] == self.version:
                    return  # another connection got here first
                if arts is not None:
                    for table in self.tables:
                        conn.execute(f"DROP TABLE IF EXISTS {table}")
                    for statement in filter(str.strip, self.schema.split(";")):
                        conn.execute(statement)
                    self._put(conn, arts)
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
                                 (self.version,))
                    return
            # Folders are read outside the write lock, then the check above runs again.
            arts = self._scanned if self._scanned is not None else self._scan()

    def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """
        ``fn`` on a ready connection. A corrupt index is set aside and rebuilt; a full
        disk is ``StorageFull`` for a write and a fallback index for a read.
        """
        for attempt in range(3):
            last = attempt == 2
            ident: tuple[int, int] | None = None
            try:
                ident = self._identity()
                with self._session() as conn:
                    return fn(conn)
            except _NotAFile as exc:
                if last:
                    raise ArtifactError(f"{self.label} {self.path} is {exc} and cannot be replaced") from None
                self._set_aside(f"{self.path.name} is {exc}", None)
            except sqlite3.Error as exc:
                if _stale_schema(exc) and attempt == 0:
                    self._ready = None  # replaced by another process since we last looked
                elif (_corrupt(exc) or _stale_schema(exc)) and not last:
                    self._set_aside(str(exc), ident)
                elif self._full(exc):
                    if write:
                        raise StorageFull(f"the disk holding the {self.label} {self.path} is full; "
                                          "nothing was stored (free some space and try again)") from exc
                    return self._fallback(fn)
                elif not write and _unwritable(exc):
                    return self._fallback(fn)
                else:
                    raise ArtifactError(f"{self.label} {self.path}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _full(self, exc: sqlite3.Error) -> bool:
        name = getattr(exc, "sqlite_errorname", "")
        return name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and _low_on_space(self.path.parent))

    def _fallback(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read that cannot use the index file as it is: the file read as-is, else the folders."""
        try:
            if self._identity() is not None:
                conn = self._connect(f"{self.path.resolve().as_uri()}?immutable=1")
                try:
                    if self._current(conn):
                        return fn(conn)
                finally:
                    conn.close()
        except (sqlite3.Error, _NotAFile, OSError):
            pass
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            for statement in filter(str.strip, self.schema.split(";")):
                conn.execute(statement)
            self._put(conn, self._scan())
            return fn(conn)
        finally:
            conn.close()

    def _set_aside(self, reason: str, seen: tuple[int, int] | None) -> None:
        """Rename the index and its siblings out of the way (unless another process already did)."""
        try:
            now = self._identity()
        except _NotAFile:
            now = seen
        if seen is not None and now != seen:
            self._ready = None
            return  # already replaced by someone else
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.rename(self.path, target)
        except FileNotFoundError:
            moved = None
        except OSError as exc:
            raise ArtifactError(f"{self.label} {self.path} is unusable ({reason}) and cannot be set "
                                f"aside: {exc.strerror}") from exc
        else:
            moved = str(target)
        for suffix in SIBLINGS:  # a leftover journal must never meet the new file
            with suppress(OSError):
                os.rename(f"{self.path}{suffix}", f"{target}{suffix}")
        self._ready = None
        self.recovered.append(Recovery(stamp, reason, moved))
        _log().warning("%s %s could not be used (%s); set aside as %s, rebuilding it from the "
                    "folders", self.label, self.path, reason, moved or "(nothing left to move)")

    # -- checks --------------------------------------------------------------------------------

    def check(self) -> Recovery | None:
        """Start-up check: ``PRAGMA quick_check``; a failing index is set aside and rebuilt now."""
        before = len(self.recovered)
        ident = None
        with suppress(_NotAFile):  # handled (set aside) by the first use below
            ident = self._identity()
        rows = self._run(lambda conn: [r[0] for r in conn.execute("PRAGMA quick_check")], write=False)
        if rows != ["ok"]:
            self._set_aside("quick_check: " + "; ".join(str(r).replace("\n", " ") for r in rows[:3]), ident)
            self.count()  # rebuilt at start-up, not by the first request
        return self.recovered[-1] if len(self.recovered) > before else None

    # -- rows ----------------------------------------------------------------------------------

    def _put(self, conn: sqlite3.Connection, rows: Sequence[R]) -> None:
        raise NotImplementedError

    def _drop(self, conn: sqlite3.Connection, ids: Iterable[str]) -> None:
        raise NotImplementedError

    def put(self, arts: Sequence[R], maybe_gone: Iterable[str] = ()) -> list[str]:
        """
        Upsert ``arts`` and drop the rows of ``maybe_gone`` whose folder is absent, in one
        transaction; rows of ``arts`` whose folder vanished meanwhile are dropped again.
        Returns the ids dropped.
        """
        candidates = [*(a.id for a in arts), *maybe_gone]

        def go(conn: sqlite3.Connection) -> list[str]:
            with transaction(conn):
                self._put(conn, arts)
                # Checked inside the write transaction: a delete may have renamed a folder
                # away while it was read, and a run renamed into place after a scan (and
                # indexed by its writer) keeps its row.
                gone = sorted({i for i in candidates if not self._present(i)})
                self._drop(conn, gone)
            return gone
        return self._run(go, write=True)

    def remove(self, ids: Iterable[str]) -> None:
        ids = list(ids)

        def go(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                self._drop(conn, ids)
        self._run(go, write=True)

    def replace(self, arts: list[R]) -> list[str]:
        """Upsert every row of ``arts`` (all the folders) and drop the rest; returns the dropped ids."""
        found = {a.id for a in arts}

        def go(conn: sqlite3.Connection) -> list[str]:
            with transaction(conn):
                self._put(conn, arts)
                indexed = {r[0] for r in conn.execute(f"SELECT id FROM {self.tables[0]}")}
                gone = sorted(i for i in indexed - found if not self._present(i))
                self._drop(conn, gone)
            return gone
        self._scanned = arts  # a new index is filled with these, not with a second scan
        try:
            return self._run(go, write=True)
        finally:
            self._scanned = None

    def ids(self) -> set[str]:
        return self._run(lambda conn: {r[0] for r in conn.execute(f"SELECT id FROM {self.tables[0]}")},
                         write=False)

    def count(self) -> int:
        return self._run(lambda conn: int(conn.execute(f"SELECT COUNT(*) FROM {self.tables[0]}")
                                          .fetchone()[0]), write=False)


class RunIndex(FolderIndex[Artifact]):
    """The run index: ``artifacts`` rows and their tags."""

    label = "run index"
    schema = _SCHEMA
    version = SCHEMA_VERSION
    tables = ("artifacts", "artifact_tags")

    def _put(self, conn: sqlite3.Connection, arts: Sequence[Artifact]) -> None:
        ids = [(a.id,) for a in arts]
        conn.executemany("DELETE FROM artifact_tags WHERE id = ?", ids)
        conn.executemany(_UPSERT, (a._row() for a in arts))
        conn.executemany("INSERT OR IGNORE INTO artifact_tags (tag, type, created, id) VALUES (?, ?, ?, ?)",
                         ((t, a.type, a.created, a.id) for a in arts for t in a.tags))

    def _drop(self, conn: sqlite3.Connection, ids: Iterable[str]) -> None:
        rows = [(i,) for i in ids]
        conn.executemany("DELETE FROM artifacts WHERE id = ?", rows)
        conn.executemany("DELETE FROM artifact_tags WHERE id = ?", rows)

    def get(self, run_id: str) -> Artifact | None:
        row = self._run(lambda conn: conn.execute("SELECT * FROM artifacts WHERE id = ?",
                                                  (run_id,)).fetchone(), write=False)
        return None if row is None else Artifact._from_row(row)

    def query(self, q: ArtifactQuery) -> Page:
        """One page of rows matching ``q`` (ghost rows left out and dropped), with the total."""
        from flowtime.artifacts.query import Page, query_sql  # query builds on this module's rows

        sql = query_sql(q)
        page = self._run(sql.page, write=False)
        ghosts = [a.id for a in page.artifacts if not self._present(a.id)]
        if not ghosts:
            return page
        try:
            self.remove(ghosts)
        except ArtifactError:  # the index cannot be written now: leave them out of this page
            kept = [a for a in page.artifacts if a.id not in ghosts]
            return Page(kept, max(len(kept), page.total - len(ghosts)))
        return self._run(sql.page, write=False)


@contextmanager
def transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
    except BaseException:
        # SQLite has already rolled back after some errors (a full disk at COMMIT).
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
