"""
The registry: every run ever made, listed, searched, read and deleted.

The run folders on disk are the truth. ``index.sqlite`` in the data directory
(``artifacts/index.py``) only makes listing and searching fast, and can be
thrown away at any time: ``rebuild()`` rescans the disk, ``sync()`` cheaply
catches up with folders added or removed behind its back, and a corrupt index
is set aside and rebuilt by itself.

A folder is listed only when it is named like a run id and holds a manifest
(the writer renames a finished run into place, manifest written last); hidden
``.tmp-`` folders never are. Reads of a run that is deleted meanwhile - at any
moment - raise ``RunNotFound``, never a bare ``OSError``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Registry(Path(d)).query(ArtifactQuery(template_id="capacity")).total
    0
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import numpy.typing as npt

from flowtime.artifacts import layout
from flowtime.artifacts.canonical import sha256_text
from flowtime.artifacts.index import SCHEMA_VERSION, Artifact, Recovery, RunIndex, index_parameters
from flowtime.artifacts.query import MAX_LIMIT, SORT_KEYS, ArtifactQuery, Page
from flowtime.errors import ArtifactError, RunNotFound
from flowtime.records import record

if TYPE_CHECKING:
    from flowtime.artifacts.writer import RunRecord

__all__ = ["INDEX_FILE", "MAX_LIMIT", "SCHEMA_VERSION", "SORT_KEYS", "Artifact", "ArtifactQuery",
           "Page", "Recovery", "Registry", "SyncReport", "folder_size", "parse_series_csv",
           "read_artifact"]

def _log() -> Any:
    """The registry's logger, imported on first use: logging costs the CLI's start-up time."""
    import logging

    return logging.getLogger("flowtime.registry")
INDEX_FILE = "index.sqlite"

Series = npt.NDArray[np.float64]


@record
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class _SymbolicLink(OSError):
    """A file (or its ``series/`` folder) in a run is a symbolic link: it is never followed."""


def _open(path: Path) -> BinaryIO:
    """A file inside a run folder, opened for reading; symbolic links refused (O_NOFOLLOW, no race)."""
    if path.parent.is_symlink():
        raise _SymbolicLink(f"{path.parent.name} is a symbolic link")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if path.is_symlink():
            raise _SymbolicLink(f"{path.name} is a symbolic link") from exc
        raise
    return os.fdopen(fd, "rb")


def _read_bytes(path: Path) -> bytes:
    with _open(path) as f:
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
    try:
        return layout.utc_iso(dt if dt.tzinfo else dt.replace(tzinfo=UTC))
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0
        return None


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
    """The index row of one run folder, or None when it is not a complete run (or vanishes)."""
    try:
        return _read_artifact(folder)
    except OSError:  # deleted while being read
        return None


def _read_artifact(folder: Path) -> Artifact | None:
    manifest = _read_json_or_none(folder / layout.MANIFEST)
    if not isinstance(manifest, dict):
        return None
    raw_run = _read_json_or_none(folder / layout.RUN_JSON)
    run: dict[str, Any] = raw_run if isinstance(raw_run, dict) else {}
    raw_prov = manifest.get("provenance")
    prov: dict[str, Any] = raw_prov if isinstance(raw_prov, dict) else {}
    full_prov = _read_json_or_none(folder / layout.PROVENANCE) if prov else None
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
        parameters=index_parameters(full_prov.get("parameters")) if isinstance(full_prov, dict) else None,
    )


def parse_series_csv(data: bytes) -> Series:
    """
    Values of a series CSV (``t,value`` rows) in row order.

    An empty cell (an undefined bin of a derived metric) is NaN.

    >>> parse_series_csv(b"t,value\\n0,1\\n1,NaN\\n2,-Infinity\\n3,\\n").tolist()
    [1.0, nan, -inf, nan]
    >>> parse_series_csv(b"t,value\\r\\n0,1.5\\r\\n1,\\r\\n2,2").tolist()
    [1.5, nan, 2.0]
    """
    body = data.removeprefix(b"\xef\xbb\xbf")
    lines = body.count(b"\n")
    if b"\r" not in body and lines and body.endswith(b"\n"):
        # The canonical file: "t,value" then "i,v" rows. One split and NumPy's own conversion
        # are several times faster than a float() per row (the state API reads whole runs).
        cells = np.array(body.replace(b"\n", b",").split(b",")[3::2])
        if cells.size == lines - 1:
            try:
                if cells.size and not cells.all():  # empty cells (b"" is falsy): NaN
                    out = np.full(cells.size, math.nan)
                    given = cells != b""
                    out[given] = cells[given].astype(np.float64)
                    return out
                return cells.astype(np.float64)
            except ValueError:
                pass
    rows = body.split(b"\n")
    cells_ = [line.partition(b",")[2].strip() for line in rows[1:] if line.strip()]
    values = [float(c) if c else math.nan for c in cells_]
    return np.array(values, dtype=np.float64)


class Registry:
    """The runs under one data directory: index, lookup, files, verification, deletion."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.index_path = self.root / INDEX_FILE
        self.index = RunIndex(self.index_path, self._scan, self._complete)

    @property
    def recovered(self) -> list[Recovery]:
        """Indexes this registry found unusable, set aside and rebuilt (for health checks)."""
        return self.index.recovered

    # -- the index --------------------------------------------------------------------------

    def _run_folders(self) -> dict[str, Path]:
        """Folders named like run ids (never temp folders, never symlinks)."""
        out: dict[str, Path] = {}
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return out
        for entry in entries:
            try:
                if layout.is_run_id(entry.name) and entry.is_dir(follow_symlinks=False):
                    out[entry.name] = Path(entry.path)
            except OSError:
                continue
        return out

    def _scan(self) -> list[Artifact]:
        return [a for a in map(read_artifact, self._run_folders().values()) if a is not None]

    def _complete(self, run_id: str) -> bool:
        """Whether ``run_id``'s folder is a complete run (its row may be listed)."""
        folder = self.root / run_id
        manifest = folder / layout.MANIFEST
        return not folder.is_symlink() and not manifest.is_symlink() and manifest.is_file()

    def has(self, run_id: str) -> bool:
        """Whether ``run_id`` is a complete run here (False for text that is not a run id)."""
        return layout.is_run_id(run_id) and self._complete(run_id)

    def check(self) -> Recovery | None:
        """Start-up check of the index (``PRAGMA quick_check``); a bad one is set aside and rebuilt."""
        return self.index.check()

    def add(self, run_id: str) -> Artifact | None:
        """Index (or re-index) one run from its folder; returns its row, or None if incomplete."""
        folder = layout.run_dir(self.root, run_id)
        art = read_artifact(folder) if not folder.is_symlink() else None
        if art is None:
            self.index.remove([run_id])
            return None
        gone = self.index.put([art])
        return None if gone else art

    def register(self, record: RunRecord) -> Artifact | None:
        """
        Index a run ``write_run`` has just stored. When that fails (a full disk:
        ``StorageFull``), the new run folder is removed again, so a run is never on
        disk but unlisted (a retrying client would make duplicates). A reused
        deterministic run existed before and is left alone.
        """
        try:
            return self.add(record.run_id)
        except BaseException:
            if not record.reused:
                self._remove_folder(record.run_id)
            raise

    def rebuild(self) -> int:
        """Rescan every run folder and make the index match; returns the number of runs."""
        arts = self._scan()
        self.index.replace(arts)
        return len(arts)

    def sync(self) -> SyncReport:
        """Catch up with the disk cheaply: read only new folders' manifests, drop vanished rows."""
        folders = self._run_folders()
        indexed = self.index.ids()
        new = [read_artifact(folders[name]) for name in sorted(folders.keys() - indexed)]
        arts = [a for a in new if a is not None]
        vanished = indexed - folders.keys()
        if not arts and not vanished:
            return SyncReport()  # nothing to write (and a full disk is no obstacle)
        gone = self.index.put(arts, vanished)
        return SyncReport([a.id for a in arts if a.id not in gone], [i for i in gone if i in vanished])

    def query(self, q: ArtifactQuery | None = None) -> Page:
        """One page of indexed runs matching ``q``, with the total before paging."""
        return self.index.query(q or ArtifactQuery())

    def count(self) -> int:
        return self.index.count()

    def get(self, run_id: str) -> Artifact:
        """The index row of ``run_id`` (indexing it first if its folder is newer than the index)."""
        folder = self.run_path(run_id)
        art = self.index.get(run_id)
        if art is not None:
            return art
        art = read_artifact(folder)
        if art is None:
            raise RunNotFound(f"run '{run_id}' not found")
        try:
            if self.index.put([art]):
                raise RunNotFound(f"run '{run_id}' not found (deleted)")
        except ArtifactError as exc:
            if isinstance(exc, RunNotFound):
                raise
            # The index cannot be written now (a full disk): answer from the folder.
            _log().warning("run %s is not in the index and cannot be added now: %s", run_id, exc)
        return art

    def delete(self, run_id: str) -> None:
        """
        Remove a run: its folder is first renamed to a hidden temp name (so a
        half-deleted run is never listed), then its files go (freeing the space
        even when the index cannot be written), then its row. A row whose folder
        is already gone is deleted too.
        """
        layout.check_run_id(run_id)
        if not self._complete(run_id):
            if self.index.get(run_id) is None:
                raise RunNotFound(f"run '{run_id}' not found (already deleted)")
            self.index.remove([run_id])  # a ghost row: its folder went, the row stayed
            return
        doomed = self.root / f"{layout.TMP_PREFIX}deleted-{run_id}-{os.urandom(4).hex()}"
        try:
            os.rename(self.root / run_id, doomed)
        except FileNotFoundError:
            raise RunNotFound(f"run '{run_id}' not found (already deleted)") from None
        except OSError as exc:
            raise ArtifactError(f"cannot delete run {run_id}: {exc.strerror}") from exc
        shutil.rmtree(doomed, ignore_errors=True)
        try:
            self.index.remove([run_id])
        except ArtifactError as exc:
            # The run is gone; its row is a ghost that no listing shows and the next
            # sync (or delete) drops.
            _log().warning("run %s deleted, but its index row could not be dropped: %s", run_id, exc)

    def _remove_folder(self, run_id: str) -> None:
        doomed = self.root / f"{layout.TMP_PREFIX}deleted-{run_id}-{os.urandom(4).hex()}"
        try:
            os.rename(self.root / run_id, doomed)
        except OSError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    # -- one run's files ----------------------------------------------------------------------

    def run_path(self, run_id: str) -> Path:
        """The folder of a complete run; ``RunNotFound`` for anything else (``InvalidRunId`` for non-ids)."""
        folder = layout.run_dir(self.root, run_id)
        if not self._complete(run_id):
            raise RunNotFound(f"run '{run_id}' not found")
        return folder

    @contextmanager
    def _reading(self, run_id: str, what: str) -> Iterator[None]:
        """OS errors while reading a run's file, as FlowTime errors: a run deleted meanwhile is not found."""
        try:
            yield
        except _SymbolicLink:
            raise RunNotFound(f"{what} of run {run_id} not found (symbolic links are not followed)") from None
        except (FileNotFoundError, NotADirectoryError):
            if not self._complete(run_id):
                raise RunNotFound(f"run '{run_id}' not found (deleted)") from None
            raise ArtifactError(f"run {run_id} has no {what}") from None
        except (OSError, ValueError) as exc:
            if not self._complete(run_id):
                raise RunNotFound(f"run '{run_id}' not found (deleted)") from None
            raise ArtifactError(f"cannot read {what} of run {run_id}: {exc}") from exc

    def _json(self, run_id: str, name: str) -> Any:
        path = self.run_path(run_id) / name
        with self._reading(run_id, name):
            return _read_json(path)

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
                if isinstance(e, dict) and match(e):
                    return dict(e)
        raise RunNotFound(f"series '{series[:100]}' not found in run {run_id}")

    def series_bytes(self, run_id: str, entry: dict[str, Any]) -> bytes:
        """The stored file of a series, found through its index entry's ``path``."""
        path = self.file_path(run_id, str(entry.get("path", "")))
        with self._reading(run_id, f"series {entry.get('id')}"):
            return _read_bytes(path)

    def series_values(self, run_id: str, entry: dict[str, Any]) -> Series:
        return parse_series_csv(self.series_bytes(run_id, entry))

    def all_series(self, run_id: str) -> dict[str, Series]:
        """Every stored series of a run by node id (a class series by its id, ``node@NODE@Class``), in index order."""
        entries = self.series_index(run_id).get("series", [])
        return {str(e.get("id")) if e.get("classKind") == "specific" else _node_id(e): self.series_values(run_id, e)
                for e in entries if isinstance(e, dict)}

    def files(self, run_id: str) -> list[dict[str, Any]]:
        """Every file of a run, ``series/`` files prefixed, with sizes (symlinks skipped)."""
        folder = self.run_path(run_id)
        out: list[dict[str, Any]] = []
        for prefix, where in (("", folder), (f"{layout.SERIES_DIR}/", folder / layout.SERIES_DIR)):
            try:
                entries = sorted(os.scandir(where), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                if not prefix:
                    raise RunNotFound(f"run '{run_id}' not found (deleted)") from None
                continue
            for e in entries:
                try:
                    if e.is_file(follow_symlinks=False) and layout.FILE_NAME.match(e.name):
                        out.append({"name": prefix + e.name, "size": e.stat(follow_symlinks=False).st_size})
                except FileNotFoundError:
                    continue
        if not self._complete(run_id):
            raise RunNotFound(f"run '{run_id}' not found (deleted)")
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
        try:
            inside = path.resolve().is_relative_to(folder.resolve())
        except OSError:
            inside = False
        if any(p.is_symlink() for p in (path, path.parent)) or not path.is_file() or not inside:
            if not self._complete(run_id):
                raise RunNotFound(f"run '{run_id}' not found (deleted)")
            raise RunNotFound(f"file '{name[:80]}' not found in run {run_id}")
        return path

    def open_file(self, run_id: str, name: str) -> BinaryIO:
        """
        File ``name`` of a run, open for reading: once open, it reads whole even if
        the run is deleted meanwhile (the caller closes it).
        """
        path = self.file_path(run_id, name)
        with self._reading(run_id, name):
            return _open(path)

    def verify(self, run_id: str) -> list[str]:
        """Recompute every series hash of a run; returns one line per mismatch (empty = intact)."""
        problems: list[str] = []
        hashes = self.manifest(run_id).get("seriesHashes") or {}
        paths = {str(e.get("id")): str(e.get("path", ""))
                 for e in self.series_index(run_id).get("series", []) if isinstance(e, dict)}
        for sid, expected in sorted(hashes.items()):
            if sid not in paths:
                problems.append(f"{sid}: not in the series index")
                continue
            try:
                data = self.series_bytes(run_id, {"id": sid, "path": paths[sid]})
            except RunNotFound:
                if not self._complete(run_id):
                    raise
                problems.append(f"{sid}: file missing")
                continue
            actual = sha256_text(data)
            if actual != expected:
                problems.append(f"{sid}: hash {actual} != manifest {expected}")
        return problems


def _node_id(entry: dict[str, Any]) -> str:
    return layout.entry_name(entry)
