"""
The run folder: file names, the run-id format, and the one check applied to
every id and file name before a path is built from it.

    <root>/<runId>/
      spec.yaml  run.json  manifest.json  provenance.json?
      series/index.json  series/<node>@<NODE>@DEFAULT.csv
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from flowtime.errors import RunNotFound

SPEC = "spec.yaml"
RUN_JSON = "run.json"
MANIFEST = "manifest.json"
PROVENANCE = "provenance.json"
SERIES_DIR = "series"
INDEX = "index.json"
TMP_PREFIX = ".tmp-"

# \Z, not $: `$` also matches before a trailing newline.
RUN_ID = re.compile(r"^run_(?:(\d{8}T\d{6}Z)_[0-9a-f]{8}|deterministic_[0-9a-f]{8})\Z")
# Names of files inside a run folder (top level or series/), never paths.
FILE_NAME = re.compile(r"^(?!\.)[\w.@\-]{1,200}\Z")
STAMP = "%Y%m%dT%H%M%SZ"


def new_run_id(now: datetime | None = None) -> str:
    """
    >>> bool(RUN_ID.match(new_run_id()))
    True
    """
    now = now or datetime.now(UTC)
    return f"run_{now.strftime(STAMP)}_{secrets.token_hex(4)}"


def deterministic_run_id(scenario_hash: str) -> str:
    return f"run_deterministic_{scenario_hash.removeprefix('sha256:')[:8]}"


def is_run_id(run_id: str) -> bool:
    return bool(RUN_ID.match(run_id))


def run_dir(root: Path, run_id: str) -> Path:
    """The folder of ``run_id``; ids that do not match the pattern never reach the disk."""
    if not is_run_id(run_id):
        raise RunNotFound(f"run '{run_id[:80]}' not found (run ids look like run_20250101T000000Z_ab12cd34)")
    return root / run_id


def checked_file_name(name: str) -> str:
    if not FILE_NAME.match(name) or ".." in name:
        raise RunNotFound(f"file '{name[:80]}' not found (file names are plain names inside the run folder)")
    return name


def series_id(node_id: str) -> str:
    """
    >>> series_id("served")
    'served@SERVED@DEFAULT'
    """
    return f"{node_id}@{node_id.upper()}@DEFAULT"


def series_file(node_id: str) -> str:
    return f"{SERIES_DIR}/{series_id(node_id)}.csv"


def created_from_id(run_id: str) -> datetime | None:
    m = RUN_ID.match(run_id)
    if not m or not m.group(1):
        return None
    return datetime.strptime(m.group(1), STAMP).replace(tzinfo=UTC)


def utc_iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
