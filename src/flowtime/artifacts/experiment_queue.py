"""
Accepted experiment requests, kept until they finish (decision 0037).

    <engine data dir>/experiments/queue/<expId>.json   {id, spec, model, title, modelHash, submittedUtc}

A request is written when the Engine accepts it (a temporary file, flushed and
synced, renamed into place) and removed when it ends: stored, failed, or
cancelled by a client. Whatever is left at start-up was queued or running when
the process stopped, and is run again from the start (its spec carries its
seed, so the result is the same). A file that cannot be read back is reported,
never fatal.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson

from flowtime.artifacts import layout
from flowtime.artifacts.experiments import EXPERIMENT_ID, check_experiment_id
from flowtime.artifacts.index import is_disk_full
from flowtime.errors import ArtifactError, StorageFull
from flowtime.records import record

QUEUE = "queue"
SUFFIX = ".json"


@record
class QueuedRequest:
    id: str
    spec: dict[str, Any]
    model: str
    title: str
    model_hash: str
    submitted: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "spec": self.spec, "model": self.model, "title": self.title,
                "modelHash": self.model_hash, "submittedUtc": self.submitted}


@record
class Unreadable:
    """A request file that could not be read back: its id (from the file name) and why."""

    id: str
    reason: str


def _request(exp_id: str, data: Any) -> QueuedRequest:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    missing = [k for k in ("id", "spec", "model", "submittedUtc") if k not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if data["id"] != exp_id:
        raise ValueError(f"it names experiment {str(data['id'])[:80]!r}")
    if not isinstance(data["spec"], dict) or not isinstance(data["model"], str):
        raise ValueError("spec must be an object and model a string")
    return QueuedRequest(exp_id, data["spec"], data["model"], str(data.get("title", "")),
                         str(data.get("modelHash", "")), str(data["submittedUtc"]))


class ExperimentQueue:
    """The request files under ``<experiments root>/queue``."""

    def __init__(self, experiments_root: Path) -> None:
        self.root = Path(experiments_root) / QUEUE

    def path(self, exp_id: str) -> Path:
        return self.root / f"{check_experiment_id(exp_id)}{SUFFIX}"

    def put(self, request: QueuedRequest) -> None:
        """Write the request durably (synced, renamed into place); ``StorageFull`` when the disk is."""
        final = self.path(request.id)
        tmp = self.root / f"{layout.TMP_PREFIX}{request.id}-{os.urandom(4).hex()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(request.to_json()))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _sync_folder(self.root)
        except OSError as exc:
            with suppress(OSError):
                tmp.unlink()
            if is_disk_full(exc):
                raise StorageFull(f"the disk holding {self.root} is full: experiment {request.id} was not "
                                  "accepted") from exc
            raise ArtifactError(f"cannot keep experiment request {request.id} under {self.root}: {exc}") from exc

    def remove(self, exp_id: str) -> None:
        with suppress(FileNotFoundError):
            self.path(exp_id).unlink()

    def pending(self) -> list[QueuedRequest | Unreadable]:
        """Every request left, oldest first (ids sort by their UTC stamp); leftover temporaries removed."""
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        out: list[QueuedRequest | Unreadable] = []
        for entry in entries:
            if entry.name.startswith(layout.TMP_PREFIX):  # a write cut short: it was never accepted
                with suppress(OSError):
                    os.unlink(entry.path)
                continue
            exp_id = entry.name.removesuffix(SUFFIX)
            if not entry.name.endswith(SUFFIX) or not EXPERIMENT_ID.match(exp_id):
                continue  # not ours
            try:
                out.append(_request(exp_id, json.loads(Path(entry.path).read_bytes().decode("utf-8"))))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                out.append(Unreadable(exp_id, f"its saved request {entry.path} cannot be read: {exc}"))
        return out


def _sync_folder(folder: Path) -> None:
    """The rename itself made durable (POSIX); nothing to do where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
