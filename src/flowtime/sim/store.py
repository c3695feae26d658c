"""
Sim's temporary model store: content-addressed folders that expire.

Layout (see docs/decisions/0007-sim-store-and-ids.md)::

    <data>/models/<templateId>/<hashPrefix>/   generated models
    <data>/named/<name>_<4 hex>/v<n>/          named models, one folder per version

Each folder holds model.yaml, provenance.json (the latest generation's),
metadata.json, validation.json, preview.svg and issued.jsonl: every
provenance record issued for this model, one per line, so each model id ever
handed out resolves for as long as its model is stored (generating the same
model again a second later issues a new id; runs keep naming the first). A folder is written under a temporary
sibling name and renamed into place, so a reader (or a crash) never sees a
half-written model; listings skip anything whose name does not match the
strict patterns below, and symbolic links (folders or files) are never
followed. The Engine owns the permanent registry: everything here is removed
once it is older than the time-to-live.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowtime.errors import ArtifactError, ModelNotFound
from flowtime.sim.canonical import sha256_hex
from flowtime.sim.template import TEMPLATE_ID

MODELS_DIR = "models"
NAMED_DIR = "named"
MODEL_FILE = "model.yaml"
PROVENANCE_FILE = "provenance.json"
METADATA_FILE = "metadata.json"
VALIDATION_FILE = "validation.json"
PREVIEW_FILE = "preview.svg"
ISSUED_FILE = "issued.jsonl"
HASH_PREFIX = re.compile(r"^[0-9a-f]{12}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}_[0-9a-f]{4}$")
VERSION_DIR = re.compile(r"^v([1-9][0-9]{0,8})$")
# All checked with fullmatch: with .match, `$` also matches before a final newline
# ("v1\n"). The patterns keep `$` because NAME.pattern also goes to pydantic, whose
# Rust regex engine has no `\Z` (and whose `$` is strict already).
TEMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
STALE_TEMP_SECONDS = 300.0


def utc_iso(moment: datetime) -> str:
    """
    >>> utc_iso(datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    '2025-01-02T03:04:05.678Z'
    """
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def name_id(name: str) -> str:
    """
    The id of a named model: the name plus 4 hex of SHA-256 over the name.

    >>> name_id("checkout-baseline")
    'checkout-baseline_31cb'
    """
    if not NAME.fullmatch(name):
        raise ArtifactError(f"model name {name[:80]!r} must start with a letter or digit and use only "
                            "letters, digits, '-', '_' and '.' (at most 64)")
    return f"{name}_{sha256_hex(name)[:4]}"


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class StoredModel:
    """
    A model folder and its metadata.json; ``issued`` is the provenance of the
    model id it was looked up by, when that is not the latest one.
    """

    path: Path
    metadata: dict[str, Any]
    issued: dict[str, Any] | None = None

    @property
    def template_id(self) -> str:
        return str(self.metadata.get("templateId", ""))

    @property
    def hash(self) -> str:
        return str(self.metadata.get("hash", ""))

    @property
    def model_id(self) -> str:
        if self.issued is not None:
            return str(self.issued.get("modelId", ""))
        return str(self.metadata.get("modelId", ""))

    @property
    def version(self) -> int | None:
        v = self.metadata.get("version")
        return v if isinstance(v, int) else None

    @property
    def updated(self) -> datetime:
        moment = parse_iso(self.metadata.get("updated")) or parse_iso(self.metadata.get("created"))
        return moment or datetime.fromtimestamp(self.path.stat().st_mtime, UTC)

    def read(self, name: str) -> str:
        path = self.path / name
        try:
            return _read_text(path)
        except OSError as exc:
            if path.is_symlink():
                raise ModelNotFound(f"{name} of stored model {self.path.name} not found "
                                    "(symbolic links are not followed)") from None
            raise ArtifactError(f"cannot read {name} of stored model {self.path.name}: "
                                f"{exc.strerror}") from None

    def model_text(self) -> str:
        return self.read(MODEL_FILE)

    def provenance(self) -> dict[str, Any]:
        if self.issued is not None:
            return dict(self.issued)
        data: dict[str, Any] = json.loads(self.read(PROVENANCE_FILE))
        return data

    def issued_as(self, model_id: str) -> StoredModel | None:
        """This model as looked up by ``model_id``; None when that id was never issued for it."""
        if model_id == self.metadata.get("modelId"):
            return StoredModel(self.path, self.metadata)
        record = _find_issued(self.path, model_id)
        return StoredModel(self.path, self.metadata, record) if record is not None else None

    def validation(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.read(VALIDATION_FILE))
        return data

    def preview(self) -> str:
        return self.read(PREVIEW_FILE)

    def summary(self) -> dict[str, Any]:
        out = {
            "templateId": self.template_id,
            "hash": self.hash,
            "modelId": self.model_id,
            "title": self.metadata.get("title", ""),
            "created": self.metadata.get("created"),
            "updated": self.metadata.get("updated"),
            "path": str(self.path / MODEL_FILE),
        }
        if "nameId" in self.metadata:
            out.update(name=self.metadata.get("name"), nameId=self.metadata["nameId"],
                       version=self.version)
        return out


def _read_text(path: Path) -> str:
    """A file's text; a symbolic link is refused (O_NOFOLLOW: no race between check and open)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8")


def _issued_line(provenance: Mapping[str, Any]) -> str:
    return json.dumps(provenance, ensure_ascii=False, separators=(",", ":")) + "\n"


def _append_issued(folder: Path, provenance: Mapping[str, Any]) -> None:
    """
    One line appended with a single O_APPEND write: concurrent generations of
    the same model each add their line whole, and nothing else is rewritten.
    """
    data = _issued_line(provenance).encode("utf-8")
    fd = os.open(folder / ISSUED_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _find_issued(folder: Path, model_id: str) -> dict[str, Any] | None:
    """The provenance recorded in ``issued.jsonl`` for ``model_id``, if any."""
    needle = '"modelId":' + json.dumps(model_id, ensure_ascii=False)  # as _issued_line writes it
    try:
        text = _read_text(folder / ISSUED_FILE)
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if needle not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line from a crash; the others still count
        if isinstance(record, dict) and record.get("modelId") == model_id:
            return record
    return None


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _write_files(folder: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def _replace_files(folder: Path, files: Mapping[str, str]) -> None:
    """Rewrite files inside an existing folder, each one atomically; unchanged ones are left alone."""
    for name, text in files.items():
        with contextlib.suppress(OSError):
            if (folder / name).read_text(encoding="utf-8") == text:
                continue
        tmp = folder / f"{TEMP_PREFIX}{name}-{secrets.token_hex(4)}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)


def _publish(parent: Path, final_name: str, files: Mapping[str, str]) -> bool:
    """
    Write ``files`` into a temporary sibling, then rename it to ``final_name``.
    False when that name already exists (someone else published first).
    """
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f"{TEMP_PREFIX}{final_name}-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        _write_files(tmp, files)
        _pause_hook("before-rename")
        os.rename(tmp, parent / final_name)  # fails if the target exists and is not empty
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if (parent / final_name).is_dir():
            return False
        raise
    return True


def _pause_hook(point: str) -> None:
    """
    Test hook, as in the run writer: FLOWTIME_TEST_PAUSE_AT=<point> writes the file
    FLOWTIME_TEST_PAUSE_MARKER names and blocks, so a test can kill the process mid-write.
    """
    if os.environ.get("FLOWTIME_TEST_PAUSE_AT") == point:
        marker = os.environ.get("FLOWTIME_TEST_PAUSE_MARKER")
        if marker:
            Path(marker).write_text("paused")
        time.sleep(3600)


def _remove(folder: Path) -> None:
    """Take a folder out of listings at once (rename), then delete it."""
    trash = folder.with_name(f"{TRASH_PREFIX}{folder.name}-{secrets.token_hex(4)}")
    try:
        os.rename(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _clean_temp(root: Path, older_than: float) -> list[Path]:
    """Delete leftovers of interrupted writes (two levels deep) older than ``older_than`` s."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    limit = time.time() - older_than
    for level1 in root.iterdir():
        candidates = [level1]
        if _is_real_dir(level1) and not level1.name.startswith("."):
            candidates = list(level1.iterdir())
        for entry in candidates:
            if not entry.name.startswith((TEMP_PREFIX, TRASH_PREFIX)):
                continue
            with contextlib.suppress(OSError):
                if entry.lstat().st_mtime <= limit:
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
                    removed.append(entry)
    return removed


def _read_metadata(folder: Path) -> dict[str, Any] | None:
    """metadata.json of a complete model folder; None for anything else (symbolic links included)."""
    model = folder / MODEL_FILE
    if folder.is_symlink() or model.is_symlink() or not model.is_file():
        return None
    try:
        data = json.loads(_read_text(folder / METADATA_FILE))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ModelStore:
    """Generated models by template id and hash prefix: ``<data>/models/<id>/<hash>/``."""

    def __init__(self, data_dir: Path, *, stale_after: float = STALE_TEMP_SECONDS) -> None:
        self.root = data_dir / MODELS_DIR
        _clean_temp(self.root, stale_after)

    def save(self, template_id: str, hash_prefix: str, files: Mapping[str, str],
             metadata: Mapping[str, Any], *, now: datetime | None = None,
             issued: Mapping[str, Any] | None = None) -> tuple[StoredModel, bool]:
        """
        Store a model; (stored, True) when new. Saving the same model again
        reuses its folder: files are refreshed, ``created`` is kept and
        ``updated`` moves on (which restarts its time-to-live). ``issued`` is
        the provenance handed out with this generation; it is recorded so its
        model id keeps resolving.
        """
        if not TEMPLATE_ID.fullmatch(template_id) or not HASH_PREFIX.fullmatch(hash_prefix):
            raise ArtifactError(f"refusing to store under {template_id!r}/{hash_prefix!r}")
        stamp = utc_iso(now or datetime.now(UTC))
        meta = {**metadata, "templateId": template_id, "hash": hash_prefix,
                "created": stamp, "updated": stamp}
        parent = self.root / template_id
        target = parent / hash_prefix
        first = {ISSUED_FILE: _issued_line(issued)} if issued is not None else {}
        for _ in range(3):  # a clean-up may remove the folder between our look and our write
            if not target.exists() and _publish(parent, hash_prefix,
                                                {**files, **first, METADATA_FILE: json_text(meta)}):
                return StoredModel(target, meta), True
            old = _read_metadata(target) or {}
            meta["created"] = old.get("created", stamp)
            try:
                if issued is not None and issued.get("modelId") != old.get("modelId"):
                    # Before metadata moves on: an id is findable once it is answered.
                    _append_issued(target, issued)
                _replace_files(target, {**files, METADATA_FILE: json_text(meta)})
            except FileNotFoundError:
                meta["created"] = stamp
                continue
            return StoredModel(target, meta), False
        raise ArtifactError(f"could not store model {template_id}/{hash_prefix}: its folder keeps vanishing")

    def _entries(self, template_id: str | None = None) -> Iterator[tuple[Path, dict[str, Any] | None]]:
        if not self.root.is_dir():
            return
        if template_id is not None:
            parents = [self.root / template_id] if TEMPLATE_ID.fullmatch(template_id) else []
        else:
            parents = sorted(p for p in self.root.iterdir() if TEMPLATE_ID.fullmatch(p.name))
        for parent in parents:
            if not _is_real_dir(parent):
                continue
            for folder in sorted(parent.iterdir()):
                if HASH_PREFIX.fullmatch(folder.name) and _is_real_dir(folder):
                    yield folder, _read_metadata(folder)

    def models(self, template_id: str | None = None) -> list[StoredModel]:
        """Complete models, most recently generated first."""
        out = [StoredModel(f, m) for f, m in self._entries(template_id) if m is not None]
        out.sort(key=lambda s: (s.updated, s.template_id, s.hash), reverse=True)
        return out

    def count(self) -> int:
        return sum(1 for _, m in self._entries() if m is not None)

    def get(self, template_id: str, hash_prefix: str) -> StoredModel:
        if TEMPLATE_ID.fullmatch(template_id) and HASH_PREFIX.fullmatch(hash_prefix):
            folder = self.root / template_id / hash_prefix
            meta = _read_metadata(folder) if _is_real_dir(folder.parent) else None
            if meta is not None:
                return StoredModel(folder, meta)
        raise ModelNotFound(f"no stored model {_shown(template_id)}/{_shown(hash_prefix)}; "
                            "models expire, generate it again")

    def latest(self, template_id: str) -> StoredModel:
        models = self.models(template_id)
        if not models:
            raise ModelNotFound(f"no stored models for template {_shown(template_id)}")
        return models[0]

    def find(self, model_id: str) -> StoredModel:
        """The stored model ``model_id`` was issued for (the latest generation or an earlier one)."""
        found = _find_in(self.models(), model_id)
        if found is None:
            raise ModelNotFound(f"no stored model with id {_shown(model_id)}")
        return found

    def gc(self, ttl_seconds: float, *, now: datetime | None = None) -> list[Path]:
        """Remove models last generated more than ``ttl_seconds`` ago, and temp leftovers."""
        moment = (now or datetime.now(UTC)).timestamp()
        removed = _clean_temp(self.root, STALE_TEMP_SECONDS)
        for folder, meta in list(self._entries()):
            when = (StoredModel(folder, meta).updated.timestamp() if meta is not None
                    else folder.stat().st_mtime)
            if moment - when > ttl_seconds:
                _remove(folder)
                removed.append(folder)
        _remove_empty_children(self.root)
        return removed


class NamedStore:
    """Named models with versions: ``<data>/named/<name>_<4 hex>/v<n>/``."""

    def __init__(self, root: Path, *, stale_after: float = STALE_TEMP_SECONDS) -> None:
        self.root = root  # usually <data>/named
        _clean_temp(self.root, stale_after)

    def save(self, name: str, model_hash: str, files: Mapping[str, str], metadata: Mapping[str, Any],
             *, now: datetime | None = None,
             issued: Mapping[str, Any] | None = None) -> tuple[StoredModel, bool]:
        """
        A new version unless the latest version holds the same model
        (same ``model_hash``), which is returned as is: (stored, created).
        ``issued`` is recorded either way, so its model id resolves.
        """
        nid = name_id(name)
        versions = self.versions(nid)
        if versions and versions[-1].metadata.get("modelHash") == model_hash:
            latest = versions[-1]
            if issued is not None and issued.get("modelId") != latest.metadata.get("modelId"):
                _append_issued(latest.path, issued)
            return latest, False
        number = (versions[-1].version or 0) + 1 if versions else 1
        stamp = utc_iso(now or datetime.now(UTC))
        parent = self.root / nid
        for _ in range(100):  # concurrent writers take the next free number
            meta = {**metadata, "name": name, "nameId": nid, "version": number,
                    "modelHash": model_hash, "created": stamp, "updated": stamp}
            first = {ISSUED_FILE: _issued_line(issued)} if issued is not None else {}
            if _publish(parent, f"v{number}", {**files, **first, METADATA_FILE: json_text(meta)}):
                return StoredModel(parent / f"v{number}", meta), True
            number += 1
        raise ArtifactError(f"could not allocate a version for named model {nid}")

    def versions(self, nid: str) -> list[StoredModel]:
        folder = self.root / nid
        if not NAME_ID.fullmatch(nid) or not _is_real_dir(folder):
            return []
        out = []
        for entry in folder.iterdir():
            m = VERSION_DIR.fullmatch(entry.name)
            meta = _read_metadata(entry) if m and _is_real_dir(entry) else None
            if meta is not None:
                out.append(StoredModel(entry, meta))
        out.sort(key=lambda s: s.version or 0)
        return out

    def get(self, ref: str, version: int | None = None) -> StoredModel:
        """
        ``ref`` is a name id (``checkout-baseline_4d1e``), optionally with
        ``/v<n>`` or ``@v<n>``, or the plain name; the latest version unless one is given.
        """
        nid, _, tail = ref.replace("@", "/").partition("/")
        if tail:
            m = VERSION_DIR.fullmatch(tail)
            if m is None:
                raise ModelNotFound(f"no named model {_shown(ref)}: write <name id>/v<n>")
            version = int(m.group(1))
        if not NAME_ID.fullmatch(nid) and NAME.fullmatch(nid):
            nid = name_id(nid)
        versions = self.versions(nid)
        if not versions:
            raise ModelNotFound(f"no named model {_shown(ref)}")
        if version is None:
            return versions[-1]
        for v in versions:
            if v.version == version:
                return v
        raise ModelNotFound(f"named model {nid} has no version v{version} "
                            f"(latest is v{versions[-1].version})")

    def find(self, model_id: str) -> StoredModel:
        """The named model version ``model_id`` was issued for."""
        every = [v for latest in self.models() for v in self.versions(latest.path.parent.name)]
        found = _find_in(every, model_id)
        if found is None:
            raise ModelNotFound(f"no named model with id {_shown(model_id)}")
        return found

    def models(self) -> list[StoredModel]:
        """The latest version of every named model, by name."""
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(self.root.iterdir()):
            versions = self.versions(folder.name) if NAME_ID.fullmatch(folder.name) else []
            if versions:
                out.append(versions[-1])
        return out

    def gc(self, ttl_seconds: float, *, now: datetime | None = None) -> list[Path]:
        moment = (now or datetime.now(UTC)).timestamp()
        removed = _clean_temp(self.root, STALE_TEMP_SECONDS)
        for latest in self.models():
            for version in self.versions(latest.path.parent.name):
                if moment - version.updated.timestamp() > ttl_seconds:
                    _remove(version.path)
                    removed.append(version.path)
        _remove_empty_children(self.root)
        return removed


def _find_in(models: list[StoredModel], model_id: str) -> StoredModel | None:
    """Latest ids first (one read of metadata each), then the issued records."""
    for stored in models:
        if stored.model_id == model_id:
            return stored
    for stored in models:
        found = stored.issued_as(model_id)
        if found is not None:
            return found
    return None


def _remove_empty_children(root: Path) -> None:
    if not root.is_dir():
        return
    for child in root.iterdir():
        if child.is_dir() and not child.name.startswith("."):
            with contextlib.suppress(OSError):
                child.rmdir()  # only succeeds when empty


def _shown(text: str) -> str:
    return text if TEMPLATE_ID.fullmatch(text) or NAME_ID.fullmatch(text) else repr(text[:80])
