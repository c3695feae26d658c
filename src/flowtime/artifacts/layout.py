r"""
The run folder: file names, the run-id format, and the one check applied to
every id and file name before a path is built from it.

    <root>/<runId>/
      spec.yaml  run.json  manifest.json  provenance.json?
      series/index.json  series/<node>@<NODE>@DEFAULT.csv

Ids and names are ASCII only (``re.ASCII``: Python's ``\d`` and ``\w`` would
take any script's digits and letters). A node id that cannot be part of such a
file name - non-ASCII letters, or too long for 255 bytes - gets an encoded
one instead (``series_file``); readers always take the path from the series
index, never rebuild it from an id.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowtime.errors import InvalidRunId, RunNotFound

SPEC = "spec.yaml"
RUN_JSON = "run.json"
MANIFEST = "manifest.json"
PROVENANCE = "provenance.json"
SERIES_DIR = "series"
INDEX = "index.json"
TMP_PREFIX = ".tmp-"

# \Z, not $: `$` also matches before a trailing newline.
RUN_ID = re.compile(r"^run_(?:([0-9]{8}T[0-9]{6}Z)_[0-9a-f]{8}|deterministic_[0-9a-f]{8})\Z", re.ASCII)
RUN_ID_EXAMPLE = "run_20250101T000000Z_ab12cd34"
# Names of files inside a run folder (top level or series/), never paths: no separator,
# so neither "." nor ".." can be one; no leading dot (hidden, "..") nor trailing dot
# (Windows drops it). 255 bytes is the file-name limit of common file systems.
FILE_NAME = re.compile(r"^(?!\.)[A-Za-z0-9_.@\-]{1,255}(?<!\.)\Z", re.ASCII)
MAX_FILE_NAME = 255
# Node ids whose reference file name <id>@<ID>@DEFAULT.csv is a plain ASCII file name.
_PLAIN_NODE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z", re.ASCII)
STAMP = "%Y%m%dT%H%M%SZ"


def new_run_id(now: datetime | None = None) -> str:
    """
    >>> bool(RUN_ID.match(new_run_id()))
    True
    """
    now = now or datetime.now(UTC)
    # os.urandom is what secrets.token_hex reads; importing secrets (hmac, random) costs start-up time.
    return f"run_{now.strftime(STAMP)}_{os.urandom(4).hex()}"


def deterministic_run_id(scenario_hash: str) -> str:
    return f"run_deterministic_{scenario_hash.removeprefix('sha256:')[:8]}"


def is_run_id(run_id: str) -> bool:
    return bool(RUN_ID.match(run_id))


def check_run_id(run_id: str) -> str:
    """``run_id`` itself, or ``InvalidRunId`` (HTTP 400) when it is not shaped like one."""
    if not is_run_id(run_id):
        raise InvalidRunId(f"'{run_id[:80]}' is not a run id; run ids look like {RUN_ID_EXAMPLE} "
                           "or run_deterministic_ab12cd34")
    return run_id


def run_dir(root: Path, run_id: str) -> Path:
    """The folder of ``run_id``; ids that do not match the pattern never reach the disk."""
    return root / check_run_id(run_id)


def checked_file_name(name: str) -> str:
    if not FILE_NAME.match(name):
        raise RunNotFound(f"file '{name[:80]}' not found (file names are plain names inside the run folder)")
    return name


def series_id(node_id: str) -> str:
    """
    >>> series_id("served")
    'served@SERVED@DEFAULT'
    """
    return f"{node_id}@{node_id.upper()}@DEFAULT"


def entry_name(entry: Mapping[str, Any]) -> str:
    """
    The name readers show and look a series index entry up by: its node id, but a
    derived metric's own series name (its ``nodeId`` is the topology node it describes).

    >>> entry_name({"id": "served@SERVED@DEFAULT", "nodeId": "served"})
    'served'
    >>> entry_name({"id": "hub_utilization@HUB_UTILIZATION@DEFAULT", "nodeId": "Hub", "kind": "derived"})
    'hub_utilization'
    """
    node = entry.get("nodeId")
    if entry.get("kind") == "derived" or not isinstance(node, str):
        return str(entry.get("id", "")).split("@", 1)[0]
    return node


def series_file(node_id: str) -> str:
    """
    The series file of a node: the reference's ``<id>@<ID>@DEFAULT.csv`` when
    that is a plain file name, else ``encoded_series_file``.

    >>> series_file("served")
    'series/served@SERVED@DEFAULT.csv'
    >>> series_file("需求")
    'series/node-128a7a03668b3cb1267579aca8e79365.csv'
    """
    name = f"{series_id(node_id)}.csv"
    if _PLAIN_NODE_ID.match(node_id) and len(name) <= MAX_FILE_NAME:
        return f"{SERIES_DIR}/{name}"
    return encoded_series_file(node_id)


def class_series_id(node_id: str, class_id: str) -> str:
    """
    The series of one flow class of a node (the reference's ``classKind: specific``).

    >>> class_series_id("served", "Order")
    'served@SERVED@Order'
    """
    return f"{node_id}@{node_id.upper()}@{class_id}"


def class_series_file(node_id: str, class_id: str) -> str:
    """
    >>> class_series_file("served", "Order")
    'series/served@SERVED@Order.csv'
    """
    sid = class_series_id(node_id, class_id)
    name = f"{sid}.csv"
    if _PLAIN_NODE_ID.match(node_id) and _PLAIN_NODE_ID.match(class_id) and len(name) <= MAX_FILE_NAME:
        return f"{SERIES_DIR}/{name}"
    return encoded_series_file(sid)


def encoded_series_file(node_id: str) -> str:
    """
    A bounded ASCII file name for any node id: its ASCII letters, digits, ``_``
    and ``-`` (at most 64), then 128 bits of its SHA-256. Never contains ``@``, so
    it cannot meet a reference name.

    >>> encoded_series_file("需求.total")
    'series/total-51b4ad5afa9cd33ef4bf9318eb1b1d81.csv'
    >>> len(encoded_series_file("a" * 128))
    108
    """
    keep = re.sub(r"[^A-Za-z0-9_\-]", "", node_id, flags=re.ASCII)[:64] or "node"
    digest = hashlib.sha256(node_id.encode("utf-8")).hexdigest()[:32]
    return f"{SERIES_DIR}/{keep}-{digest}.csv"


def created_from_id(run_id: str) -> datetime | None:
    m = RUN_ID.match(run_id)
    if not m or not m.group(1):
        return None
    return datetime.strptime(m.group(1), STAMP).replace(tzinfo=UTC)


def utc_iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
